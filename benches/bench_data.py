"""Benchmark: `omnix generate` and `omnix import instacart` at Instacart scale.

Generates a synthetic supermarket (default ≈200k customers, 50k products, one year: about
3.5M orders and 35M order lines) into a scratch directory, imports it into a fresh SQLite
store, and prints, for each phase, wall time, throughput and peak resident memory. Each phase
runs in its own Python process, which reports its own peak RSS. The scratch directory (about
1 GB of CSV plus the database) is deleted afterwards unless --keep is given.

    python benches/bench_data.py                      # full scale (several minutes)
    python benches/bench_data.py --customers 20000 --products 10000   # a quick look
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

GENERATE = """
import json, resource, sys
from pathlib import Path
from omnix_recs.data.generate import generate_instacart
summary = generate_instacart(Path(sys.argv[1]), customers=int(sys.argv[2]), products=int(sys.argv[3]),
                             days=int(sys.argv[4]), seed=int(sys.argv[5]))
summary["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(summary))
"""

IMPORT = """
import json, resource, sys
from dataclasses import asdict
from pathlib import Path
from omnix_recs.data.instacart import default_as_of, import_instacart
from omnix_recs.store.sqlite import SqliteStore
directory = Path(sys.argv[1])
store = SqliteStore(sys.argv[2])
try:
    report = asdict(import_instacart(store, directory, as_of=default_as_of(directory)))
finally:
    store.close()
report["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps(report))
"""


def run_phase(script: str, *args: object) -> dict[str, float]:
    completed = subprocess.run([sys.executable, "-c", script, *map(str, args)], capture_output=True, text=True)
    if completed.returncode != 0:
        sys.exit(f"phase failed (exit {completed.returncode}):\n{completed.stderr}")
    summary: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=200_000)
    parser.add_argument("--products", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--workdir", type=Path, default=None, help="scratch parent directory (default: the system temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files and database")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="omnix-bench-data-", dir=args.workdir))
    data_dir, db_path = scratch / "instacart", scratch / "omnix.db"
    try:
        print(f"generate: {args.customers} customers, {args.products} products, {args.days} days, seed {args.seed}")
        gen = run_phase(GENERATE, data_dir, args.customers, args.products, args.days, args.seed)
        size_mib = sum(p.stat().st_size for p in data_dir.iterdir()) / 2**20
        print(
            f"  {gen['orders']:,} orders, {gen['order_lines']:,} order lines, {size_mib:,.0f} MiB of CSV"
            f" in {gen['seconds']:.1f} s ({gen['order_lines'] / gen['seconds']:,.0f} lines/s),"
            f" peak RSS {gen['peak_rss_mib']:,.0f} MiB"
        )
        print("import instacart into a fresh SQLite store")
        imp = run_phase(IMPORT, data_dir, db_path)
        db_mib = sum(p.stat().st_size for p in scratch.glob("omnix.db*")) / 2**20
        print(
            f"  {imp['customers']:,} customers, {imp['products']:,} products, {imp['orders']:,} orders,"
            f" {imp['order_lines']:,} order lines in {imp['seconds']:.1f} s"
            f" ({imp['order_lines'] / imp['seconds']:,.0f} order lines/s), peak RSS {imp['peak_rss_mib']:,.0f} MiB,"
            f" database {db_mib:,.0f} MiB"
        )
    finally:
        if args.keep:
            print(f"kept {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
