"""Configuration: environment first, optionally completed by a TOML file.

One `Settings` object is built at start-up (`Settings.from_env()`) and passed down; nothing else
reads the environment. Variable names are part of the contract in DESIGN.md.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from pathlib import Path

from omnix_recs.errors import InvalidArgumentError
from omnix_recs.limits import Limits  # Settings.limits; also importable from here

DEFAULT_STORE_URL = "sqlite:///./var/omnix.db"
DEFAULT_GRPC_PORT = 50051
EVENT_LOOPS = ("uvloop", "asyncio")
DEFAULT_BEDROCK_MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
DEFAULT_REDIS_FAILURE_THRESHOLD = 3
# Served lists (and the feedback on them) are deleted this many days after they were served.
# The floor is what their readers need: a report over the default 30-day period, attributing
# purchases to lists served up to the longest attribution window (30 days) before.
SERVED_LIST_RETENTION_SETTING = "OMNIX_SERVED_LIST_RETENTION_DAYS"
DEFAULT_SERVED_LIST_RETENTION_DAYS = 90
MIN_SERVED_LIST_RETENTION_DAYS = 60
MAX_SERVED_LIST_RETENTION_DAYS = 3_660


def _parse_bool(name: str, raw: str) -> bool:
    value = raw.strip().lower()
    if value in {"1", "true", "yes", "on"}:
        return True
    if value in {"0", "false", "no", "off"}:
        return False
    raise InvalidArgumentError(name, f"expected a boolean (true/false), got {raw!r}")


def _parse_fraction(name: str, raw: str) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(name, f"expected a number between 0 and 1, got {raw!r}") from None
    if not 0.0 <= value <= 1.0:
        raise InvalidArgumentError(name, f"must be between 0 and 1, got {value}")
    return value


_INTERVAL_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86_400}
MIN_RETRAIN_INTERVAL_S = 60.0


def parse_interval(text: str) -> float:
    """ "24h", "30m", "7d", "3600s" (or a plain number of seconds) as seconds."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None:
        raise InvalidArgumentError("--retrain-every", f"expected a duration such as 24h, 30m or 7d, got {text!r}")
    seconds = float(match.group(1)) * _INTERVAL_UNITS[match.group(2) or "s"]
    if seconds < MIN_RETRAIN_INTERVAL_S:
        raise InvalidArgumentError("--retrain-every", f"must be at least {MIN_RETRAIN_INTERVAL_S:.0f} s, got {text!r}")
    return seconds


def _parse_int(name: str, raw: str, minimum: int, maximum: int) -> int:
    try:
        value = int(raw)
    except ValueError:
        raise InvalidArgumentError(name, f"expected an integer, got {raw!r}") from None
    if not minimum <= value <= maximum:
        raise InvalidArgumentError(name, f"must be between {minimum} and {maximum}, got {value}")
    return value


def _parse_retention_days(name: str, raw: object) -> int:
    """Served-list retention in days: 0 (keep forever) or at least what the reports read."""
    try:
        value = int(str(raw).strip())
    except ValueError:
        raise InvalidArgumentError(name, f"expected a whole number of days, got {raw!r}") from None
    if value != 0 and not MIN_SERVED_LIST_RETENTION_DAYS <= value <= MAX_SERVED_LIST_RETENTION_DAYS:
        raise InvalidArgumentError(
            name,
            f"must be 0 (keep served lists forever) or between {MIN_SERVED_LIST_RETENTION_DAYS} and"
            f" {MAX_SERVED_LIST_RETENTION_DAYS} days, got {value}: reports and experiments read lists"
            f" up to {MIN_SERVED_LIST_RETENTION_DAYS} days back",
        )
    return value


def _parse_seconds(name: str, raw: str, minimum: float, maximum: float) -> float:
    try:
        value = float(raw)
    except ValueError:
        raise InvalidArgumentError(name, f"expected a number of seconds, got {raw!r}") from None
    if not minimum <= value <= maximum:  # also refuses nan
        raise InvalidArgumentError(name, f"must be between {minimum:g} and {maximum:g} seconds, got {raw!r}")
    return value


