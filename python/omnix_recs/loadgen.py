"""`omnix loadgen`: an open-loop load generator for the gRPC API, for this machine's servers.

Open loop: calls start at scheduled times (a Poisson process, or evenly spaced) whether or not
earlier calls have answered, the way independent shoppers arrive, so a server that falls behind
shows its queue as latency. Latency is measured from the scheduled start, so a client that falls
behind cannot hide it either (no coordinated omission), and the client's own send lag is reported.
Each channel is its own TCP connection, so the kernel spreads them over the workers of
`omnix serve --workers N`. Several targets (`HOST:PORT,HOST:PORT`, e.g. hosts on 127.0.0.2,
127.0.0.3...) make every channel balance its calls round robin over all of them, as a client of
many hosts does. Bounded in time, calls and calls in flight; local (loopback) targets only.
"""

from __future__ import annotations

import asyncio
import ipaddress
import json
import os
import random
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import grpc
import numpy as np
from grpc_health.v1 import health_pb2, health_pb2_grpc

from omnix_recs import event_loop, loadgen_native
from omnix_recs._proto.omnix.v1 import customer_pb2, customer_pb2_grpc, recommendation_pb2, recommendation_pb2_grpc
from omnix_recs.errors import InvalidArgumentError
from omnix_recs.store.base import Store

# `health` is the bare health check: the server's ceiling, to read the other kinds against.
KINDS = ("recommendations", "similar", "basket", "interaction", "health")
# A shopping session: mostly lists, some product pages and basket completion, some browsing.
DEFAULT_MIX: dict[str, float] = {"recommendations": 6, "similar": 2, "basket": 1, "interaction": 1}
LOCAL_HOSTS = ("127.0.0.1", "localhost", "[::1]")
ENGINES = ("grpc-aio", "native")
STATUS_NAMES = {code.value[0]: code.name for code in grpc.StatusCode}
MAX_DURATION_S = 600.0
MAX_RATE = 100_000.0
DEFAULT_MAX_REQUESTS = 1_000_000
DEFAULT_MAX_OUTSTANDING = 20_000
CONNECT_TIMEOUT_S = 10.0
MAX_TARGETS = 64
# gRPC's built-in round_robin policy: one connection per address, calls spread over the ready ones.
ROUND_ROBIN_SERVICE_CONFIG = json.dumps({"loadBalancingConfig": [{"round_robin": {}}]})


@dataclass(frozen=True)
class LatencySummary:
    count: int
    p50_ms: float
    p95_ms: float
    p99_ms: float
    max_ms: float

    @classmethod
    def of(cls, seconds: Sequence[float]) -> LatencySummary:
        if not len(seconds):
            return cls(0, 0.0, 0.0, 0.0, 0.0)
        ms = np.asarray(seconds) * 1000.0
        p50, p95, p99 = np.percentile(ms, [50, 95, 99])
        return cls(len(ms), float(p50), float(p95), float(p99), float(ms.max()))

    def render(self) -> str:
        return f"p50 {self.p50_ms:.1f}  p95 {self.p95_ms:.1f}  p99 {self.p99_ms:.1f}  max {self.max_ms:.1f} ms"


@dataclass(frozen=True)
class LoadReport:
    target: str
    rate: float  # scheduled calls per second
    duration_s: float
    arrival: str
    channels: int
    scheduled: int
    answered: int  # calls that ended with any status
    ok: int
    not_sent: int  # dropped at the client because `max_outstanding` calls were in flight
    errors: dict[str, int]  # status code name → count
    latency: LatencySummary  # every answered call, from its scheduled start
    by_kind: dict[str, LatencySummary]
    send_lag_p99_ms: float  # how late the client started calls (its own saturation)
    codes_by_kind: dict[str, dict[str, int]] = field(default_factory=dict)
    engine: str = "grpc-aio"
    client_cpu_s: float = 0.0  # the load generator's CPU over the run, planning included

    @property
    def throughput(self) -> float:
        """OK answers per second over the scheduled window."""
        return self.ok / self.duration_s if self.duration_s else 0.0

    def render(self) -> str:
        lines = [
            f"loadgen {self.target}: {self.rate:g}/s scheduled ({self.arrival}) for {self.duration_s:g} s "
            f"over {self.channels} channels: {self.scheduled} calls ({self.engine} client, "
            f"{self.client_cpu_s * 1000 / max(1, self.answered):.3f} ms CPU per call)",
            f"answered {self.answered}, OK {self.ok} ({self.throughput:.1f}/s), not sent {self.not_sent}",
            f"latency from scheduled start: {self.latency.render()}  (client send lag p99 {self.send_lag_p99_ms:.1f} ms)",
        ]
        for kind, summary in self.by_kind.items():
            lines.append(f"  {kind:<16} {summary.count:>8}  {summary.render()}")
        errors = ", ".join(f"{code} {n}" for code, n in sorted(self.errors.items())) or "none"
        lines.append(f"errors by status: {errors}")
        return "\n".join(lines)


