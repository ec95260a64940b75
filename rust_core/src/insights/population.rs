//! Population cycles: how often a typical repeat buyer buys each product.
//!
//! Each repeat buyer counts once (the median of their own gaps), and the product's cycle is the
//! median over its repeat buyers, so a handful of heavy buyers cannot set the cycle for everyone.
//! These are the priors the per-customer estimate is shrunk towards; the same computation over
//! customers' order days (one "item") gives the population's shopping cadence.
//!
//! The same pass keeps a sample of the gaps repeat buyers took, each with its buyer's median
//! gap: the population's side of the survival outlook (`survival.rs`).
//!
//! The same pass estimates how strongly to shrink (the empirical-Bayes prior strength k in the
//! weight n / (n + k)): k = σ² / τ², the within-buyer variance of log gaps over the variance of
//! buyers' own log cycles around their item's mean. Habits that differ a lot between people
//! (shopping cadence) get a small k; products everyone uses up alike get a large one.
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use super::cycles::{check_days, trip_days_into};
use super::robust::median;
use crate::engine::sparse::{group_slices, grouped};
use crate::errors::CoreResult;
use crate::invalid;

#[derive(Debug, Default, PartialEq)]
pub struct PopulationCycles {
    /// Median over repeat buyers of their median gap, in days; NaN when nobody bought twice.
    pub cycle_days: Vec<f64>,
    /// Customers who bought the item at least once.
    pub buyers: Vec<u32>,
    /// Customers who bought it on at least two separate trips.
    pub repeat_buyers: Vec<u32>,
    /// Empirical-Bayes prior strength for shrinking a buyer's cycle towards the item's; NaN when
    /// too few buyers have three or more trips to tell.
    pub prior_strength: f64,
    /// A random sample (at most `max_gap_sample`, the same for the same input) of the gaps of
    /// buyers with two gaps or more, and each one's buyer's median gap for that item.
    pub sample_gaps: Vec<f64>,
    pub sample_scales: Vec<f64>,
}

/// Bounds of the estimated prior strength: never ignore the population completely, never let
/// it outweigh a long personal history.
const MIN_PRIOR_STRENGTH: f64 = 0.1;
const MAX_PRIOR_STRENGTH: f64 = 20.0;
const SAMPLE_SEED: u64 = 0x6761_7073; // "gaps"

/// Sums over buyers with at least two gaps, for the variance components of log gaps.
#[derive(Clone, Copy, Default)]
struct Spread {
    buyers: f64,
    items: f64,
    within: f64,        // Σ s² (sample variance of a buyer's log gaps)
    within_over_n: f64, // Σ s² / n (the noise in each buyer's mean)
    between: f64,       // Σ (buyer mean - item mean)²
}

impl Spread {
    fn add(self, other: Spread) -> Spread {
        Spread {
            buyers: self.buyers + other.buyers,
            items: self.items + other.items,
            within: self.within + other.within,
            within_over_n: self.within_over_n + other.within_over_n,
            between: self.between + other.between,
        }
    }

    /// k = σ² / τ² with τ² = (between-buyer variance) − (noise of buyer means).
    fn prior_strength(&self) -> f64 {
        let degrees = self.buyers - self.items;
        if degrees < 2.0 {
            return f64::NAN;
        }
        let sigma2 = self.within / self.buyers;
        let tau2 = self.between / degrees - self.within_over_n / self.buyers;
        if tau2 <= 0.0 {
            return MAX_PRIOR_STRENGTH;
        }
        (sigma2 / tau2).clamp(MIN_PRIOR_STRENGTH, MAX_PRIOR_STRENGTH)
    }
}

/// One item's buyers: (mean log gap, sample variance, gaps) of those with at least two gaps.
fn spread_of(buyers: &[(f64, f64, f64)]) -> Spread {
    if buyers.len() < 2 {
        return Spread::default();
    }
    let mean = buyers.iter().map(|b| b.0).sum::<f64>() / buyers.len() as f64;
    buyers.iter().fold(Spread { items: 1.0, ..Spread::default() }, |acc, &(m, var, n)| Spread {
        buyers: acc.buyers + 1.0,
        items: acc.items,
        within: acc.within + var,
        within_over_n: acc.within_over_n + var / n,
        between: acc.between + (m - mean) * (m - mean),
    })
}

/// Mean and sample variance of the log gaps (gaps must be > 0, at least two of them).
fn log_moments(gaps: &[f64]) -> (f64, f64, f64) {
    let n = gaps.len() as f64;
    let mean = gaps.iter().map(|g| g.ln()).sum::<f64>() / n;
    let var = gaps.iter().map(|g| (g.ln() - mean) * (g.ln() - mean)).sum::<f64>() / (n - 1.0);
    (mean, var, n)
}

