//! Per-request ranking: which products should this shopper see now.
//!
//! Inputs are the model's item-side tables (neighbour lists and per-item signals, borrowed
//! read-only from the memory-mapped artifact), the customer's history features (computed in
//! Python from their purchases at request time, so a new purchase counts at once), the basket
//! and a per-item "allowed" mask (the hard filters, computed in Python from catalog + profile +
//! request). The work is one pass over a few thousand candidates: gather candidates from the
//! history, the basket, the model's neighbours and the shopper's "shoppers like you" row, score
//! each as a weighted blend of signals, drop what the filters forbid, and take the top k with a
//! per-aisle cap for diversity.
//!
//! Every signal is scaled to [0, 1] so that the blend weights are comparable. The signals that
//! read the whole history at once (co-purchase, content similarity, taste) are sums whose size
//! depends on how long the history is, and "shoppers like you" depends on how alike they are,
//! so these are scaled per request by their largest value among the products this list may
//! show: 1 = the strongest evidence for this shopper now.
//! The weights are the strategy (REPLENISH leans on replenishment and habit, DISCOVER on taste
//! and co-purchase). `numpy` reference: `benches/reference/rank.py`.
//!
//! A blend may carry a learned re-ranker (engine/rerank.rs): the blend then picks the head of
//! the list and the re-ranker orders it, from each candidate's `FEATURES`.
use std::cell::RefCell;

use super::rerank::Forest;
use super::sparse::prefetch;
use crate::errors::CoreResult;
use crate::invalid;

/// The signals of the blend, in the order of the weight vector and of the reason codes.
pub const SIGNALS: [&str; 14] = [
    "replenishment",     // due now: habit x how far along the shopper's own cycle they are
    "habit",             // how often the shopper's recent trips contained the product
    "repurchase",        // how often the product's buyers buy it again (history items only)
    "co_purchase",       // bought by the same shoppers as the history and basket
    "basket_complement", // frequently bought together with the basket
    "similar",           // content neighbour of the history and basket
    "popularity",        // recent purchase volume across the shop
    "trending",          // purchase velocity now versus before
    "seasonal",          // sells more in this week of the year than usual
    "category_affinity", // share of the shopper's habit in the product's aisle
    "brand_affinity",    // share of the shopper's habit in the product's brand
    "taste",             // liked by households who buy what this shopper buys (taste factors)
    "due_by_next_trip",  // replenishment as of the shopper's next trip, expected from their rhythm
    "shoppers_like_you", // bought by the shoppers whose habits are nearest this one's (build time)
];
pub const N_SIGNALS: usize = SIGNALS.len();
const REPLENISHMENT: usize = 0;
const HABIT: usize = 1;
const REPURCHASE: usize = 2;
const CO_PURCHASE: usize = 3;
const BASKET_COMPLEMENT: usize = 4;
const SIMILAR: usize = 5;
const POPULARITY: usize = 6;
const TRENDING: usize = 7;
const SEASONAL: usize = 8;
const CATEGORY_AFFINITY: usize = 9;
const BRAND_AFFINITY: usize = 10;
const TASTE: usize = 11;
const DUE_BY_NEXT_TRIP: usize = 12;
const SHOPPERS_LIKE_YOU: usize = 13;

/// What a learned re-ranker sees of a candidate: every signal, unweighted, then these.
pub const FEATURES: [&str; N_FEATURES] = [
    "replenishment",
    "habit",
    "repurchase",
    "co_purchase",
    "basket_complement",
    "similar",
    "popularity",
    "trending",
    "seasonal",
    "category_affinity",
    "brand_affinity",
    "taste",
    "due_by_next_trip",
    "shoppers_like_you",
    "blend_score",       // the blend's own score: the trees refine its order
    "in_history",        // 1 if the shopper has bought the product
    "orders",            // ln(1 + the shopper's trips with the product)
    "due_ratio",         // days since last bought / expected cycle (-1: not in history)
    "days_since_last",   // days since the shopper last bought it (-1: never)
    "days_to_next_trip", // the shopper's expected wait for their next trip
    "history_size",      // ln(1 + distinct products the shopper has bought)
];
pub const N_FEATURES: usize = N_SIGNALS + 7;
const BLEND_SCORE: usize = N_SIGNALS;
const IN_HISTORY: usize = N_SIGNALS + 1;
const ORDERS: usize = N_SIGNALS + 2;
const DUE_RATIO: usize = N_SIGNALS + 3;
const DAYS_SINCE_LAST: usize = N_SIGNALS + 4;
const DAYS_TO_NEXT_TRIP: usize = N_SIGNALS + 5;
const HISTORY_SIZE: usize = N_SIGNALS + 6;

/// Reason slots returned per item (the strongest contributing signals).
pub const REASONS_PER_ITEM: usize = 2;
/// Reason code for an empty slot.
pub const NO_REASON: i8 = -1;

/// How many past gaps the population cycle is worth when shrinking a shopper's own cycle
/// estimate: with one observed gap the estimate is mostly the population's, with ten mostly theirs.
const CYCLE_PRIOR_GAPS: f32 = 2.0;
/// Width (in log-ratio units) of the due-ness bump before and after the expected day. Early is
/// narrower: a product bought yesterday is rarely needed again today, while an overdue one
/// stays likely for a while before the habit is judged lapsed.
const DUE_WIDTH_EARLY: f32 = 0.6;
const DUE_WIDTH_LATE: f32 = 1.0;
/// A signal's contribution must reach this share of the item's score to be given as a reason.
const REASON_MIN_SHARE: f32 = 0.15;

