//! When does something happen next, given how long it has not: the survival view of the gaps.
//!
//! A shopper last seen `e` days ago will not take a gap shorter than `e`: of all the gaps they
//! (and people like them) have taken, only those longer than `e` describe what happens next,
//! and the wait left is `gap - e`. The plain mean gap ignores this, so it calls a late shopper
//! "due now" for ever. The outlook here is the distribution of that remaining wait:
//! - the group's own gaps longer than `e`, recent ones weighing more (habits drift);
//! - a population sample of gaps, each moved towards the group's own scale by the factor
//!   (scale / its owner's scale)^β, longer than `e`, weighing `population_weight` in all: with
//!   few gaps of its own a shopper looks like the population, with many like themselves.
//!
//! Errors are scored in absolute days, so the point forecast is the weighted MEDIAN of the
//! remaining wait, not its mean. Also reported: the chance that it happens within a horizon,
//! and the median wait given that it does (what a forecast over that horizon should say).
use rayon::prelude::*;

use super::cycles::{check_days, group_rows, trip_days};
use crate::errors::CoreResult;
use crate::invalid;

/// Gaps within this many days of the elapsed time still count as "not yet taken" (float noise
/// between days computed from timestamps must not decide whether a 7-day habit is due today).
const TOLERANCE_DAYS: f64 = 1e-6;
const QUANTILE_SLACK: f64 = 1e-12;

#[derive(Clone, Copy, Debug)]
pub struct OutlookParams {
    /// Total weight of the population sample against one weight per own gap.
    pub population_weight: f64,
    /// β in [0, 1]: 0 takes the population's gaps as they are, 1 rescales them fully to the
    /// group's own scale.
    pub scale_exponent: f64,
    /// An own gap this many gaps older than the latest weighs half as much; <= 0: all alike.
    pub recency_half_life: f64,
    /// The horizon of `horizon_probability` and `horizon_median_days`, in days after `as_of`.
    pub horizon_days: f64,
    /// Purchases closer together than this many days count as one trip.
    pub same_trip_days: f64,
}

impl Default for OutlookParams {
    fn default() -> Self {
        OutlookParams {
            population_weight: 10.0,
            scale_exponent: 1.0,
            recency_half_life: 20.0,
            horizon_days: 28.0,
            same_trip_days: 0.5,
        }
    }
}

impl OutlookParams {
    pub fn validate(&self) -> CoreResult<()> {
        if !(self.population_weight >= 0.0 && self.population_weight.is_finite()) {
            return invalid!("population_weight must be a finite number >= 0, got {}", self.population_weight);
        }
        if !(0.0..=1.0).contains(&self.scale_exponent) {
            return invalid!("scale_exponent must be in [0, 1], got {}", self.scale_exponent);
        }
        if self.recency_half_life.is_nan() {
            return invalid!("recency_half_life must be a number, got NaN");
        }
        if !(self.horizon_days >= 0.0 && self.horizon_days.is_finite()) {
            return invalid!("horizon_days must be a finite number >= 0, got {}", self.horizon_days);
        }
        if !(self.same_trip_days >= 0.0 && self.same_trip_days.is_finite()) {
            return invalid!("same_trip_days must be a finite number >= 0, got {}", self.same_trip_days);
        }
        Ok(())
    }
}

/// A population sample of gaps and, for each, the usual gap of the shopper who took it, held
/// as one sorted run of gaps per distinct owner scale. Rescaling keeps each run in order, so a
/// group's waits are counted by binary search instead of sorting the sample for every group:
/// the caller keeps the number of distinct scales small (`population_cycles` rounds them).
pub struct GapSample {
    runs: Vec<(f64, Vec<f64>)>,
    len: usize,
}

impl GapSample {
    pub fn new(gaps: &[f64], scales: &[f64]) -> CoreResult<Self> {
        if gaps.len() != scales.len() {
            return invalid!("population_gaps has {} values but population_scales has {}", gaps.len(), scales.len());
        }
        if let Some(i) = gaps.iter().position(|g| !(g.is_finite() && *g >= 0.0)) {
            return invalid!("population_gaps[{i}] must be a finite number >= 0");
        }
        if let Some(i) = scales.iter().position(|s| !(s.is_finite() && *s > 0.0)) {
            return invalid!("population_scales[{i}] must be a finite number > 0");
        }
        let mut order: Vec<usize> = (0..gaps.len()).collect();
        order.sort_unstable_by(|&a, &b| scales[a].total_cmp(&scales[b]).then(gaps[a].total_cmp(&gaps[b])));
        let runs = order
            .chunk_by(|&a, &b| scales[a] == scales[b])
            .map(|run| (scales[run[0]], run.iter().map(|&i| gaps[i]).collect()))
            .collect();
        Ok(GapSample { runs, len: gaps.len() })
    }
}

