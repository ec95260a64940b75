#!/usr/bin/env python3
"""Compile proto/omnix/v1/*.proto into python/omnix_recs/_proto/ (messages, stubs, .pyi).

    python scripts/gen_protos.py          # regenerate
    python scripts/gen_protos.py --check  # fail (exit 1) if the committed code is stale

protoc writes `from omnix.v1 import x_pb2`; we rewrite that to the package path
`omnix_recs._proto.omnix.v1` so the generated code imports cleanly without touching sys.path.
"""

from __future__ import annotations

import argparse
import filecmp
import importlib.util
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROTO_DIR = ROOT / "proto"
OUT_DIR = ROOT / "python" / "omnix_recs" / "_proto"
PACKAGE_PREFIX = "omnix_recs._proto."
IMPORT_RE = re.compile(r"^(from|import) omnix\.v1", re.MULTILINE)


def _include_dirs() -> list[str]:
    import grpc_tools

    dirs = [str(PROTO_DIR), str(Path(grpc_tools.__file__).parent / "_proto")]
    # googleapis-common-protos ships google/api/*.proto beside its generated modules.
    spec = importlib.util.find_spec("google.api.annotations_pb2")
    if spec is None or spec.origin is None:
        sys.exit("googleapis-common-protos is not installed (pip install googleapis-common-protos)")
    dirs.append(str(Path(spec.origin).parents[2]))
    return dirs


def generate(out_dir: Path) -> None:
    from grpc_tools import protoc

    protos = sorted(str(p.relative_to(PROTO_DIR)) for p in PROTO_DIR.rglob("*.proto"))
    args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
    args += [f"--python_out={out_dir}", f"--pyi_out={out_dir}", f"--grpc_python_out={out_dir}", *protos]
    if protoc.main(args) != 0:
        sys.exit("protoc failed")
    for path in out_dir.rglob("*.py*"):
        text = path.read_text()
        fixed = IMPORT_RE.sub(lambda m: f"{m.group(1)} {PACKAGE_PREFIX}omnix.v1", text)
        if fixed != text:
            path.write_text(fixed)
    for package in [out_dir, *(d for d in out_dir.rglob("*") if d.is_dir())]:
        (package / "__init__.py").touch()
    (out_dir / "__init__.py").write_text(
        '"""Generated protobuf and gRPC code (scripts/gen_protos.py). Do not edit."""\n'
    )


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the committed code differs")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "_proto"
        fresh.mkdir()
        generate(fresh)
        if args.check:
            ours, theirs = _tree(OUT_DIR), _tree(fresh)
            stale = sorted(ours ^ theirs) + sorted(
                f for f in ours & theirs if not filecmp.cmp(OUT_DIR / f, fresh / f, shallow=False)
            )
            if stale:
                print("generated protobuf code is stale; run `python scripts/gen_protos.py`:", *stale, sep="\n  ")
                return 1
            print(f"generated protobuf code is up to date ({len(theirs)} files)")
            return 0
        shutil.rmtree(OUT_DIR, ignore_errors=True)
        shutil.copytree(fresh, OUT_DIR)
    print(f"wrote {OUT_DIR.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