/// Top-K neighbour lists of one model table, row-major `[n_items, k]`, `-1` padding.
#[derive(Clone, Copy)]
pub struct Neighbours<'a> {
    pub idx: &'a [i32],
    pub score: &'a [f32],
    pub k: usize,
}

impl<'a> Neighbours<'a> {
    fn row(&self, item: usize, take: usize) -> impl Iterator<Item = (usize, f32)> + 'a {
        let take = take.min(self.k);
        let start = item * self.k;
        let idx = &self.idx[start..start + take];
        let score = &self.score[start..start + take];
        idx.iter().zip(score).filter(|(j, _)| **j >= 0).map(|(j, s)| (*j as usize, *s))
    }
}

/// The model's item-side knowledge (see the artifact contract in engine/artifact.py).
#[derive(Clone, Copy)]
pub struct ItemTables<'a> {
    pub n_items: usize,
    pub cooc: Neighbours<'a>,
    pub fbt: Neighbours<'a>,
    pub content: Neighbours<'a>,
    pub popularity: &'a [f32],
    pub trending: &'a [f32],
    /// `[weeks, n_items]` row-major lift of each week of the year over the item's mean: week
    /// by week, so a request reads one contiguous column rather than a cache line per candidate.
    pub seasonal_lift: &'a [f32],
    pub weeks: usize,
    /// Median days between purchases among repeat buyers; NaN = unknown.
    pub population_cycle_days: &'a [f32],
    pub repurchase_rate: &'a [f32],
    /// `[n_items, taste_dims]` row-major taste factors (engine/taste.rs); 0 dims = no taste signal.
    pub taste_factors: &'a [f32],
    pub taste_dims: usize,
}

impl ItemTables<'_> {
    fn taste_of(&self, item: usize) -> &[f32] {
        &self.taste_factors[item * self.taste_dims..(item + 1) * self.taste_dims]
    }
}

/// The shopper's history, one entry per distinct product bought (model item indices).
#[derive(Clone, Copy)]
pub struct History<'a> {
    pub items: &'a [i32],
    /// Days from the last purchase of the product to the moment of the request.
    pub days_since_last: &'a [f32],
    /// Mean days between the shopper's purchases of the product; NaN when bought once.
    pub mean_gap_days: &'a [f32],
    /// Number of the shopper's orders that contained the product.
    pub orders: &'a [f32],
    /// Time-decayed share of the shopper's orders containing the product, in [0, 1].
    pub habit: &'a [f32],
    /// Days from the request to the shopper's next trip, expected from their rhythm (0 = now).
    /// A list asked for right after a trip is for the next one: what will be due by then.
    pub days_to_next_trip: f32,
}

/// Everything about one request besides the model.
pub struct Request<'a> {
    pub history: History<'a>,
    pub basket: &'a [i32],
    /// Hard filters: `allowed[i]` is false for products this shopper must not be shown.
    pub allowed: &'a [bool],
    /// Aisle id of each item (for diversity caps and category affinity); -1 = unknown.
    pub category: &'a [i32],
    /// Brand id of each item; -1 = unbranded or unknown (no brand affinity).
    pub brand: &'a [i32],
    /// Items always considered: the shop's popular, trending and seasonal products.
    pub extra_candidates: &'a [i32],
    /// The model's "shoppers like you" row for this customer (engine/shoppers.rs): products
    /// and their scores; empty for a customer the model does not know.
    pub like_you_items: &'a [i32],
    pub like_you_scores: &'a [f32],
    pub weights: &'a [f32],
    /// Column of `seasonal_lift` for the week of the request.
    pub week: usize,
    pub k: usize,
    /// DISCOVER: never return a product from the shopper's history.
    pub exclude_history: bool,
    /// At most this many items per aisle; 0 = no cap.
    pub per_category_cap: usize,
    /// How many of each context item's neighbours to follow.
    pub neighbours_per_item: usize,
    /// How much a product the shopper has replaced still counts, in [0, 1] (1 = like any other):
    /// scales its history signals. Replaced = another product of its aisle, first bought after
    /// this one was last bought, has been bought on two or more trips since (a brand switch).
    pub replaced_weight: f32,
    /// How much popularity costs, in [0, 1] (0 = nothing): every score is multiplied by
    /// `1 - popularity_discount * popularity`, trading a little accuracy for lists less
    /// dominated by the best sellers (less popularity bias).
    pub popularity_discount: f32,
    /// A learned order for the blend's head (its best `head_size(k)` candidates): the blend
    /// chooses them, the re-ranker orders them, the per-aisle cap then applies as usual.
    pub reranker: Option<&'a Forest>,
    /// Also return each listed item's `FEATURES` (what re-rankers are trained on).
    pub with_features: bool,
}

/// The top-k, best first. `reasons`/`anchors` are `[k, REASONS_PER_ITEM]` row-major: signal
/// codes (index into `SIGNALS`, `NO_REASON` for an empty slot) and, for neighbour-based
/// reasons, the history or basket item that led to the product (-1 otherwise).
#[derive(Debug, Default, PartialEq)]
pub struct Ranked {
    pub items: Vec<i32>,
    pub scores: Vec<f32>,
    pub confidence: Vec<f32>,
    pub reasons: Vec<i8>,
    pub anchors: Vec<i32>,
    /// `[k, N_FEATURES]` row-major when the request asked `with_features`, else empty.
    pub features: Vec<f32>,
}

/// What one candidate accumulates while the neighbour lists are walked.
#[derive(Clone, Copy)]
struct Candidate {
    item: u32,
    history_pos: u32,
    in_basket: bool,
    co_purchase: f32,
    co_purchase_anchor: i32,
    co_purchase_best: f32,
    complement: f32,
    complement_anchor: i32,
    complement_best: f32,
    similar: f32,
    similar_anchor: i32,
    similar_best: f32,
    taste: f32,
    like_you: f32,
}

