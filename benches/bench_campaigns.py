"""Benchmark: building campaigns for 10,000 customers with the local writer.

Generates a supermarket (`omnix generate`: 10,000 households over 180 days) into a scratch SQLite
store, trains a model (no tuning: the bench times campaigns, not training), gives every customer
marketing consent, then times `CampaignService.create` for each kind, once as a dry run (select,
pick items, write; nothing stored) and once stored (plus writing every message and holdout entry
as a store document), and the export of the stored messages to JSON Lines. The shop's
consumption cycles, which replenishment reminders need, are built first and timed apart: a
server builds them once and keeps them for hours.

    python benches/bench_campaigns.py                      # ~2 minutes on 2 cores
    python benches/bench_campaigns.py --customers 2000 --kinds personalized_email
    python benches/bench_campaigns.py --keep var/bench-campaigns   # reuse the data next time
"""

from __future__ import annotations

import argparse
import dataclasses
import io
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from omnix_recs.api.marketing import campaign_service
from omnix_recs.app import AppContext
from omnix_recs.config import Settings
from omnix_recs.data.generate import generate_instacart
from omnix_recs.data.instacart import default_as_of, import_instacart
from omnix_recs.domain.models import Consent
from omnix_recs.engine.train import train_model
from omnix_recs.marketing.export import write_messages
from omnix_recs.marketing.records import CampaignKind, CampaignSpec, QuietHours
from omnix_recs.store import open_store
from omnix_recs.store.base import Store


def prepare(directory: Path, customers: int, settings: Settings) -> Store:
    store = open_store(settings.store_url)
    if store.count_purchases():
        return store
    started = time.perf_counter()
    data = directory / "data"
    generate_instacart(data, customers=customers, products=3_000, days=180, seed=7, end_date=datetime.now(UTC).date())
    import_instacart(store, data, as_of=default_as_of(data) or datetime.now(UTC).date())
    print(f"data: {customers} households generated and imported in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    train_model(store, settings, tune=False)
    print(f"model trained in {time.perf_counter() - started:.1f} s")
    started = time.perf_counter()
    token = ""
    while True:
        page = store.list_customer_ids(1_000, token)
        for customer_id in page.items:
            customer = store.get_customer(customer_id)
            store.put_customer(dataclasses.replace(customer, consent=Consent(marketing=True)))
        token = page.next_page_token
        if not token:
            break
    print(f"marketing consent given to every customer in {time.perf_counter() - started:.1f} s")
    return store


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--kinds", default=",".join(k.value for k in CampaignKind))
    parser.add_argument("--keep", help="directory for the data and store, reused when it holds them")
    args = parser.parse_args()
    directory = Path(args.keep or tempfile.mkdtemp(prefix="omnix-bench-campaigns-"))
    directory.mkdir(parents=True, exist_ok=True)
    settings = Settings(store_url=f"sqlite:///{directory / 'omnix.db'}", model_dir=str(directory / "models"))
    store = prepare(directory, args.customers, settings)
    try:
        app = AppContext.create(settings, store)
        campaigns = campaign_service(app)
        started = time.perf_counter()
        campaigns.population()  # built once per process, then kept: not part of a campaign's time
        print(f"population cycles (for replenishment) built in {time.perf_counter() - started:.1f} s")
        print(
            "\n| kind | customers | selected | messages | dry run s | stored s | export s |\n|---|---|---|---|---|---|---|"
        )
        for kind in args.kinds.split(","):
            spec = CampaignSpec(
                name=f"bench {kind}",
                kind=CampaignKind(kind),
                as_of=datetime.now(UTC),
                quiet_hours=QuietHours(0, 0),
                max_messages_per_week=50,
                dry_run=True,
            )
            started = time.perf_counter()
            preview = campaigns.create(spec)
            dry_s = time.perf_counter() - started
            started = time.perf_counter()
            stored = campaigns.create(dataclasses.replace(spec, dry_run=False))
            stored_s = time.perf_counter() - started
            started = time.perf_counter()
            out = io.StringIO()
            write_messages(campaigns.all_messages(stored.campaign_id), out, "jsonl")
            export_s = time.perf_counter() - started
            print(
                f"| {kind} | {preview.customers_considered:,} | {preview.selected:,} | {stored.audience_size:,} "
                f"| {dry_s:.1f} | {stored_s:.1f} | {export_s:.1f} |",
                flush=True,
            )
    finally:
        store.close()


if __name__ == "__main__":
    main()