/// One worker's buffers for a buyer's trips and gaps, reused from buyer to buyer: a build has
/// tens of millions of (item, buyer) runs, and a few allocations each cost more than the sums.
#[derive(Default)]
struct BuyerScratch {
    trips: Vec<f64>,
    gaps: Vec<f64>,
}

impl BuyerScratch {
    /// The gaps between the trips of one buyer's purchase days (ascending), as `trip_days`
    /// collapses them.
    fn gaps_of(&mut self, sorted_days: impl Iterator<Item = f64>, same_trip_days: f64) -> &mut [f64] {
        trip_days_into(sorted_days, same_trip_days, &mut self.trips);
        self.gaps.clear();
        self.gaps.extend(self.trips.windows(2).map(|w| w[1] - w[0]));
        &mut self.gaps
    }
}

/// `customer_codes[i]`, `item_codes[i]` (in `0..n_items`) and `days[i]` describe purchase i,
/// in any order.
pub fn population_cycles(
    customer_codes: &[i64],
    item_codes: &[i64],
    days: &[f64],
    n_items: usize,
    same_trip_days: f64,
    max_gap_sample: usize,
) -> CoreResult<PopulationCycles> {
    if customer_codes.len() != days.len() || item_codes.len() != days.len() {
        return invalid!(
            "customer_codes, item_codes and days must have the same length, got {}, {} and {}",
            customer_codes.len(),
            item_codes.len(),
            days.len()
        );
    }
    if !(same_trip_days >= 0.0 && same_trip_days.is_finite()) {
        return invalid!("same_trip_days must be a finite number >= 0, got {same_trip_days}");
    }
    check_days(days)?;
    if let Some(row) = item_codes.iter().position(|&c| c < 0 || c as usize >= n_items) {
        return invalid!("item code {} at row {row} is outside 0..{n_items}", item_codes[row]);
    }

    // Rows by item (a counting sort: one pass), then each item's rows by customer and day, items
    // in parallel: a global comparison sort of every row costs several times more at tens of
    // millions of rows (its comparisons read three arrays at random).
    let (item_start, mut order) = grouped(item_codes, n_items);
    group_slices(&mut order, &item_start).par_iter_mut().for_each(|run| {
        run.sort_unstable_by(|&a, &b| customer_codes[a].cmp(&customer_codes[b]).then(days[a].total_cmp(&days[b])))
    });

    type ItemSummary = (f64, u32, u32, Spread, Vec<(f64, f64)>);
    // The gap sample is the insights' business; the model build asks for none, and then no
    // buyer's gaps are kept (at tens of millions of lines they would be hundreds of MB).
    let sampling = max_gap_sample > 0;
    let per_item: Vec<ItemSummary> = (0..n_items)
        .into_par_iter()
        .map_init(BuyerScratch::default, |scratch, item| {
            let rows = &order[item_start[item]..item_start[item + 1]];
            let (mut buyer_cycles, mut buyers, mut moments) = (Vec::new(), 0u32, Vec::new());
            let mut taken = Vec::new();
            for run in rows.chunk_by(|&a, &b| customer_codes[a] == customer_codes[b]) {
                buyers += 1;
                let gaps = scratch.gaps_of(run.iter().map(|&r| days[r]), same_trip_days);
                if gaps.len() >= 2 && gaps.iter().all(|&g| g > 0.0) {
                    moments.push(log_moments(gaps));
                }
                if gaps.is_empty() {
                    continue;
                }
                let in_order_from = taken.len();
                if sampling && gaps.len() >= 2 {
                    taken.extend(gaps.iter().map(|&g| (g, 0.0)));
                }
                let usual = median(gaps);
                buyer_cycles.push(usual);
                if usual > 0.0 {
                    taken[in_order_from..].iter_mut().for_each(|t| t.1 = usual);
                } else {
                    taken.truncate(in_order_from);
                }
            }
            let repeat_buyers = buyer_cycles.len() as u32;
            (median(&mut buyer_cycles), buyers, repeat_buyers, spread_of(&moments), taken)
        })
        .collect();
    let pooled: usize = per_item.iter().map(|t| t.4.len()).sum();
    let keep = pooled.min(max_gap_sample);
    let mut sample_gaps = Vec::with_capacity(keep);
    let mut sample_scales = Vec::with_capacity(keep);
    if keep > 0 {
        // Random, not every n-th: gaps come grouped by buyer and in time order, and a regular
        // stride picks the same phase of every buyer's year.
        let all: Vec<(f64, f64)> = per_item.iter().flat_map(|t| t.4.iter().copied()).collect();
        let mut rng = ChaCha8Rng::seed_from_u64(SAMPLE_SEED);
        let mut chosen = rand::seq::index::sample(&mut rng, pooled, keep).into_vec();
        chosen.sort_unstable();
        for i in chosen {
            let (gap, scale) = all[i];
            sample_gaps.push(gap);
            sample_scales.push(scale);
        }
    }

    Ok(PopulationCycles {
        cycle_days: per_item.iter().map(|t| t.0).collect(),
        buyers: per_item.iter().map(|t| t.1).collect(),
        repeat_buyers: per_item.iter().map(|t| t.2).collect(),
        prior_strength: per_item.iter().fold(Spread::default(), |acc, t| acc.add(t.3)).prior_strength(),
        sample_gaps,
        sample_scales,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_repeat_buyer_counts_once() {
        // Item 0: customer 1 buys every 2 days (many times), customers 2 and 3 every 10 days.
        let mut customers = vec![];
        let mut items = vec![];
        let mut days = vec![];
        for d in (0..40).step_by(2) {
            customers.push(1);
            items.push(0);
            days.push(d as f64);
        }
        for c in [2, 3] {
            for d in [0.0, 10.0, 20.0] {
                customers.push(c);
                items.push(0);
                days.push(d);
            }
        }
        // Item 1: bought once by customer 2; item 2: never.
        customers.push(2);
        items.push(1);
        days.push(5.0);
        let result = population_cycles(&customers, &items, &days, 3, 0.5, 1000).unwrap();
        assert_eq!(result.cycle_days[0], 10.0);
        assert_eq!(result.buyers, vec![3, 1, 0]);
        assert_eq!(result.repeat_buyers, vec![3, 0, 0]);
        assert!(result.cycle_days[1].is_nan() && result.cycle_days[2].is_nan());
        // Everyone perfectly regular: no within-buyer noise, so the population hardly matters.
        assert_eq!(result.prior_strength, MIN_PRIOR_STRENGTH);
        // Every gap of the buyers with two gaps or more, with their buyer's usual gap.
        assert_eq!(result.sample_gaps.len(), 19 + 2 + 2);
        assert_eq!(&result.sample_scales[..2], &[2.0, 2.0]);
        assert_eq!(&result.sample_gaps[19..], &[10.0; 4]);
        let small = population_cycles(&customers, &items, &days, 3, 0.5, 5).unwrap();
        assert_eq!(small.sample_gaps.len(), 5);
        // No sample asked for (the model build): the same cycles, no gaps kept.
        let none = population_cycles(&customers, &items, &days, 3, 0.5, 0).unwrap();
        assert!(none.sample_gaps.is_empty() && none.sample_scales.is_empty());
        assert_eq!((none.buyers, none.repeat_buyers), (result.buyers, result.repeat_buyers));
        assert_eq!(none.cycle_days[0], result.cycle_days[0]);
        assert_eq!(none.prior_strength, result.prior_strength);
    }

    #[test]
    fn prior_strength_is_within_over_between_variance() {
        // Buyers alternate gaps 4/16, 8/32 and 16/64: log means ln 8, ln 16, ln 32.
        let mut customers = vec![];
        let mut days = vec![];
        for (customer, short) in [(0i64, 4.0), (1, 8.0), (2, 16.0)] {
            let mut day = 0.0;
            for i in 0..5 {
                customers.push(customer);
                days.push(day);
                day += if i % 2 == 0 { short } else { 4.0 * short };
            }
        }
        let items = vec![0i64; days.len()];
        let result = population_cycles(&customers, &items, &days, 1, 0.5, 1000).unwrap();
        // Within: each buyer's 4 log gaps vary by 4/3 ln²2. Between: means ln 2 apart, so
        // Σ (m - mean)² / 2 degrees = ln²2, less the noise of the means (4/3 ln²2 / 4).
        let ln2_sq = 2f64.ln().powi(2);
        let expected = (4.0 / 3.0 * ln2_sq) / (ln2_sq - ln2_sq / 3.0);
        assert!((result.prior_strength - expected).abs() < 1e-9, "{}", result.prior_strength);
        assert!((expected - 2.0).abs() < 1e-12);
    }

    #[test]
    fn prior_strength_is_unknown_without_enough_buyers() {
        let result = population_cycles(&[0, 0, 0], &[0, 0, 0], &[0.0, 7.0, 14.0], 1, 0.5, 1000).unwrap();
        assert!(result.prior_strength.is_nan());
    }

    #[test]
    fn same_day_repeats_are_not_a_cycle() {
        let result = population_cycles(&[0, 0, 0], &[0, 0, 0], &[1.0, 1.1, 8.0], 1, 0.5, 1000).unwrap();
        assert_eq!(result.cycle_days, vec![7.0]);
    }

    #[test]
    fn rejects_codes_outside_the_catalog() {
        let err = population_cycles(&[0], &[5], &[1.0], 2, 0.5, 1000).unwrap_err();
        assert!(err.to_string().contains("item code 5"), "{err}");
    }
}