/// The outlook of one group.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Outlook {
    /// Trips before `as_of` (same-trip purchases merged).
    pub trips: u32,
    /// Days from the latest trip to `as_of`; NaN without trips.
    pub elapsed_days: f64,
    /// Median remaining wait in days after `as_of`; +inf when no gap seen is as long as the
    /// elapsed time (overdue beyond experience); NaN without trips.
    pub median_days: f64,
    /// Chance of the next occurrence within `horizon_days` (0 without trips).
    pub horizon_probability: f64,
    /// Median remaining wait given that it falls within the horizon; NaN when it cannot.
    pub horizon_median_days: f64,
}

impl Outlook {
    fn unknown(trips: u32, elapsed_days: f64) -> Self {
        Outlook {
            trips,
            elapsed_days,
            median_days: if trips == 0 { f64::NAN } else { f64::INFINITY },
            horizon_probability: 0.0,
            horizon_median_days: f64::NAN,
        }
    }
}

/// Remaining waits, sorted within each run: run r's wait i is `max(0, gaps[i] * factor - elapsed)`
/// for i in `start..`, each weighing `weight`. The group's own waits are one run (factor 1) with
/// weights of their own.
struct Run<'a> {
    gaps: &'a [f64],
    factor: f64,
    start: usize,
    weight: f64,
    cumulative: Option<Vec<f64>>, // own run: cumulative weights from `start`
}

impl Run<'_> {
    fn wait(&self, i: usize, elapsed: f64) -> f64 {
        (self.gaps[i] * self.factor - elapsed).max(0.0)
    }

    /// Index one past the last wait <= x.
    fn upto(&self, x: f64, elapsed: f64) -> usize {
        self.start + self.gaps[self.start..].partition_point(|&g| (g * self.factor - elapsed).max(0.0) <= x)
    }

    fn mass_upto(&self, x: f64, elapsed: f64) -> f64 {
        let n = self.upto(x, elapsed) - self.start;
        match &self.cumulative {
            Some(cumulative) => {
                if n == 0 {
                    0.0
                } else {
                    cumulative[n - 1]
                }
            }
            None => n as f64 * self.weight,
        }
    }

    fn total(&self) -> f64 {
        match &self.cumulative {
            Some(cumulative) => cumulative.last().copied().unwrap_or(0.0),
            None => (self.gaps.len() - self.start) as f64 * self.weight,
        }
    }
}