const NOT_IN_HISTORY: u32 = u32::MAX;
const NO_SLOT: u32 = u32::MAX;

impl Candidate {
    fn new(item: usize) -> Self {
        Candidate {
            item: item as u32,
            history_pos: NOT_IN_HISTORY,
            in_basket: false,
            co_purchase: 0.0,
            co_purchase_anchor: -1,
            co_purchase_best: 0.0,
            complement: 0.0,
            complement_anchor: -1,
            complement_best: 0.0,
            similar: 0.0,
            similar_anchor: -1,
            similar_best: 0.0,
            taste: 0.0,
            like_you: 0.0,
        }
    }
}

/// Per-thread scratch: `slot[item]` is the item's position in `candidates` (or `NO_SLOT`).
/// Kept between calls so a request costs O(candidates), not O(catalog); only touched slots
/// are reset afterwards.
#[derive(Default)]
struct Scratch {
    slot: Vec<u32>,
    candidates: Vec<Candidate>,
}

impl Scratch {
    fn prepare(&mut self, n_items: usize) {
        if self.slot.len() < n_items {
            self.slot.resize(n_items, NO_SLOT);
        }
        self.candidates.clear();
    }

    fn entry(&mut self, item: usize) -> &mut Candidate {
        let slot = self.slot[item];
        if slot != NO_SLOT {
            return &mut self.candidates[slot as usize];
        }
        self.slot[item] = self.candidates.len() as u32;
        self.candidates.push(Candidate::new(item));
        self.candidates.last_mut().expect("just pushed")
    }

    fn reset(&mut self) {
        for c in &self.candidates {
            self.slot[c.item as usize] = NO_SLOT;
        }
        self.candidates.clear();
    }
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

/// Smooth due-ness in [0, 1]: 1 on the expected day, falling off in log-ratio on both sides.
pub fn dueness(days_since_last: f32, cycle_days: f32) -> f32 {
    let known = cycle_days > 0.0 && days_since_last >= 0.0; // false for NaN as well
    if !known {
        return 0.0;
    }
    // Half a day of slack keeps "bought today" finite in log space.
    let ratio = ((days_since_last + 0.5) / cycle_days).ln();
    let width = if ratio < 0.0 { DUE_WIDTH_EARLY } else { DUE_WIDTH_LATE };
    (-(ratio * ratio) / (2.0 * width * width)).exp()
}

/// The shopper's expected cycle: their mean gap shrunk towards the population's.
pub fn expected_cycle(mean_gap_days: f32, orders: f32, population_cycle_days: f32) -> f32 {
    let gaps = (orders - 1.0).max(0.0);
    let own_known = mean_gap_days.is_finite() && gaps > 0.0;
    let population_known = population_cycle_days.is_finite() && population_cycle_days > 0.0;
    match (own_known, population_known) {
        (true, true) => (gaps * mean_gap_days + CYCLE_PRIOR_GAPS * population_cycle_days) / (gaps + CYCLE_PRIOR_GAPS),
        (true, false) => mean_gap_days,
        (false, true) => population_cycle_days,
        (false, false) => f32::NAN,
    }
}

fn positive_squash(x: f32) -> f32 {
    let x = x.max(0.0);
    x / (1.0 + x)
}

/// Habit mass per key (aisle or brand), as a sorted vector for binary search: a shopper has
/// at most a few hundred distinct products, so this beats a hash map.
fn affinity_by_key(history: &History, keys: &[i32]) -> Vec<(i32, f32)> {
    let total: f32 = history.habit.iter().sum();
    let mut pairs: Vec<(i32, f32)> = history
        .items
        .iter()
        .zip(history.habit)
        .map(|(item, habit)| (keys[*item as usize], *habit))
        .filter(|(key, _)| *key >= 0)
        .collect();
    pairs.sort_unstable_by_key(|p| p.0);
    let mut merged: Vec<(i32, f32)> = Vec::with_capacity(pairs.len());
    for (key, mass) in pairs {
        match merged.last_mut() {
            Some(last) if last.0 == key => last.1 += mass,
            _ => merged.push((key, mass)),
        }
    }
    if total > 0.0 {
        merged.iter_mut().for_each(|p| p.1 /= total);
    }
    merged
}

/// Per aisle, how many days ago the shopper first bought the newest of their repeat choices
/// there (products bought on two or more trips), sorted by aisle. A trip's first purchase is
/// `mean_gap_days * (orders - 1)` before its last.
fn newest_choice_by_aisle(history: &History, category: &[i32]) -> Vec<(i32, f32)> {
    let mut firsts: Vec<(i32, f32)> = (0..history.items.len())
        .filter(|&p| history.orders[p] >= 2.0 && history.mean_gap_days[p].is_finite())
        .map(|p| {
            let first = history.days_since_last[p] + history.mean_gap_days[p] * (history.orders[p] - 1.0);
            (category[history.items[p] as usize], first)
        })
        .filter(|(aisle, _)| *aisle >= 0)
        .collect();
    firsts.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(a.1.total_cmp(&b.1)));
    firsts.dedup_by_key(|p| p.0); // keeps each aisle's most recent first purchase
    firsts
}

/// Whether a product of `aisle` last bought `days_since_last` ago has been replaced: a repeat
/// choice of the same aisle was first bought after it.
fn replaced(newest_choices: &[(i32, f32)], aisle: i32, days_since_last: f32) -> bool {
    match newest_choices.binary_search_by_key(&aisle, |p| p.0) {
        Ok(pos) => newest_choices[pos].1 < days_since_last,
        Err(_) => false,
    }
}

