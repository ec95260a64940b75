"""Type stubs for the Rust extension `omnix_recs._core` (hand-written; keep in step with rust_core).

Each section belongs to one Rust module (rust_core/src/<module>/).
"""

from typing import Any, Literal, Self, final, overload

import numpy as np
import numpy.typing as npt

__all__ = [
    "__version__",
    "CoreError",
    "InvalidInputError",
    "CoreIoError",
    "synth_simulate_households",
    "cosine_item_neighbours",
    "basket_complements",
    "summarize_order_lines",
    "RankTables",
    "CandidateSignals",
    "rank_candidates",
    "RANK_SIGNALS",
    "RANK_FEATURES",
    "Reranker",
    "train_reranker",
    "item_taste_factors",
    "csr_pair_counts",
    "shoppers_like_you_table",
    "customer_habit_weights",
    "consumption_cycles",
    "population_cycles",
    "next_occurrences",
    "use_background_pool",
]

__version__: str

class CoreError(Exception): ...
class InvalidInputError(CoreError): ...
class CoreIoError(CoreError): ...

# --- synth (rust_core/src/synth) -------------------------------------------------------------

def synth_simulate_households(
    out_dir: str,
    shelf: dict[str, np.ndarray],
    *,
    households: int,
    seed: int,
    taste_segments: int,
    season_multiplier: np.ndarray,
    weekday: np.ndarray,
    allergen_names: list[str],
) -> dict[str, int]:
    """Simulate households shopping `shelf` and write orders.csv, order_products__prior.csv,
    order_products__train.csv and households.csv into `out_dir`.

    `shelf` holds the catalogue columns built by `omnix_recs.data.generate` (product_* per
    product, aisle_* per aisle, complement_* as CSR); `season_multiplier` is float32
    [seasons, days]; `weekday` uint8 [days] (0 = Sunday). Deterministic for a seed whatever
    the thread count. Returns counts: customers, orders, prior_lines, train_lines.
    Raises InvalidInputError on inconsistent columns, CoreIoError when a file cannot be written.
    """

# --- engine (rust_core/src/engine) -----------------------------------------------------------

# engine/cooccurrence.rs, engine/fbt.rs: model build (see omnix_recs/engine/build.py)