/// Smallest wait whose cumulative weight over all runs reaches `target` (0 < target <= total):
/// bisect on the wait, then take the first wait past the lower bound.
fn weighted_quantile(runs: &[Run<'_>], elapsed: f64, target: f64) -> f64 {
    // An even number of equal weights puts the median exactly on a boundary; rounding must not
    // decide which side, so a mass within a relative 1e-12 of the target reaches it.
    let target = target * (1.0 - QUANTILE_SLACK);
    let mass = |x: f64| runs.iter().map(|r| r.mass_upto(x, elapsed)).sum::<f64>();
    let top =
        runs.iter().filter(|r| r.start < r.gaps.len()).map(|r| r.wait(r.gaps.len() - 1, elapsed)).fold(0.0, f64::max);
    let (mut low, mut high) = (-1.0, top);
    if mass(high) < target {
        return top; // rounding left the target a hair above the total
    }
    // Far finer than a second: no two waits worth telling apart are closer.
    while high - low > 1e-9 * (1.0 + high) {
        let mid = 0.5 * (low + high);
        if mass(mid) >= target {
            high = mid;
        } else {
            low = mid;
        }
    }
    // The answer is the smallest wait above `low` (mass(low) < target <= mass(high)).
    runs.iter()
        .filter_map(|r| {
            let i = r.upto(low, elapsed);
            (i < r.gaps.len()).then(|| r.wait(i, elapsed))
        })
        .fold(f64::INFINITY, f64::min)
}

/// Outlook of one group from its purchase days (sorted ascending; days at or after `as_of` are
/// ignored) and its own scale (its usual gap; NaN or <= 0 = unknown, population gaps unscaled).
pub fn outlook(sorted_days: &[f64], as_of: f64, scale: f64, sample: &GapSample, params: &OutlookParams) -> Outlook {
    let before = sorted_days.partition_point(|&d| d < as_of);
    let trips = trip_days(&sorted_days[..before], params.same_trip_days);
    let Some(&last) = trips.last() else {
        return Outlook::unknown(0, f64::NAN);
    };
    let elapsed = as_of - last;
    let gaps: Vec<f64> = trips.windows(2).map(|w| w[1] - w[0]).collect();

    // The group's own gaps not yet outlived, shortest first, each weighted by its recency.
    let mut own: Vec<(f64, f64)> = gaps
        .iter()
        .enumerate()
        .filter(|(_, &gap)| gap - elapsed > -TOLERANCE_DAYS)
        .map(|(i, &gap)| {
            let age = (gaps.len() - 1 - i) as f64;
            let weight = if params.recency_half_life > 0.0 { 0.5f64.powf(age / params.recency_half_life) } else { 1.0 };
            (gap, weight)
        })
        .collect();
    own.sort_unstable_by(|a, b| a.0.total_cmp(&b.0));
    let own_gaps: Vec<f64> = own.iter().map(|o| o.0).collect();
    let mut running = 0.0;
    let cumulative: Vec<f64> = own
        .iter()
        .map(|o| {
            running += o.1;
            running
        })
        .collect();
    let mut runs = vec![Run { gaps: &own_gaps, factor: 1.0, start: 0, weight: 0.0, cumulative: Some(cumulative) }];

    let moves = scale.is_finite() && scale > 0.0 && params.scale_exponent > 0.0;
    for (owner_scale, run_gaps) in &sample.runs {
        let factor = if moves { (scale / owner_scale).powf(params.scale_exponent) } else { 1.0 };
        let start = run_gaps.partition_point(|&g| g * factor - elapsed <= -TOLERANCE_DAYS);
        runs.push(Run { gaps: run_gaps, factor, start, weight: 1.0, cumulative: None });
    }
    let remaining: usize = runs[1..].iter().map(|r| r.gaps.len() - r.start).sum();
    if sample.len > 0 && remaining > 0 {
        let each = params.population_weight / remaining as f64;
        for run in &mut runs[1..] {
            run.weight = each;
        }
    } else {
        runs.truncate(1);
    }

    let total: f64 = runs.iter().map(Run::total).sum();
    if total <= 0.0 {
        return Outlook::unknown(trips.len() as u32, elapsed);
    }
    let within = runs.iter().map(|r| r.mass_upto(params.horizon_days, elapsed)).sum::<f64>().min(total);
    Outlook {
        trips: trips.len() as u32,
        elapsed_days: elapsed,
        median_days: weighted_quantile(&runs, elapsed, 0.5 * total),
        horizon_probability: within / total,
        horizon_median_days: if within > 0.0 { weighted_quantile(&runs, elapsed, 0.5 * within) } else { f64::NAN },
    }
}

/// Column-wise outlooks, one entry per group.
#[derive(Debug, Default)]
pub struct OutlookColumns {
    pub trips: Vec<u32>,
    pub elapsed_days: Vec<f64>,
    pub median_days: Vec<f64>,
    pub horizon_probability: Vec<f64>,
    pub horizon_median_days: Vec<f64>,
}

/// Outlooks of many groups as of one moment. `group_codes[i]` in `0..scales.len()` names the
/// group of purchase `days[i]` (any order); `scales[g]` is group g's usual gap (NaN = unknown).
pub fn outlooks(
    group_codes: &[i64],
    days: &[f64],
    scales: &[f64],
    as_of: f64,
    sample: &GapSample,
    params: &OutlookParams,
) -> CoreResult<OutlookColumns> {
    params.validate()?;
    if group_codes.len() != days.len() {
        return invalid!("group_codes has {} rows but days has {}", group_codes.len(), days.len());
    }
    if !as_of.is_finite() {
        return invalid!("as_of must be a finite number of days");
    }
    check_days(days)?;
    let (order, offsets) = group_rows(group_codes, scales.len())?;
    let results: Vec<Outlook> = (0..scales.len())
        .into_par_iter()
        .map(|g| {
            let mut group_days: Vec<f64> = order[offsets[g]..offsets[g + 1]].iter().map(|&r| days[r]).collect();
            group_days.sort_unstable_by(f64::total_cmp);
            outlook(&group_days, as_of, scales[g], sample, params)
        })
        .collect();
    let mut columns = OutlookColumns::default();
    for o in results {
        columns.trips.push(o.trips);
        columns.elapsed_days.push(o.elapsed_days);
        columns.median_days.push(o.median_days);
        columns.horizon_probability.push(o.horizon_probability);
        columns.horizon_median_days.push(o.horizon_median_days);
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_population() -> GapSample {
        GapSample::new(&[], &[]).unwrap()
    }

    fn params() -> OutlookParams {
        OutlookParams { recency_half_life: 0.0, ..OutlookParams::default() }
    }

    #[test]
    fn a_weekly_shopper_seen_three_days_ago_is_due_in_four() {
        let days: Vec<f64> = (0..10).map(|w| 7.0 * w as f64).collect();
        let o = outlook(&days, 66.0, f64::NAN, &no_population(), &params());
        assert_eq!((o.trips, o.elapsed_days, o.median_days), (10, 3.0, 4.0));
        assert_eq!(o.horizon_probability, 1.0);
        assert_eq!(o.horizon_median_days, 4.0);
    }

    #[test]
    fn only_gaps_longer_than_the_wait_so_far_count() {
        // Gaps 2, 2, 2, 10, 10: seen 5 days ago, the short gaps are ruled out.
        let days = [0.0, 2.0, 4.0, 6.0, 16.0, 26.0];
        let o = outlook(&days, 31.0, f64::NAN, &no_population(), &params());
        assert_eq!(o.median_days, 5.0);
        // The plain median gap (2 days) would have said "today".
    }

    #[test]
    fn overdue_beyond_every_gap_seen_is_infinite_without_a_population() {
        let o = outlook(&[0.0, 7.0, 14.0], 40.0, f64::NAN, &no_population(), &params());
        assert!(o.median_days.is_infinite() && o.horizon_median_days.is_nan());
        assert_eq!(o.horizon_probability, 0.0);
        let none = outlook(&[], 40.0, f64::NAN, &no_population(), &params());
        assert!(none.median_days.is_nan() && none.elapsed_days.is_nan());
    }

    #[test]
    fn the_population_fills_in_for_a_short_history() {
        // One own gap of 4 days, long past; the population's gaps (all 20 days) take over.
        let sample = GapSample::new(&[20.0; 50], &[20.0; 50]).unwrap();
        let o = outlook(&[0.0, 4.0], 10.0, f64::NAN, &sample, &params());
        assert_eq!(o.median_days, 14.0);
    }

    #[test]
    fn population_gaps_move_towards_the_shoppers_own_scale() {
        // Owners' usual gap 10; a shopper whose usual gap is 40 sees them as 40 when β = 1,
        // 20 when β = 0.5, and as they are when β = 0.
        let sample = GapSample::new(&[10.0; 5], &[10.0; 5]).unwrap();
        for (beta, expected) in [(1.0, 40.0), (0.5, 20.0), (0.0, 10.0)] {
            let p = OutlookParams { scale_exponent: beta, ..params() };
            let o = outlook(&[0.0], 0.0 + 1e-9, 40.0, &sample, &p);
            assert!((o.median_days - expected).abs() < 1e-6, "β {beta}: {}", o.median_days);
        }
    }

    #[test]
    fn horizon_median_is_the_median_of_the_waits_inside_the_horizon() {
        // Own gaps 2, 4, 6, 60, 80: seen just now. Median overall 6; within 10 days 4.
        let days = [0.0, 2.0, 6.0, 12.0, 72.0, 152.0];
        let p = OutlookParams { horizon_days: 10.0, ..params() };
        let o = outlook(&days, 152.0 + 1e-9, f64::NAN, &no_population(), &p);
        assert!((o.median_days - 6.0).abs() < 1e-6);
        assert!((o.horizon_probability - 0.6).abs() < 1e-12);
        assert!((o.horizon_median_days - 4.0).abs() < 1e-6);
    }

    #[test]
    fn recent_gaps_weigh_more() {
        // Gaps 10, 10, 10, 2, 2, seen a day ago: equal weights say 9 more days (three of five
        // gaps are long); a short half-life trusts the latest two and says 1.
        let days = [0.0, 10.0, 20.0, 30.0, 32.0, 34.0];
        let flat = outlook(&days, 35.0, f64::NAN, &no_population(), &params());
        let recent = OutlookParams { recency_half_life: 1.0, ..params() };
        let fresh = outlook(&days, 35.0, f64::NAN, &no_population(), &recent);
        assert_eq!((flat.median_days, fresh.median_days), (9.0, 1.0));
    }

    #[test]
    fn bad_input_is_rejected_with_the_reason() {
        assert!(GapSample::new(&[1.0], &[]).is_err());
        assert!(GapSample::new(&[f64::NAN], &[1.0]).is_err());
        assert!(GapSample::new(&[1.0], &[0.0]).is_err());
        let sample = no_population();
        let err = outlooks(&[0, 2], &[0.0, 1.0], &[f64::NAN; 2], 5.0, &sample, &params()).unwrap_err();
        assert!(err.to_string().contains("outside 0..2"), "{err}");
        let bad = OutlookParams { scale_exponent: 2.0, ..params() };
        assert!(outlooks(&[0], &[0.0], &[1.0], 5.0, &sample, &bad).is_err());
        assert!(outlooks(&[0], &[0.0], &[1.0], f64::NAN, &sample, &params()).is_err());
    }
}