fn affinity_of(table: &[(i32, f32)], key: i32) -> f32 {
    match table.binary_search_by_key(&key, |p| p.0) {
        Ok(pos) => table[pos].1,
        Err(_) => 0.0,
    }
}

/// Keys below this are looked up in a dense table: catalog codes of aisles and brands, the
/// usual case, need a few KB at most.
const DENSE_KEYS: usize = 1 << 16;

/// A shopper's habit share per key (aisle or brand, `affinity_by_key`), looked up once per
/// candidate: by index when the keys are small (a binary search per candidate was a third of
/// `signals_of`'s samples), else by binary search. The same values either way; 0 for negative
/// keys and keys the shopper never bought.
enum Affinity {
    Dense(Vec<f32>),
    Sorted(Vec<(i32, f32)>),
}

impl Affinity {
    fn of(history: &History, keys: &[i32]) -> Self {
        let merged = affinity_by_key(history, keys); // keys >= 0, ascending
        let size = merged.last().map_or(0, |p| p.0 as usize + 1);
        if size > DENSE_KEYS {
            return Affinity::Sorted(merged);
        }
        let mut dense = vec![0f32; size];
        merged.iter().for_each(|&(key, share)| dense[key as usize] = share);
        Affinity::Dense(dense)
    }

    fn at(&self, key: i32) -> f32 {
        match self {
            _ if key < 0 => 0.0,
            Affinity::Dense(dense) => dense.get(key as usize).copied().unwrap_or(0.0),
            Affinity::Sorted(sorted) => affinity_of(sorted, key),
        }
    }
}

fn check_index(what: &str, item: i32, n_items: usize) -> CoreResult<usize> {
    if item < 0 || item as usize >= n_items {
        return invalid!("{what} item index {item} outside 0..{n_items}");
    }
    Ok(item as usize)
}

/// Checks the model tables against each other (once per model load).
pub fn validate_tables(t: &ItemTables) -> CoreResult<()> {
    let n = t.n_items;
    for (name, table) in [("cooc", &t.cooc), ("fbt", &t.fbt), ("content", &t.content)] {
        if table.idx.len() != n * table.k || table.score.len() != n * table.k {
            return invalid!("{name} neighbour tables must be [{n}, {}]", table.k);
        }
        if let Some(bad) = table.idx.iter().find(|j| **j < -1 || **j >= n as i32) {
            return invalid!("{name} neighbour index {bad} outside -1..{n}");
        }
    }
    for (name, len) in [
        ("popularity", t.popularity.len()),
        ("trending", t.trending.len()),
        ("population_cycle_days", t.population_cycle_days.len()),
        ("repurchase_rate", t.repurchase_rate.len()),
    ] {
        if len != n {
            return invalid!("{name} has {len} entries for {n} items");
        }
    }
    if t.weeks == 0 || t.seasonal_lift.len() != n * t.weeks {
        return invalid!("seasonal_lift must be [{n}, weeks > 0]");
    }
    if t.taste_factors.len() != n * t.taste_dims {
        return invalid!("taste_factors must be [{n}, {}]", t.taste_dims);
    }
    if t.taste_factors.iter().any(|x| !x.is_finite()) {
        return invalid!("taste_factors must be finite");
    }
    Ok(())
}

fn validate_request(t: &ItemTables, r: &Request) -> CoreResult<()> {
    let n = t.n_items;
    let h = &r.history;
    let len = h.items.len();
    if [h.days_since_last.len(), h.mean_gap_days.len(), h.orders.len(), h.habit.len()].iter().any(|l| *l != len) {
        return invalid!("history arrays must all have {len} entries");
    }
    if !(h.days_to_next_trip.is_finite() && h.days_to_next_trip >= 0.0) {
        return invalid!("days_to_next_trip must be finite and >= 0, got {}", h.days_to_next_trip);
    }
    if r.like_you_items.len() != r.like_you_scores.len() {
        return invalid!("like_you_items and like_you_scores differ in length");
    }
    if r.like_you_scores.iter().any(|x| !x.is_finite() || *x < 0.0) {
        return invalid!("like_you_scores must be finite and >= 0");
    }
    for (name, l) in [("allowed", r.allowed.len()), ("category", r.category.len()), ("brand", r.brand.len())] {
        if l != n {
            return invalid!("{name} has {l} entries for {n} items");
        }
    }
    if r.weights.len() != N_SIGNALS {
        return invalid!("weights must have {N_SIGNALS} entries (one per signal), got {}", r.weights.len());
    }
    if r.weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return invalid!("weights must be finite and >= 0");
    }
    if r.week >= t.weeks {
        return invalid!("week column {} outside 0..{}", r.week, t.weeks);
    }
    if !(0.0..=1.0).contains(&r.replaced_weight) {
        return invalid!("replaced_weight must be in [0, 1], got {}", r.replaced_weight);
    }
    if !(0.0..=1.0).contains(&r.popularity_discount) {
        return invalid!("popularity_discount must be in [0, 1], got {}", r.popularity_discount);
    }
    if let Some(forest) = r.reranker {
        if forest.n_features != N_FEATURES {
            return invalid!("the reranker reads {} features; this kernel gives {N_FEATURES}", forest.n_features);
        }
    }
    for (what, items) in [
        ("history", h.items),
        ("basket", r.basket),
        ("extra candidate", r.extra_candidates),
        ("shoppers like you", r.like_you_items),
    ] {
        for item in items {
            check_index(what, *item, n)?;
        }
    }
    Ok(())
}