def run_loadgen(
    target: str,
    *,
    rate: float,
    duration_s: float,
    channels: int = 16,
    mix: Mapping[str, float] = DEFAULT_MIX,
    customers: Sequence[str] = (),
    products: Sequence[str] = (),
    arrival: str = "poisson",
    deadline_s: float = 2.0,
    max_requests: int = DEFAULT_MAX_REQUESTS,
    max_outstanding: int = DEFAULT_MAX_OUTSTANDING,
    seed: int = 1,
    shoppers_in_turn: bool = False,
    engine: str = "grpc-aio",
) -> LoadReport:
    """Send the mix at `rate` calls per second for `duration_s` seconds (see the module docstring).

    A call's shopper is drawn at random, or with `shoppers_in_turn` from shuffled rounds of all of
    them (every shopper once per round: what a warm-up wants). A call due while `max_outstanding`
    are in flight is counted as not sent rather than queued in the client. `engine`: `grpc-aio`
    sends from this process; `native` hands the same calls to the `omnix-loadgen` binary
    (loadgen_native.py), which costs the shared machine a fraction of the CPU.
    """
    cpu_before = _cpu_seconds()
    targets = parse_targets(target)
    if engine not in ENGINES:
        raise InvalidArgumentError("engine", f"must be one of {', '.join(ENGINES)}, got {engine!r}")
    if engine == "native" and channels < len(targets):
        # The native sender gives each channel one target, in turn (grpc-aio balances each channel).
        raise InvalidArgumentError("channels", f"the native engine needs a channel per target: {len(targets)} at least")
    if not 0 < rate <= MAX_RATE:
        raise InvalidArgumentError("rate", f"must be in (0, {MAX_RATE:g}] calls per second, got {rate}")
    if not 0 < duration_s <= MAX_DURATION_S:
        raise InvalidArgumentError("duration_s", f"must be in (0, {MAX_DURATION_S:g}] seconds, got {duration_s}")
    if not 1 <= channels <= 1000:
        raise InvalidArgumentError("channels", f"must be between 1 and 1000, got {channels}")
    if arrival not in ("poisson", "fixed"):
        raise InvalidArgumentError("arrival", f"must be 'poisson' or 'fixed', got {arrival!r}")
    for name, value in (
        ("max_requests", max_requests),
        ("max_outstanding", max_outstanding),
        ("deadline_s", deadline_s),
    ):
        if value <= 0:
            raise InvalidArgumentError(name, f"must be positive, got {value}")
    weights = _check_mix(mix, customers, products)
    rng = np.random.default_rng(seed)
    if arrival == "poisson":
        gaps = rng.exponential(1.0 / rate, size=int(rate * duration_s * 1.2) + 100)
        offsets = np.cumsum(gaps)
        offsets = offsets[offsets < duration_s]
    else:
        offsets = np.arange(0.0, duration_s, 1.0 / rate)
    offsets = offsets[:max_requests]
    kinds = list(weights)
    picks = rng.choice(len(kinds), size=len(offsets), p=np.array(list(weights.values())) / sum(weights.values()))
    plan = _Plan(target, targets, channels, [kinds[p] for p in picks], offsets, deadline_s, max_outstanding)
    requests = _RequestMaker(customers, products, random.Random(seed), in_turn=shoppers_in_turn)
    if engine == "native":
        plan.run_native(requests)
    else:
        event_loop.run(plan.run(requests))
    return replace(plan.report(rate, duration_s, arrival), engine=engine, client_cpu_s=_cpu_seconds() - cpu_before)