def cosine_item_neighbours(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    data: npt.NDArray[np.float32],
    n_items: int,
    k: int,
    shrink: float,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Top-k items by cosine with shrinkage over a group × item CSR matrix (customers or
    product features × items; positive weights): x_i·x_j / (‖x_i‖·‖x_j‖ + shrink).
    Returns (items [n_items, k], similarity [n_items, k]), best first, padded with -1 / 0.
    InvalidInputError on malformed arrays (lengths, index range, repeats, weights) or k/shrink."""

def basket_complements(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    n_items: int,
    k: int,
    min_support: int,
    prior: float,
) -> tuple[npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """Top-k items bought together with each item, by shrunk lift over a basket × item CSR
    incidence matrix: (together + prior) / (expected + prior), expected = baskets_i · baskets_j
    / n_baskets; only pairs with lift > 1 and at least `min_support` shared baskets.
    Returns (items [n_items, k], lift [n_items, k]), best first, padded with -1 / 0."""

# engine/taste.rs: model build (see omnix_recs/engine/build.py)

def item_taste_factors(
    indptr: npt.NDArray[np.int64],
    indices: npt.NDArray[np.int32],
    n_items: int,
    dims: int,
    iterations: int,
    seed: int,
) -> npt.NDArray[np.float32]:
    """Taste factors: the top `dims` right singular vectors of a binary customer × item CSR
    matrix, float32 [n_items, dims] (orthonormal columns, largest singular value first; zero
    past the matrix's rank), by `iterations` rounds of randomized subspace iteration from a
    `seed`ed start. InvalidInputError on malformed arrays or dims/iterations out of range."""

# engine/history.rs: a shopper's order lines summarised per product (see omnix_recs/engine/features.py)

def summarize_order_lines(
    *,
    trip: npt.NDArray[np.int64],
    trips: int,
    item: npt.NDArray[np.int64],
    quantity: npt.NDArray[np.int64],
    unit_price: npt.NDArray[np.float64],
    purchased_at_s: npt.NDArray[np.float64],
    habit_decay: float,
) -> tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.float64],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float64],
    float,
    float,
]:
    """Summarise one shopper's order lines (columns of equal length, any order): `trip` is each
    line's trip 0..`trips` in order-id order (ties in time go to the lower number), `item` its
    model item or -1. Returns (items int32 ascending, last_bought_s, mean_gap_days (NaN after
    one trip), orders, habit, trip_times_s oldest first, spend, newest_line_s (-inf without
    lines)). InvalidInputError on mismatched lengths, out-of-range trips or items, non-finite
    times, a trip without lines or a habit_decay that is not > 0."""

# engine/rank.rs: per-request ranking (see omnix_recs/engine/recommender.py)

RANK_SIGNALS: tuple[str, ...]
"""Signal names of the ranking blend, in weight-vector and reason-code order."""
RANK_FEATURES: tuple[str, ...]
"""What a re-ranker reads of a candidate: the signals, unweighted, then the blend's score and
history facts (rust_core/src/engine/rank.rs `FEATURES`)."""

_Ranked5 = tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int8],
    npt.NDArray[np.int32],
]
_Ranked6 = tuple[
    npt.NDArray[np.int32],
    npt.NDArray[np.float32],
    npt.NDArray[np.float32],
    npt.NDArray[np.int8],
    npt.NDArray[np.int32],
    npt.NDArray[np.float32],
]

@final
class RankTables:
    """A model's item-side tables, held by reference (arrays may be memory-mapped read-only)."""

    n_items: int

    def __new__(
        cls,
        *,
        cooc_idx: npt.NDArray[np.int32],
        cooc_sim: npt.NDArray[np.float32],
        fbt_idx: npt.NDArray[np.int32],
        fbt_score: npt.NDArray[np.float32],
        content_idx: npt.NDArray[np.int32],
        content_sim: npt.NDArray[np.float32],
        popularity: npt.NDArray[np.float32],
        trending: npt.NDArray[np.float32],
        seasonal_lift: npt.NDArray[np.float32],
        population_cycle_days: npt.NDArray[np.float32],
        repurchase_rate: npt.NDArray[np.float32],
        taste_factors: npt.NDArray[np.float32],
    ) -> Self: ...
    @overload
    def rank(
        self,
        *,
        history_items: npt.NDArray[np.int32],
        days_since_last: npt.NDArray[np.float32],
        mean_gap_days: npt.NDArray[np.float32],
        orders: npt.NDArray[np.float32],
        habit: npt.NDArray[np.float32],
        basket: npt.NDArray[np.int32],
        allowed: npt.NDArray[np.bool_],
        category_ids: npt.NDArray[np.int32],
        brand_ids: npt.NDArray[np.int32],
        extra_candidates: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
        week: int,
        k: int,
        exclude_history: bool,
        per_category_cap: int,
        neighbours_per_item: int,
        days_to_next_trip: float = 0.0,
        like_you_items: npt.NDArray[np.int32] | None = None,
        like_you_scores: npt.NDArray[np.float32] | None = None,
        replaced_weight: float = 1.0,
        popularity_discount: float = 0.0,
        reranker: Reranker | None = None,
        with_features: Literal[False] = False,
    ) -> _Ranked5: ...
    @overload
    def rank(
        self,
        *,
        history_items: npt.NDArray[np.int32],
        days_since_last: npt.NDArray[np.float32],
        mean_gap_days: npt.NDArray[np.float32],
        orders: npt.NDArray[np.float32],
        habit: npt.NDArray[np.float32],
        basket: npt.NDArray[np.int32],
        allowed: npt.NDArray[np.bool_],
        category_ids: npt.NDArray[np.int32],
        brand_ids: npt.NDArray[np.int32],
        extra_candidates: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
        week: int,
        k: int,
        exclude_history: bool,
        per_category_cap: int,
        neighbours_per_item: int,
        days_to_next_trip: float = 0.0,
        like_you_items: npt.NDArray[np.int32] | None = None,
        like_you_scores: npt.NDArray[np.float32] | None = None,
        replaced_weight: float = 1.0,
        popularity_discount: float = 0.0,
        reranker: Reranker | None = None,
        with_features: Literal[True],
    ) -> _Ranked6: ...
    @overload
    def rank(
        self,
        *,
        history_items: npt.NDArray[np.int32],
        days_since_last: npt.NDArray[np.float32],
        mean_gap_days: npt.NDArray[np.float32],
        orders: npt.NDArray[np.float32],
        habit: npt.NDArray[np.float32],
        basket: npt.NDArray[np.int32],
        allowed: npt.NDArray[np.bool_],
        category_ids: npt.NDArray[np.int32],
        brand_ids: npt.NDArray[np.int32],
        extra_candidates: npt.NDArray[np.int32],
        weights: npt.NDArray[np.float32],
        week: int,
        k: int,
        exclude_history: bool,
        per_category_cap: int,
        neighbours_per_item: int,
        days_to_next_trip: float = 0.0,
        like_you_items: npt.NDArray[np.int32] | None = None,
        like_you_scores: npt.NDArray[np.float32] | None = None,
        replaced_weight: float = 1.0,
        popularity_discount: float = 0.0,
        reranker: Reranker | None = None,
        with_features: bool,
    ) -> _Ranked5 | _Ranked6:
        """Top-k (items, scores, confidence, reasons [k, 2], anchors [k, 2]), best first;
        `with_features` adds each item's RANK_FEATURES (float32 [k, n_features])."""
    def candidate_signals(
        self,
        *,
        history_items: npt.NDArray[np.int32],
        days_since_last: npt.NDArray[np.float32],
        mean_gap_days: npt.NDArray[np.float32],
        orders: npt.NDArray[np.float32],
        habit: npt.NDArray[np.float32],
        basket: npt.NDArray[np.int32],
        allowed: npt.NDArray[np.bool_],
        category_ids: npt.NDArray[np.int32],
        brand_ids: npt.NDArray[np.int32],
        extra_candidates: npt.NDArray[np.int32],
        week: int,
        exclude_history: bool,
        neighbours_per_item: int,
        days_to_next_trip: float = 0.0,
        like_you_items: npt.NDArray[np.int32] | None = None,
        like_you_scores: npt.NDArray[np.float32] | None = None,
        replaced_weight: float = 1.0,
        popularity_discount: float = 0.0,
    ) -> CandidateSignals:
        """The candidates `rank` would score for the request, with their signals."""

@final
class CandidateSignals:
    """One request's candidates and signals (`RankTables.candidate_signals`)."""

    def __len__(self) -> int: ...

def rank_candidates(
    candidates: list[CandidateSignals], *, weights: npt.NDArray[np.float32], k: int, per_category_cap: int
) -> list[npt.NDArray[np.int32]]:
    """For each request, the items `RankTables.rank` lists under these weights, k and cap (no re-ranker)."""

# engine/rerank.rs: learned re-ranking trees (LambdaMART)

@final
class Reranker:
    """A linear start plus gradient-boosted trees over RANK_FEATURES, as flat arrays."""

    n_trees: int
    n_features: int

    def __new__(
        cls,
        *,
        n_features: int,
        base: npt.NDArray[np.float32],
        feature: npt.NDArray[np.int32],
        threshold: npt.NDArray[np.float32],
        left: npt.NDArray[np.int32],
        right: npt.NDArray[np.int32],
        value: npt.NDArray[np.float32],
        roots: npt.NDArray[np.int32],
    ) -> Self: ...
    def arrays(self) -> dict[str, Any]:
        """The constructor's arguments."""
    def predict(self, features: npt.NDArray[np.float32]) -> npt.NDArray[np.float32]:
        """Scores of feature rows [n, n_features]."""

def train_reranker(
    features: npt.NDArray[np.float32],
    labels: npt.NDArray[np.float32],
    query_starts: npt.NDArray[np.int64],
    *,
    base: npt.NDArray[np.float32],
    trees: int,
    depth: int,
    learning_rate: float,
    min_leaf: int,
    l2: float,
    ndcg_k: int,
    bins: int,
) -> Reranker:
    """Fit LambdaMART trees ordering each query's rows by label (NDCG@ndcg_k), starting from
    the linear `base` (one weight per feature, or empty)."""

# engine/sparse.rs: counting order lines into a CSR matrix (model build)

def csr_pair_counts(
    rows: npt.NDArray[np.int32], cols: npt.NDArray[np.int32], n_rows: int, n_cols: int
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """(indptr, indices, counts): how many i have (rows[i], cols[i]) = (r, c), as CSR with the
    columns of each row ascending. `InvalidInputError` names an argument of the wrong length or
    a code outside 0..n_rows / 0..n_cols."""

# engine/shoppers.rs: each customer's nearest fellow shoppers' products (model build)

def shoppers_like_you_table(
    customer: npt.NDArray[np.int32],
    basket: npt.NDArray[np.int32],
    item: npt.NDArray[np.int32],
    purchased_at: npt.NDArray[np.int64],
    n_customers: int,
    n_items: int,
    *,
    habit_decay: float,
    neighbours: int,
    items: int,
    postings_cap: int,
    only: npt.NDArray[np.int32] | None = None,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """From every customer's order lines (codes, epoch seconds): per customer, the top `items`
    products of the similarity-weighted mean habit row of their `neighbours` nearest customers
    (cosine over habit weights, through an inverted index keeping each product's `postings_cap`
    heaviest buyers; 0 = all, exact), as CSR (indptr, items, scores), each row best first.
    `only` (customer codes): fill just their rows, the others empty (neighbours are still found
    among everyone). InvalidInputError on mismatched lengths or codes out of range."""

def customer_habit_weights(
    customer: npt.NDArray[np.int32],
    basket: npt.NDArray[np.int32],
    item: npt.NDArray[np.int32],
    purchased_at: npt.NDArray[np.int64],
    n_customers: int,
    n_items: int,
    *,
    habit_decay: float,
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int32], npt.NDArray[np.float32]]:
    """The customer x item habit weights `shoppers_like_you_table` compares, as CSR (indptr,
    indices ascending per row, data): the decayed share of the customer's trips holding the item."""

# --- insights (rust_core/src/insights) -------------------------------------------------------

def consumption_cycles(
    group_codes: npt.NDArray[np.int64],
    days: npt.NDArray[np.float64],
    prior_cycle_days: npt.NDArray[np.float64],
    *,
    same_trip_days: float = 0.5,
    prior_strength: float = 2.0,
    huber_k: float = 1.345,
    prior_reliability: float = 0.3,
) -> dict[str, npt.NDArray[Any]]:
    """Robust cycles per group: `group_codes[i]` in 0..len(prior_cycle_days) names the group of
    the purchase on `days[i]` (float days, any order). Keys: cycle_days, own_cycle_days,
    confidence, dispersion, first_day, last_day, recent_cycle_days (float64), trips (uint32)."""

def population_cycles(
    customer_codes: npt.NDArray[np.int64],
    item_codes: npt.NDArray[np.int64],
    days: npt.NDArray[np.float64],
    n_items: int,
    *,
    same_trip_days: float = 0.5,
    max_gap_sample: int = 20_000,
) -> dict[str, npt.NDArray[Any]]:
    """Per item: cycle_days (median over repeat buyers of their median gap; NaN = none),
    buyers and repeat_buyers (uint32); and prior_strength (float, NaN = too little data), the
    empirical-Bayes k = within-buyer / between-buyer variance of log gaps; sample_gaps and
    sample_scales (float64): at most `max_gap_sample` gaps of buyers with two gaps or more, and
    each one's buyer's median gap."""

def next_occurrences(
    group_codes: npt.NDArray[np.int64],
    days: npt.NDArray[np.float64],
    scales: npt.NDArray[np.float64],
    as_of: float,
    population_gaps: npt.NDArray[np.float64],
    population_scales: npt.NDArray[np.float64],
    *,
    population_weight: float = 10.0,
    scale_exponent: float = 1.0,
    recency_half_life: float = 20.0,
    horizon_days: float = 28.0,
    same_trip_days: float = 0.5,
) -> dict[str, npt.NDArray[Any]]:
    """The survival outlook of groups 0..len(scales) as of `as_of` (days; later days ignored):
    elapsed_days, median_days (inf = overdue beyond every gap seen, NaN = no trips),
    horizon_probability, horizon_median_days (float64) and trips (uint32)."""

# gil.rs: where the core's parallel work runs

def use_background_pool(on: bool) -> None:
    """Whether the core work this thread starts runs on the background pool (a pool of its own,
    at a lower scheduling priority) or on the shared one (the default)."""