/// Ranks the catalog for one request. Pure function of its inputs (deterministic ties: lower
/// item index first).
pub fn rank(t: &ItemTables, r: &Request) -> CoreResult<Ranked> {
    validate_request(t, r)?;
    SCRATCH.with(|cell| {
        let mut scratch = cell.borrow_mut();
        scratch.prepare(t.n_items);
        let ranked = rank_with(t, r, &mut scratch);
        scratch.reset();
        Ok(ranked)
    })
}

fn gather_candidates(t: &ItemTables, r: &Request, s: &mut Scratch) {
    let h = &r.history;
    for (pos, item) in h.items.iter().enumerate() {
        s.entry(*item as usize).history_pos = pos as u32;
    }
    for item in r.basket {
        s.entry(*item as usize).in_basket = true;
    }
    // Context: every product of the history and the basket, once each. How often and how
    // lately it was bought is the habit signals' business; as evidence of what the shopper
    // likes, the staple bought weekly and the jar bought once last spring count alike (weighting
    // by habit made co-purchase lists worse at finding the products shoppers went on to try).
    for anchor in context(r) {
        for (j, sim) in t.cooc.row(anchor, r.neighbours_per_item) {
            let c = s.entry(j);
            c.co_purchase += sim;
            if sim > c.co_purchase_best {
                c.co_purchase_best = sim;
                c.co_purchase_anchor = anchor as i32;
            }
        }
        for (j, sim) in t.content.row(anchor, r.neighbours_per_item) {
            let c = s.entry(j);
            c.similar += sim;
            if sim > c.similar_best {
                c.similar_best = sim;
                c.similar_anchor = anchor as i32;
            }
        }
    }
    for anchor in r.basket {
        for (j, lift) in t.fbt.row(*anchor as usize, r.neighbours_per_item) {
            let c = s.entry(j);
            c.complement += lift;
            if lift > c.complement_best {
                c.complement_best = lift;
                c.complement_anchor = *anchor;
            }
        }
    }
    for item in r.extra_candidates {
        s.entry(*item as usize);
    }
    for (item, score) in r.like_you_items.iter().zip(r.like_you_scores) {
        s.entry(*item as usize).like_you = *score;
    }
}

/// The products the shopper's co-purchase, similarity and taste evidence starts from: the
/// history, then the basket products not in it.
fn context<'r>(r: &'r Request) -> impl Iterator<Item = usize> + 'r {
    let h = r.history.items;
    h.iter().chain(r.basket.iter().filter(move |i| !h.contains(i))).map(|i| *i as usize)
}

/// The shopper in taste space: the sum of the taste factors of the context products, read
/// back at a product by a dot product.
fn shopper_taste(t: &ItemTables, r: &Request) -> Vec<f32> {
    let mut taste = vec![0f32; t.taste_dims];
    for item in context(r) {
        taste.iter_mut().zip(t.taste_of(item)).for_each(|(a, x)| *a += x);
    }
    taste
}

/// Candidates ahead whose taste factors are fetched into cache while the current one is scored:
/// the factor rows of a few thousand scattered products are the kernel's slowest reads.
const TASTE_PREFETCH_AHEAD: usize = 8;
/// f32 values per 64-byte cache line.
const FLOATS_PER_LINE: usize = 16;

/// Each eligible candidate's taste: its factors read against the shopper's taste vector.
fn add_taste(t: &ItemTables, shopper: &[f32], candidates: &mut [Candidate], eligible: impl Fn(&Candidate) -> bool) {
    for i in 0..candidates.len() {
        if let Some(ahead) = candidates.get(i + TASTE_PREFETCH_AHEAD) {
            let start = ahead.item as usize * t.taste_dims;
            (start..start + t.taste_dims).step_by(FLOATS_PER_LINE).for_each(|at| prefetch(t.taste_factors, at));
        }
        let c = &mut candidates[i];
        if eligible(c) {
            c.taste = dot(shopper, t.taste_of(c.item as usize));
        }
    }
}

/// Candidates ahead whose per-item entries (popularity, trend, the week's seasonal lift, aisle,
/// brand, filter) are fetched into cache while the current one is scored: candidates come in
/// the order their evidence found them, scattered over tables of the whole catalog that do not
/// stay in cache together: nearly half of `signals_of`'s samples waited on those reads.
const SIGNALS_PREFETCH_AHEAD: usize = 8;

/// Asks for the per-item entries `signals_of` and `eligible` read of `item`. Never changes results.
#[inline(always)]
fn prefetch_signals(t: &ItemTables, r: &Request, item: usize) {
    prefetch(t.popularity, item);
    prefetch(t.trending, item);
    prefetch(t.seasonal_lift, r.week * t.n_items + item);
    prefetch(r.category, item);
    prefetch(r.brand, item);
    prefetch(r.allowed, item);
}

/// Dot product in eight independent lanes (vectorises; a single running sum would not).
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (a8, b8) = (a.chunks_exact(8), b.chunks_exact(8));
    let tail: f32 = a8.remainder().iter().zip(b8.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in a8.zip(b8) {
        for k in 0..8 {
            lanes[k] += x[k] * y[k];
        }
    }
    lanes.iter().sum::<f32>() + tail
}

/// Largest co-purchase, similarity and taste evidence among the products the list may show:
/// the per-request scale of those signals.
#[derive(Default)]
struct Strongest {
    co_purchase: f32,
    similar: f32,
    taste: f32,
    like_you: f32,
}

impl Strongest {
    fn among<'c>(candidates: impl Iterator<Item = &'c Candidate>) -> Self {
        candidates.fold(Strongest::default(), |m, c| Strongest {
            co_purchase: m.co_purchase.max(c.co_purchase),
            similar: m.similar.max(c.similar),
            taste: m.taste.max(c.taste),
            like_you: m.like_you.max(c.like_you),
        })
    }
}