def _cpu_seconds() -> float:
    """This process's CPU and its finished children's (the native sender is one)."""
    times = os.times()
    return times.user + times.system + times.children_user + times.children_system


def sample_ids(store: Store, *, customers: int, products: int) -> tuple[list[str], list[str]]:
    """Up to that many customer and in-stock product ids from the store, to draw calls from."""
    from omnix_recs.domain.models import ProductFilter

    customer_ids = list(store.list_customer_ids(page_size=customers).items) if customers else []
    product_ids = (
        [p.product_id for p in store.list_products(ProductFilter(in_stock_only=True), page_size=products).items]
        if products
        else []
    )
    return customer_ids, product_ids


def parse_mix(text: str) -> dict[str, float]:
    """ "recommendations=6,similar=2" → {"recommendations": 6.0, "similar": 2.0}."""
    mix: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        kind, _, weight = part.partition("=")
        try:
            mix[kind.strip()] = float(weight) if weight else 1.0
        except ValueError:
            raise InvalidArgumentError("mix", f"{part!r}: the weight must be a number") from None
    return mix


# --- the run ----------------------------------------------------------------------------------


def parse_targets(text: str) -> list[str]:
    """`HOST:PORT[,HOST:PORT...]` as a list of addresses, each on this machine: `localhost`,
    `[::1]` or an IPv4 loopback address (127.0.0.0/8). Several must be IPv4, the form one gRPC
    channel can balance over (`balanced_channel`)."""
    targets = [t.strip() for t in text.split(",") if t.strip()]
    if not targets or len(targets) > MAX_TARGETS:
        raise InvalidArgumentError("target", f"expected 1 to {MAX_TARGETS} HOST:PORT addresses, got {text!r}")
    for target in targets:
        host, _, port = target.rpartition(":")
        if not _is_local(host) or not port.isdigit() or not 0 < int(port) < 65_536:
            raise InvalidArgumentError(
                "target",
                f"{target!r}: must be HOST:PORT with HOST {', '.join(LOCAL_HOSTS)} or a 127.x.x.x address",
            )
        if len(targets) > 1 and host == "[::1]":
            raise InvalidArgumentError("target", f"{target!r}: several targets must be IPv4 addresses")
    if len({_numeric(t) for t in targets}) != len(targets):
        raise InvalidArgumentError("target", f"{text!r} names an address twice")
    return targets


def _is_local(host: str) -> bool:
    if host in LOCAL_HOSTS:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False
    return address.version == 4 and address.is_loopback


def _numeric(target: str) -> str:
    return "127.0.0.1:" + target.removeprefix("localhost:") if target.startswith("localhost:") else target


def balanced_channel(targets: Sequence[str]) -> tuple[str, list[tuple[str, Any]]]:
    """The gRPC target and channel options that spread one channel's calls round robin over
    `targets` (checked by `parse_targets`); one target is used as it is."""
    if len(targets) == 1:
        return targets[0], []
    addresses = ",".join(_numeric(t) for t in targets)
    return f"ipv4:{addresses}", [("grpc.service_config", ROUND_ROBIN_SERVICE_CONFIG)]


def _check_mix(mix: Mapping[str, float], customers: Sequence[str], products: Sequence[str]) -> dict[str, float]:
    unknown = set(mix) - set(KINDS)
    if unknown:
        raise InvalidArgumentError("mix", f"unknown kinds {sorted(unknown)} (kinds: {', '.join(KINDS)})")
    if any(w < 0 for w in mix.values()):
        raise InvalidArgumentError("mix", "weights must be >= 0")
    weights = {kind: float(w) for kind, w in mix.items() if w > 0}
    if not weights:
        raise InvalidArgumentError("mix", "at least one weight must be > 0")
    needs_customers = {"recommendations", "interaction"} & set(weights)
    if needs_customers and not customers:
        raise InvalidArgumentError("customers", f"{', '.join(sorted(needs_customers))} calls need customer ids")
    needs_products = {"similar", "basket", "interaction"} & set(weights)
    if needs_products and not products:
        raise InvalidArgumentError("products", f"{', '.join(sorted(needs_products))} calls need product ids")
    return weights


