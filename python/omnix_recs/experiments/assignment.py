"""Which arm of an experiment a customer is in: deterministic and sticky.

A customer's bucket is a hash of the experiment's salt and the customer id into 10,000
buckets, so every process on every host, before and after restarts, puts a customer in the
same arm without asking anyone, and two experiments (different salts) split customers
independently of each other. The first `holdout_percent` hundredths of the buckets are the
holdout; the rest are cut among the arms in proportion to their traffic.
"""

from __future__ import annotations

import hashlib

from omnix_recs.store.base import ExperimentArm, ExperimentRecord

BUCKETS = 10_000
# The arm id of the holdout: customers who get the non-personalised list.
HOLDOUT_ARM = "holdout"


def bucket(customer_id: str, salt: str) -> int:
    """The customer's bucket in [0, BUCKETS) for this salt (blake2b: stable across processes,
    unlike Python's salted `hash`)."""
    digest = hashlib.blake2b(f"{salt}\x00{customer_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % BUCKETS


def assign(experiment: ExperimentRecord, customer_id: str) -> ExperimentArm | None:
    """The customer's arm; None for the holdout."""
    position = bucket(customer_id, experiment.salt)
    holdout = experiment.holdout_percent * BUCKETS // 100
    if position < holdout:
        return None
    # Cut the remaining buckets in proportion to the arms' traffic (integers only: no edge
    # moves with floating-point rounding).
    remaining = BUCKETS - holdout
    offset = position - holdout
    cumulative = 0
    for arm in experiment.arms:
        cumulative += arm.traffic_percent
        if offset * 100 < cumulative * remaining:
            return arm
    return experiment.arms[-1]


def planned_shares(experiment: ExperimentRecord) -> dict[str, float]:
    """Each arm's planned share of all customers (the holdout's under `HOLDOUT_ARM`), summing to 1."""
    holdout = experiment.holdout_percent / 100
    shares = {arm.arm_id: (1 - holdout) * arm.traffic_percent / 100 for arm in experiment.arms}
    if experiment.holdout_percent:
        shares[HOLDOUT_ARM] = holdout
    return shares