fn scaled(value: f32, strongest: f32) -> f32 {
    if strongest > 0.0 {
        (value / strongest).clamp(0.0, 1.0)
    } else {
        0.0
    }
}

fn signals_of(t: &ItemTables, r: &Request, c: &Candidate, e: &Evidence) -> [f32; N_SIGNALS] {
    let i = c.item as usize;
    let mut v = [0.0f32; N_SIGNALS];
    if c.history_pos != NOT_IN_HISTORY {
        let h = &r.history;
        let p = c.history_pos as usize;
        let cycle = expected_cycle(h.mean_gap_days[p], h.orders[p], t.population_cycle_days[i]);
        v[REPLENISHMENT] = h.habit[p] * dueness(h.days_since_last[p], cycle);
        v[DUE_BY_NEXT_TRIP] = h.habit[p] * dueness(h.days_since_last[p] + h.days_to_next_trip, cycle);
        v[HABIT] = h.habit[p];
        v[REPURCHASE] = t.repurchase_rate[i].clamp(0.0, 1.0);
        if replaced(&e.newest_choices, r.category[i], h.days_since_last[p]) {
            for signal in [REPLENISHMENT, DUE_BY_NEXT_TRIP, HABIT, REPURCHASE] {
                v[signal] *= r.replaced_weight;
            }
        }
    }
    v[CO_PURCHASE] = scaled(c.co_purchase, e.strongest.co_purchase);
    v[SIMILAR] = scaled(c.similar, e.strongest.similar);
    v[TASTE] = scaled(c.taste, e.strongest.taste);
    v[SHOPPERS_LIKE_YOU] = scaled(c.like_you, e.strongest.like_you);
    v[BASKET_COMPLEMENT] = positive_squash(c.complement);
    v[POPULARITY] = t.popularity[i].clamp(0.0, 1.0);
    v[TRENDING] = positive_squash(t.trending[i]);
    v[SEASONAL] = positive_squash(t.seasonal_lift[r.week * t.n_items + i] - 1.0);
    v[CATEGORY_AFFINITY] = e.categories.at(r.category[i]);
    v[BRAND_AFFINITY] = e.brands.at(r.brand[i]);
    // NaN from a corrupt table must not poison the ordering.
    v.iter_mut().filter(|x| !x.is_finite()).for_each(|x| *x = 0.0);
    v
}

/// A candidate's features for a re-ranker (`FEATURES`): its signals `v` and blend score, then
/// what the shopper's history says about it. Bounded, so one odd value cannot dominate a split.
fn features_of(
    t: &ItemTables,
    r: &Request,
    c: &Candidate,
    v: &[f32; N_SIGNALS],
    blend_score: f32,
) -> [f32; N_FEATURES] {
    let h = &r.history;
    let mut x = [0.0f32; N_FEATURES];
    x[..N_SIGNALS].copy_from_slice(v);
    x[BLEND_SCORE] = blend_score;
    x[DAYS_TO_NEXT_TRIP] = h.days_to_next_trip.min(365.0);
    x[HISTORY_SIZE] = (h.items.len() as f32).ln_1p();
    x[DUE_RATIO] = -1.0;
    x[DAYS_SINCE_LAST] = -1.0;
    if c.history_pos != NOT_IN_HISTORY {
        let p = c.history_pos as usize;
        let cycle = expected_cycle(h.mean_gap_days[p], h.orders[p], t.population_cycle_days[c.item as usize]);
        x[IN_HISTORY] = 1.0;
        x[ORDERS] = h.orders[p].max(0.0).ln_1p();
        x[DAYS_SINCE_LAST] = h.days_since_last[p].clamp(0.0, 365.0);
        if cycle > 0.0 {
            x[DUE_RATIO] = ((h.days_since_last[p] + 0.5) / cycle).clamp(0.0, 20.0);
        }
    }
    x.iter_mut().filter(|x| !x.is_finite()).for_each(|x| *x = 0.0);
    x
}

/// A scored candidate: (score, item, slot in the scratch candidates).
type Scored = (f32, u32, u32);

fn better(a: &Scored, b: &Scored) -> std::cmp::Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

/// How many of the best candidates are sorted up front: enough for k items under the usual
/// per-aisle caps; the rest is only sorted if the caps exhaust them.
fn head_size(k: usize) -> usize {
    (4 * k).max(64)
}

/// What a request's candidates are scored against once they are gathered: the per-request
/// scales and the shopper's aisle and brand shares.
struct Evidence {
    strongest: Strongest,
    categories: Affinity,
    brands: Affinity,
    newest_choices: Vec<(i32, f32)>,
}

/// Whether the list may show a candidate at all (whatever its score).
fn eligible(r: &Request, c: &Candidate) -> bool {
    !c.in_basket && r.allowed[c.item as usize] && !(r.exclude_history && c.history_pos != NOT_IN_HISTORY)
}

/// Gathers the request's candidates into `s` and the evidence their signals are scaled by.
/// `with_taste`: give them their taste too (ranking skips it when the blend does not weigh it;
/// without it the taste signal is 0, which a zero weight makes no different).
fn gather(t: &ItemTables, r: &Request, s: &mut Scratch, with_taste: bool) -> Evidence {
    gather_candidates(t, r, s);
    if with_taste && t.taste_dims > 0 {
        add_taste(t, &shopper_taste(t, r), &mut s.candidates, |c| eligible(r, c));
    }
    Evidence {
        strongest: Strongest::among(s.candidates.iter().filter(|c| eligible(r, c))),
        categories: Affinity::of(&r.history, r.category),
        brands: Affinity::of(&r.history, r.brand),
        newest_choices: if r.replaced_weight < 1.0 { newest_choice_by_aisle(&r.history, r.category) } else { vec![] },
    }
}