class _RequestMaker:
    """One request of a kind, for a random shopper and random products."""

    def __init__(self, customers: Sequence[str], products: Sequence[str], rng: random.Random, *, in_turn: bool) -> None:
        self.customers, self.products, self.rng = list(customers), list(products), rng
        self._turns: Iterator[str] | None = None
        if in_turn and self.customers:
            self._turns = self._rounds()

    def _rounds(self) -> Iterator[str]:
        # Shuffled afresh each round: in one order every round, the calls balanced in turn over
        # two servers would bring each shopper to the same one every time.
        while True:
            order = list(self.customers)
            self.rng.shuffle(order)
            yield from order

    def make(self, kind: str) -> Any:
        rng = self.rng
        if self._turns is not None:
            customer = next(self._turns)
        else:
            customer = rng.choice(self.customers) if self.customers else ""
        if kind == "recommendations":
            return recommendation_pb2.GetRecommendationsRequest(customer_id=customer, limit=20)
        if kind == "similar":
            return recommendation_pb2.GetSimilarProductsRequest(
                product_id=rng.choice(self.products), limit=10, customer_id=customer
            )
        if kind == "basket":
            basket = rng.sample(self.products, min(len(self.products), rng.randint(1, 4)))
            return recommendation_pb2.GetFrequentlyBoughtTogetherRequest(
                basket_product_ids=basket, limit=10, customer_id=customer
            )
        if kind == "interaction":
            # Cart additions invalidate the shopper's cart and cached lists, as real shopping does.
            to_cart = rng.random() < 0.3
            interaction = customer_pb2.Interaction(
                kind=customer_pb2.INTERACTION_KIND_CART_ADD if to_cart else customer_pb2.INTERACTION_KIND_VIEW,
                product_id=rng.choice(self.products),
                quantity=1 if to_cart else 0,
            )
            return customer_pb2.RecordInteractionRequest(customer_id=customer, interaction=interaction)
        return health_pb2.HealthCheckRequest()


def _method_path(module: Any, service: str, method: str) -> str:
    """`/package.Service/Method`, from the generated descriptors so that a rename cannot drift."""
    described = module.DESCRIPTOR.services_by_name[service]
    return f"/{described.full_name}/{described.methods_by_name[method].name}"


# The method each kind calls, as gRPC paths (for the native engine, which knows no stubs).
METHOD_PATHS = {
    "recommendations": _method_path(recommendation_pb2, "RecommendationService", "GetRecommendations"),
    "similar": _method_path(recommendation_pb2, "RecommendationService", "GetSimilarProducts"),
    "basket": _method_path(recommendation_pb2, "RecommendationService", "GetFrequentlyBoughtTogether"),
    "interaction": _method_path(customer_pb2, "CustomerService", "RecordInteraction"),
    "health": _method_path(health_pb2, "Health", "Check"),
}


