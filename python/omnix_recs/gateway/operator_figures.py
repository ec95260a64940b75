"""The service-wide figures the console's overview shows from the server's Prometheus metrics.

The gateway may run in another process or on another host than the servers, so it reads what
operators' monitoring reads: the text at `/metrics` (`omnix serve --metrics-port`, summed over
the workers), not the servers' memory. No metrics URL, or no answer, means no figures.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass

from prometheus_client.parser import text_string_to_metric_families

FETCH_TIMEOUT_S = 1.0
# omnix_bedrock_circuit_state's values (metrics.CIRCUIT_STATES).
CIRCUIT_NAMES = {0: "closed", 1: "half-open", 2: "open"}


@dataclass(frozen=True, slots=True)
class OperatorFigures:
    cache_hits: int
    cache_lookups: int
    bedrock_calls: int
    fallbacks: int  # analyses written by the local analyst instead of Bedrock
    circuit: str  # the Bedrock circuit breaker's worst state over the processes; "" unknown

    @property
    def cache_hit_rate(self) -> float | None:
        return self.cache_hits / self.cache_lookups if self.cache_lookups else None


def parse(text: str) -> OperatorFigures:
    """The figures in a /metrics text (missing metrics count as zero)."""
    hits = lookups = bedrock = fallbacks = 0
    circuit = ""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "omnix_cache_lookups_total":
                lookups += int(sample.value)
                hits += int(sample.value) if sample.labels.get("result") == "hit" else 0
            elif sample.name == "omnix_bedrock_calls_total":
                bedrock += int(sample.value)
            elif sample.name == "omnix_insight_fallbacks_total":
                fallbacks += int(sample.value)
            elif sample.name == "omnix_bedrock_circuit_state":
                circuit = CIRCUIT_NAMES.get(int(sample.value), "")
    return OperatorFigures(hits, lookups, bedrock, fallbacks, circuit)


def fetch_text(url: str) -> str | None:
    """The Prometheus text at `url`, or None when it does not answer in time (blocking)."""
    try:
        with urllib.request.urlopen(url, timeout=FETCH_TIMEOUT_S) as response:  # noqa: S310 - the operator's URL
            return str(response.read().decode("utf-8", "replace"))
    except (OSError, ValueError):
        return None


def fetch(url: str) -> OperatorFigures | None:
    """The figures at `url`, or None when it does not answer in time (blocking: run in a thread)."""
    text = fetch_text(url)
    try:
        return None if text is None else parse(text)
    except ValueError:  # not Prometheus text
        return None