/// A candidate's signals with the request's popularity discount applied: what the weights
/// multiply. A zero discount leaves them exactly as they were (no multiplication by 1.0).
fn discounted(t: &ItemTables, r: &Request, c: &Candidate, e: &Evidence) -> [f32; N_SIGNALS] {
    let mut v = signals_of(t, r, c, e);
    if r.popularity_discount > 0.0 {
        let popularity = t.popularity[c.item as usize];
        let discount =
            1.0 - r.popularity_discount * if popularity.is_finite() { popularity.clamp(0.0, 1.0) } else { 0.0 };
        v.iter_mut().for_each(|x| *x *= discount);
    }
    v
}

/// Each signal's contribution under `weights`, and their sum: the blend score.
fn blended(weights: &[f32], v: &[f32; N_SIGNALS]) -> ([f32; N_SIGNALS], f32) {
    let mut contributions = [0.0f32; N_SIGNALS];
    let mut score = 0.0f32;
    for k in 0..N_SIGNALS {
        contributions[k] = weights[k] * v[k];
        score += contributions[k];
    }
    (contributions, score)
}

fn rank_with(t: &ItemTables, r: &Request, s: &mut Scratch) -> Ranked {
    let evidence = gather(t, r, s, r.weights[TASTE] > 0.0);
    let weight_total: f32 = r.weights.iter().sum();
    let score_of = |c: &Candidate| blended(r.weights, &discounted(t, r, c, &evidence));

    let mut scored: Vec<Scored> = Vec::with_capacity(s.candidates.len());
    for (slot, c) in s.candidates.iter().enumerate() {
        if let Some(ahead) = s.candidates.get(slot + SIGNALS_PREFETCH_AHEAD) {
            prefetch_signals(t, r, ahead.item as usize);
        }
        if !eligible(r, c) {
            continue;
        }
        let (_, score) = score_of(c);
        if score > 0.0 {
            scored.push((score, c.item, slot as u32));
        }
    }
    let category_of = |e: &Scored| r.category[e.1 as usize];
    let listed = select(scored, r.k, r.per_category_cap, category_of, |head| {
        if let Some(forest) = r.reranker {
            rerank_head(head, forest, |slot| {
                let c = &s.candidates[slot as usize];
                let (_, score) = blended(r.weights, &discounted(t, r, c, &evidence));
                features_of(t, r, c, &signals_of(t, r, c, &evidence), score)
            });
        }
    });
    let mut out = Ranked::default();
    for entry in &listed {
        push_item(&mut out, *entry, &s.candidates, &score_of, weight_total);
    }
    if r.with_features {
        for (_, _, slot) in listed {
            let c = &s.candidates[slot as usize];
            let (_, score) = score_of(c);
            out.features.extend_from_slice(&features_of(t, r, c, &signals_of(t, r, c, &evidence), score));
        }
    }
    out
}

/// The listed entries of `scored`, best first: the best `k` under the per-aisle `cap` (0 = no
/// cap), the head of the best `head_size(k)` first ordered by `reorder_head` (a re-ranker), and
/// when the cap leaves the list short, products it held back, the cap relaxed a step at a time.
fn select(
    mut scored: Vec<Scored>,
    k: usize,
    cap: usize,
    category_of: impl Fn(&Scored) -> i32,
    reorder_head: impl FnOnce(&mut [Scored]),
) -> Vec<Scored> {
    let head = head_size(k).min(scored.len());
    if head < scored.len() {
        scored.select_nth_unstable_by(head, better);
    }
    scored[..head].sort_unstable_by(better);
    reorder_head(&mut scored[..head]);

    let mut listed: Vec<Scored> = Vec::with_capacity(k);
    let mut per_category: Vec<(i32, usize)> = Vec::new();
    // Products the aisle cap held back, best first: the cap is a preference for variety, not a
    // reason to answer short, so a catalog with few aisles still fills the list from these.
    let mut held_back: Vec<Scored> = Vec::new();
    let mut pos = 0;
    while listed.len() < k && pos < scored.len() {
        if pos == head {
            scored[head..].sort_unstable_by(better); // the caps used up the head: rank the rest
        }
        let entry = scored[pos];
        pos += 1;
        if within_cap(&mut per_category, category_of(&entry), cap) {
            listed.push(entry);
        } else {
            held_back.push(entry);
        }
    }
    // Relax the cap a step at a time (2x, 3x, ...) so the fill still spreads over the aisles
    // there are. Each round takes at least the best held-back product, so this ends.
    let mut relaxed = cap;
    while listed.len() < k && !held_back.is_empty() {
        relaxed += cap;
        let mut still_held = Vec::with_capacity(held_back.len());
        for entry in held_back {
            if listed.len() < k && within_cap(&mut per_category, category_of(&entry), relaxed) {
                listed.push(entry);
            } else {
                still_held.push(entry);
            }
        }
        held_back = still_held;
    }
    listed
}

/// A request's eligible candidates with their signals (popularity discount applied): what
/// every blend of the same weights-free settings (history, basket, filters, neighbours per
/// item, replaced weight, discount, exclusion of the history) scores them by. Tuning tries
/// hundreds of weight vectors on the same shoppers; gathering is most of a ranking's cost.
pub struct CandidateSignals {
    items: Vec<u32>,
    categories: Vec<i32>,
    signals: Vec<[f32; N_SIGNALS]>,
}