class _Plan:
    def __init__(
        self,
        target: str,
        targets: Sequence[str],
        channels: int,
        kinds: list[str],
        offsets: np.ndarray,
        deadline_s: float,
        max_outstanding: int,
    ) -> None:
        self.target = target
        self.targets = targets
        self.channels = channels
        self.kinds = kinds
        self.offsets = offsets
        self.deadline_s = deadline_s
        self.max_outstanding = max_outstanding
        self.latency: dict[str, list[float]] = {}
        self.codes: dict[str, Counter[str]] = {}
        self.lags: list[float] = []
        self.not_sent = 0

    async def run(self, requests: _RequestMaker) -> None:
        # A local subchannel pool per channel: otherwise channels to one target share one connection.
        address, balancing = balanced_channel(self.targets)
        opened = [
            grpc.aio.insecure_channel(address, options=[("grpc.use_local_subchannel_pool", 1), *balancing])
            for _ in range(self.channels)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*(c.channel_ready() for c in opened)), CONNECT_TIMEOUT_S)
            methods = [_methods(channel) for channel in opened]
            await self._send_all(methods, requests)
        finally:
            await asyncio.gather(*(c.close() for c in opened))

    async def _send_all(self, methods: list[dict[str, Callable[..., Any]]], requests: _RequestMaker) -> None:
        loop = asyncio.get_running_loop()
        start = loop.time() + 0.05
        in_flight: set[asyncio.Task[None]] = set()
        for i, (kind, offset) in enumerate(zip(self.kinds, self.offsets)):
            due = start + float(offset)
            delay = due - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            if len(in_flight) >= self.max_outstanding:
                self.not_sent += 1
                continue
            call = methods[i % len(methods)][kind]
            task = asyncio.create_task(self._call(kind, call, requests.make(kind), due))
            in_flight.add(task)
            task.add_done_callback(in_flight.discard)
        if in_flight:
            await asyncio.wait(in_flight)

    async def _call(self, kind: str, call: Callable[..., Any], request: Any, due: float) -> None:
        loop = asyncio.get_running_loop()
        self.lags.append(loop.time() - due)
        try:
            await call(request, timeout=self.deadline_s)
            code = "OK"
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        self.latency.setdefault(kind, []).append(loop.time() - due)
        self.codes.setdefault(kind, Counter())[code] += 1

    def run_native(self, requests: _RequestMaker) -> None:
        """The same calls, sent by `omnix-loadgen`; its outcomes fill what `_call` would."""
        kinds = list(dict.fromkeys(self.kinds))
        index = {kind: i for i, kind in enumerate(kinds)}
        of_kind = np.array([index[kind] for kind in self.kinds], dtype=np.int64)
        latency, lag, codes = loadgen_native.send(
            self.targets,
            channels=self.channels,
            deadline_s=self.deadline_s,
            max_outstanding=self.max_outstanding,
            methods=[METHOD_PATHS[kind] for kind in kinds],
            offsets=self.offsets,
            method_of_call=of_kind.tolist(),
            requests=[requests.make(kind).SerializeToString() for kind in self.kinds],
        )
        sent = codes != loadgen_native.NOT_SENT
        self.not_sent = int((~sent).sum())
        self.lags = lag[sent].tolist()
        for kind, i in index.items():
            answered = sent & (of_kind == i)
            if answered.any():
                self.latency[kind] = latency[answered].tolist()
                counted = Counter(codes[answered].tolist())
                self.codes[kind] = Counter({STATUS_NAMES.get(c, f"CODE_{c}"): n for c, n in counted.items()})

    def report(self, rate: float, duration_s: float, arrival: str) -> LoadReport:
        codes: Counter[str] = sum(self.codes.values(), Counter())
        every = [s for seconds in self.latency.values() for s in seconds]
        return LoadReport(
            target=self.target,
            rate=rate,
            duration_s=duration_s,
            arrival=arrival,
            channels=self.channels,
            scheduled=len(self.kinds),
            answered=sum(codes.values()),
            ok=codes.get("OK", 0),
            not_sent=self.not_sent,
            errors={code: n for code, n in codes.items() if code != "OK"},
            latency=LatencySummary.of(every),
            by_kind={kind: LatencySummary.of(self.latency[kind]) for kind in KINDS if kind in self.latency},
            send_lag_p99_ms=float(np.percentile(self.lags, 99) * 1000) if self.lags else 0.0,
            codes_by_kind={kind: dict(c) for kind, c in self.codes.items()},
        )


def _methods(channel: grpc.aio.Channel) -> dict[str, Callable[..., Any]]:
    recommendations = recommendation_pb2_grpc.RecommendationServiceStub(channel)
    customers = customer_pb2_grpc.CustomerServiceStub(channel)
    return {
        "recommendations": recommendations.GetRecommendations,
        "similar": recommendations.GetSimilarProducts,
        "basket": recommendations.GetFrequentlyBoughtTogether,
        "interaction": customers.RecordInteraction,
        # types-grpcio-health-checking's HealthStub lists no methods; the generated one sets Check.
        "health": health_pb2_grpc.HealthStub(channel).Check,  # type: ignore[attr-defined]
    }