@dataclass(frozen=True, slots=True)
class Settings:
    store_url: str = DEFAULT_STORE_URL
    redis_url: str | None = None
    grpc_host: str = "127.0.0.1"
    grpc_port: int = DEFAULT_GRPC_PORT
    workers: int = 1
    # With it set (0 = off), worker i also listens on worker_base_port + i, its own port: a client
    # that balances each call over those ports (gRPC's round_robin) spreads the calls evenly,
    # where the shared port leaves the kernel to hash each long-lived connection to one worker.
    worker_base_port: int = 0
    model_dir: str = "./var/models"
    # Where this host keeps its copies of models stored in S3 (engine/artifact_store.py).
    model_cache_dir: str = "./var/model-cache"
    bedrock_enabled: bool = False
    bedrock_model_id: str = DEFAULT_BEDROCK_MODEL_ID
    bedrock_endpoint_url: str | None = None
    aws_region: str = "us-east-1"
    bedrock_timeout_s: float = 8.0
    # On SIGTERM: seconds in-flight calls may take to finish before the server stops (OMNIX_SHUTDOWN_GRACE_S).
    shutdown_grace_s: float = 10.0
    # How often each server process re-reads the active model version and the running
    # experiments from the store, so an activation or experiment made through any host
    # reaches every host within this long (OMNIX_FOLLOW_INTERVAL_S).
    follow_interval_s: float = 5.0
    log_level: str = "INFO"
    # Cache (store/cache/): lifetime of per-shopper entries (0 = no caching), the in-process
    # cache's size, and how long a Redis call may take before the cache is skipped.
    cache_ttl_s: int = 300
    cache_max_entries: int = 50_000
    redis_timeout_ms: int = 100
    # Consecutive failed Redis calls after which the cache and the shared client limits skip
    # Redis for a few seconds. More than one: under CPU overload a lone timeout may be this
    # process's own starvation, and skipping the cache then costs CPU when it is shortest.
    redis_failure_threshold: int = DEFAULT_REDIS_FAILURE_THRESHOLD
    # With Redis, each process's near cache of what it read (store/cache/near.py), kept fresh
    # by Redis's invalidation messages: its size in MiB (0 = off). Entries: cache_max_entries.
    redis_near_cache_mb: int = 64
    # Calls one server process serves at once; more are refused with RESOURCE_EXHAUSTED
    # rather than queued (0 = no bound). Keepalive: the server pings an idle connection every
    # keepalive_time_ms and drops it if the ping is not answered within keepalive_timeout_ms.
    max_inflight: int = 128
    keepalive_time_ms: int = 60_000
    keepalive_timeout_ms: int = 20_000
    # The servers' event loop: "uvloop" (when installed) or "asyncio" (omnix_recs/event_loop.py).
    event_loop: str = "uvloop"
    limits: Limits = field(default_factory=Limits)
    # Security (omnix_recs/security/): TLS (cert + key; a client CA makes it mTLS), bearer
    # tokens (HS256 secret and/or a JWKS file of RS256/ES256 keys; auth is off without both),
    # optional issuer/audience checks, client-certificate common names mapped to roles
    # ("name=role,name=role"), the audit log file, and `insecure` (--insecure: serve a reachable
    # address without TLS and auth).
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    tls_client_ca_file: str | None = None
    # The REST gateway as a TLS client of the gRPC server (gateway/serve.py): the CA it trusts
    # for the server's certificate, the name it expects in it, and its client certificate (mTLS).
    tls_ca_file: str | None = None
    tls_server_name: str | None = None
    gateway_tls_cert_file: str | None = None
    gateway_tls_key_file: str | None = None
    auth_jwt_secret: str | None = field(default=None, repr=False)
    auth_jwks_file: str | None = None
    auth_issuer: str | None = None
    auth_audience: str | None = None
    auth_mtls_roles: str | None = None
    audit_log_file: str | None = None
    insecure: bool = False
    # Per-client fairness (security/fairness.py): calls one client (token subject, else peer
    # address; unauthenticated loopback callers exempt) may hold at once and start per second
    # in one process (0 = no bound), and how long a client stream may stay silent.
    client_max_inflight: int = 32
    client_rate_per_s: int = 0
    stream_idle_timeout_s: int = 30
    # Serve Prometheus metrics at http://grpc_host:metrics_port/metrics (0 = off; omnix_recs/metrics.py).
    metrics_port: int = 0
    # Build a new model version when the newest is older than this many seconds (0 = never;
    # omnix_recs/retraining.py). `OMNIX_RETRAIN_EVERY` takes a duration such as "24h".
    retrain_every_s: float = 0.0
    # Popularity bias knob (`Blend.popularity_discount`): every served list's scores are
    # multiplied by 1 - this x the product's popularity; 0 = off. README: the accuracy it costs.
    popularity_discount: float = 0.0
    # Model versions kept after each training and by `omnix models prune`: the newest this many,
    # plus the active one, its rollback target and those a running experiment serves
    # (engine/registry.py `prune_versions`).
    model_keep: int = 5
    # Where `omnix train` keeps its columnar copy of the purchase history (store/snapshot.py):
    # empty = beside a SQLite database file (none for DynamoDB), "off" = always scan the store.
    snapshot_dir: str = ""
    # Served lists and the feedback on them are deleted this many days after they were served
    # (0 = kept forever): OMNIX_SERVED_LIST_RETENTION_DAYS, omnix_recs/served_retention.py.
    served_list_retention_days: int = DEFAULT_SERVED_LIST_RETENTION_DAYS

    @property
    def served_list_retention(self) -> timedelta | None:
        """How long served lists are kept; None when they are kept forever."""
        days = self.served_list_retention_days
        return timedelta(days=days) if days else None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, toml_path: str | Path | None = None) -> Settings:
        """Build settings from a TOML file (optional, `OMNIX_CONFIG`) overridden by the environment."""
        env = dict(os.environ if environ is None else environ)
        values: dict[str, object] = {}
        toml_path = toml_path or env.get("OMNIX_CONFIG")
        if toml_path:
            with open(toml_path, "rb") as fh:
                data = tomllib.load(fh)
            known = {f.name for f in fields(cls)} - {"limits"}
            unknown = set(data) - known
            if unknown:
                raise InvalidArgumentError("OMNIX_CONFIG", f"unknown settings {sorted(unknown)}")
            values.update(data)

        if "OMNIX_STORE" in env:
            values["store_url"] = env["OMNIX_STORE"]
        if env.get("OMNIX_REDIS_URL"):
            values["redis_url"] = env["OMNIX_REDIS_URL"]
        if "OMNIX_GRPC_HOST" in env:
            values["grpc_host"] = env["OMNIX_GRPC_HOST"]
        if "OMNIX_GRPC_PORT" in env:
            values["grpc_port"] = _parse_int("OMNIX_GRPC_PORT", env["OMNIX_GRPC_PORT"], 0, 65535)
        if "OMNIX_WORKERS" in env:
            values["workers"] = _parse_int("OMNIX_WORKERS", env["OMNIX_WORKERS"], 1, 64)
        if "OMNIX_MODEL_DIR" in env:
            values["model_dir"] = env["OMNIX_MODEL_DIR"]
        if "OMNIX_MODEL_CACHE_DIR" in env:
            values["model_cache_dir"] = env["OMNIX_MODEL_CACHE_DIR"]
        if "OMNIX_SNAPSHOT_DIR" in env:
            values["snapshot_dir"] = env["OMNIX_SNAPSHOT_DIR"]
        for name, variable, minimum, maximum in (
            ("cache_ttl_s", "OMNIX_CACHE_TTL_S", 0, 86_400),
            ("cache_max_entries", "OMNIX_CACHE_MAX_ENTRIES", 1, 10_000_000),
            ("redis_timeout_ms", "OMNIX_REDIS_TIMEOUT_MS", 1, 60_000),
            ("redis_failure_threshold", "OMNIX_REDIS_FAILURE_THRESHOLD", 1, 100),
            ("redis_near_cache_mb", "OMNIX_REDIS_NEAR_CACHE_MB", 0, 65_536),
            ("max_inflight", "OMNIX_MAX_INFLIGHT", 0, 1_000_000),
            ("keepalive_time_ms", "OMNIX_KEEPALIVE_TIME_MS", 1_000, 86_400_000),
            ("keepalive_timeout_ms", "OMNIX_KEEPALIVE_TIMEOUT_MS", 1_000, 3_600_000),
            ("client_max_inflight", "OMNIX_CLIENT_MAX_INFLIGHT", 0, 1_000_000),
            ("client_rate_per_s", "OMNIX_CLIENT_RATE_PER_S", 0, 1_000_000),
            ("stream_idle_timeout_s", "OMNIX_STREAM_IDLE_TIMEOUT_S", 0, 86_400),
            ("metrics_port", "OMNIX_METRICS_PORT", 0, 65_535),
            ("worker_base_port", "OMNIX_WORKER_BASE_PORT", 0, 65_535),
            ("model_keep", "OMNIX_MODEL_KEEP", 1, 10_000),
        ):
            if variable in env:
                values[name] = _parse_int(variable, env[variable], minimum, maximum)
        for name, variable, low, high in (
            ("shutdown_grace_s", "OMNIX_SHUTDOWN_GRACE_S", 0.0, 3_600.0),
            ("follow_interval_s", "OMNIX_FOLLOW_INTERVAL_S", 0.05, 3_600.0),
        ):
            if env.get(variable):
                values[name] = _parse_seconds(variable, env[variable], low, high)
        if env.get("OMNIX_POPULARITY_DISCOUNT"):
            values["popularity_discount"] = _parse_fraction(
                "OMNIX_POPULARITY_DISCOUNT", env["OMNIX_POPULARITY_DISCOUNT"]
            )
        if env.get(SERVED_LIST_RETENTION_SETTING):
            values["served_list_retention_days"] = env[SERVED_LIST_RETENTION_SETTING]
        if "served_list_retention_days" in values:  # from the environment or the TOML file
            values["served_list_retention_days"] = _parse_retention_days(
                SERVED_LIST_RETENTION_SETTING, values["served_list_retention_days"]
            )
        if env.get("OMNIX_RETRAIN_EVERY"):
            values["retrain_every_s"] = parse_interval(env["OMNIX_RETRAIN_EVERY"])
        if "OMNIX_LOG_LEVEL" in env:
            values["log_level"] = env["OMNIX_LOG_LEVEL"].upper()
        if "OMNIX_EVENT_LOOP" in env:
            values["event_loop"] = env["OMNIX_EVENT_LOOP"].lower()
        if values.get("event_loop", "uvloop") not in EVENT_LOOPS:
            raise InvalidArgumentError(
                "OMNIX_EVENT_LOOP", f"must be one of {', '.join(EVENT_LOOPS)}, got {values['event_loop']!r}"
            )
        if "OMNIX_BEDROCK_MODEL_ID" in env:
            values["bedrock_model_id"] = env["OMNIX_BEDROCK_MODEL_ID"]
        if env.get("OMNIX_BEDROCK_ENDPOINT_URL"):
            values["bedrock_endpoint_url"] = env["OMNIX_BEDROCK_ENDPOINT_URL"]
        if env.get("AWS_REGION") or env.get("AWS_DEFAULT_REGION"):
            values["aws_region"] = env.get("AWS_REGION") or env["AWS_DEFAULT_REGION"]
        for name, variable in (
            ("tls_cert_file", "OMNIX_TLS_CERT_FILE"),
            ("tls_key_file", "OMNIX_TLS_KEY_FILE"),
            ("tls_client_ca_file", "OMNIX_TLS_CLIENT_CA_FILE"),
            ("tls_ca_file", "OMNIX_TLS_CA_FILE"),
            ("tls_server_name", "OMNIX_TLS_SERVER_NAME"),
            ("gateway_tls_cert_file", "OMNIX_GATEWAY_TLS_CERT_FILE"),
            ("gateway_tls_key_file", "OMNIX_GATEWAY_TLS_KEY_FILE"),
            ("auth_jwt_secret", "OMNIX_AUTH_JWT_SECRET"),
            ("auth_jwks_file", "OMNIX_AUTH_JWKS_FILE"),
            ("auth_issuer", "OMNIX_AUTH_ISSUER"),
            ("auth_audience", "OMNIX_AUTH_AUDIENCE"),
            ("auth_mtls_roles", "OMNIX_AUTH_MTLS_ROLES"),
            ("audit_log_file", "OMNIX_AUDIT_LOG_FILE"),
        ):
            if env.get(variable):
                values[name] = env[variable]
        if "OMNIX_INSECURE" in env:
            values["insecure"] = _parse_bool("OMNIX_INSECURE", env["OMNIX_INSECURE"])
        if "OMNIX_BEDROCK_ENABLED" in env:
            values["bedrock_enabled"] = _parse_bool("OMNIX_BEDROCK_ENABLED", env["OMNIX_BEDROCK_ENABLED"])
        elif "bedrock_enabled" not in values:
            # Default: on when there is somewhere to send requests (credentials or an endpoint).
            has_credentials = bool(env.get("AWS_ACCESS_KEY_ID") or env.get("AWS_PROFILE"))
            values["bedrock_enabled"] = has_credentials or "bedrock_endpoint_url" in values
        return cls(**values)  # type: ignore[arg-type]