impl CandidateSignals {
    pub fn len(&self) -> usize {
        self.items.len()
    }

    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The candidates and signals of a request (its weights, k, cap and re-ranker are not used).
pub fn candidate_signals(t: &ItemTables, r: &Request) -> CoreResult<CandidateSignals> {
    validate_request(t, r)?;
    SCRATCH.with(|cell| {
        let mut s = cell.borrow_mut();
        s.prepare(t.n_items);
        let evidence = gather(t, r, &mut s, true);
        // Sized up front: thousands of candidates grown by doubling were copied over and over
        // (reallocation was a sixth of gathering's samples).
        let n = s.candidates.iter().filter(|c| eligible(r, c)).count();
        let mut out = CandidateSignals {
            items: Vec::with_capacity(n),
            categories: Vec::with_capacity(n),
            signals: Vec::with_capacity(n),
        };
        for (slot, c) in s.candidates.iter().enumerate() {
            if let Some(ahead) = s.candidates.get(slot + SIGNALS_PREFETCH_AHEAD) {
                prefetch_signals(t, r, ahead.item as usize);
            }
            if !eligible(r, c) {
                continue;
            }
            out.items.push(c.item);
            out.categories.push(r.category[c.item as usize]);
            out.signals.push(discounted(t, r, c, &evidence));
        }
        s.reset();
        Ok(out)
    })
}

/// The items `rank` lists for the request `candidates` was taken from, under `weights`, `k`
/// and `per_category_cap` instead of its own (and no re-ranker): the same items in the same
/// order, for a fraction of the cost.
pub fn rank_candidates(
    candidates: &CandidateSignals,
    weights: &[f32],
    k: usize,
    per_category_cap: usize,
) -> CoreResult<Vec<i32>> {
    if weights.len() != N_SIGNALS {
        return invalid!("weights must have {N_SIGNALS} entries (one per signal), got {}", weights.len());
    }
    if weights.iter().any(|w| !w.is_finite() || *w < 0.0) {
        return invalid!("weights must be finite and >= 0");
    }
    let mut scored: Vec<Scored> = Vec::with_capacity(candidates.len());
    for (slot, v) in candidates.signals.iter().enumerate() {
        let (_, score) = blended(weights, v);
        if score > 0.0 {
            scored.push((score, candidates.items[slot], slot as u32));
        }
    }
    let category_of = |e: &Scored| candidates.categories[e.2 as usize];
    let listed = select(scored, k, per_category_cap, category_of, |_| {});
    Ok(listed.into_iter().map(|(_, item, _)| item as i32).collect())
}

/// Orders the head (sorted by blend score) by the re-ranker instead. The head's scores stay
/// where they were, best first, so a listed item's score still falls down the list and its
/// confidence with it; ties keep the blend's order.
fn rerank_head(head: &mut [Scored], forest: &Forest, features: impl Fn(u32) -> [f32; N_FEATURES]) {
    let blend_scores: Vec<f32> = head.iter().map(|e| e.0).collect();
    let mut learned: Vec<(f32, Scored)> = head.iter().map(|e| (forest.predict(&features(e.2)), *e)).collect();
    learned.sort_by(|a, b| b.0.total_cmp(&a.0)); // stable: ties keep the blend's order
    for ((entry, (_, (_, item, slot))), score) in head.iter_mut().zip(learned).zip(blend_scores) {
        *entry = (score, item, slot);
    }
}

/// Counts a product of aisle `category` against the aisle's allowance when it has room under
/// `cap` (0 = no cap; products without an aisle, -1, are never capped).
fn within_cap(per_category: &mut Vec<(i32, usize)>, category: i32, cap: usize) -> bool {
    if cap == 0 || category < 0 {
        return true;
    }
    match per_category.iter_mut().find(|(c, _)| *c == category) {
        Some((_, n)) if *n >= cap => false,
        Some((_, n)) => {
            *n += 1;
            true
        }
        None => {
            per_category.push((category, 1));
            true
        }
    }
}

fn push_item(
    out: &mut Ranked,
    (score, item, slot): Scored,
    candidates: &[Candidate],
    score_of: &impl Fn(&Candidate) -> ([f32; N_SIGNALS], f32),
    weight_total: f32,
) {
    let c = &candidates[slot as usize];
    let (contributions, own_score) = score_of(c);
    out.items.push(item as i32);
    out.scores.push(score);
    out.confidence.push(confidence(score, weight_total));
    // Reasons are the item's own strongest signals, whatever place a re-ranker gave it.
    push_reasons(out, &contributions, own_score, c);
}

/// Confidence in [0, 1): a saturating function of the score relative to the total weight (a
/// product that maxes out every signal would score `weight_total`). Monotone in the score, so
/// the list order and the confidence order agree; it is a strength, not a probability.
fn confidence(score: f32, weight_total: f32) -> f32 {
    if weight_total <= 0.0 {
        return 0.0;
    }
    1.0 - (-4.0 * score / weight_total).exp()
}

fn push_reasons(out: &mut Ranked, contributions: &[f32; N_SIGNALS], score: f32, c: &Candidate) {
    let mut order: [usize; N_SIGNALS] = std::array::from_fn(|k| k);
    order.sort_by(|a, b| contributions[*b].total_cmp(&contributions[*a]).then(a.cmp(b)));
    let mut given = 0;
    for &k in order.iter().take(REASONS_PER_ITEM) {
        if contributions[k] > 0.0 && contributions[k] >= REASON_MIN_SHARE * score {
            out.reasons.push(k as i8);
            out.anchors.push(match k {
                CO_PURCHASE => c.co_purchase_anchor,
                BASKET_COMPLEMENT => c.complement_anchor,
                SIMILAR => c.similar_anchor,
                _ => -1,
            });
            given += 1;
        }
    }
    for _ in given..REASONS_PER_ITEM {
        out.reasons.push(NO_REASON);
        out.anchors.push(-1);
    }
}

#[cfg(test)]
mod tests;

pub mod py;
