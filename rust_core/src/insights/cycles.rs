//! Consumption cycles: how often a shopper buys a product (or shops at all).
//!
//! For each group of purchase times (one customer × product, or one customer's orders) the
//! estimate is:
//! 1. trips: purchases closer than `same_trip_days` collapse into one (two orders on the same day
//!    are a forgotten item, not a 0-day cycle);
//! 2. the customer's own cycle: the Huber location of the gaps between trips;
//! 3. empirical-Bayes shrinkage towards the product's population cycle: with `n` gaps the
//!    customer's own figure gets weight n / (n + k), blended in log space because cycle errors
//!    are multiplicative (2 days off matters on a 4-day cycle, not on a 60-day one);
//! 4. a confidence in [0, 1] from the number of gaps and their robust dispersion.
use rayon::prelude::*;

use super::robust::{huber_location, mad, median, MAD_TO_SD};
use crate::errors::CoreResult;
use crate::invalid;

/// Tuning of the cycle estimate. The defaults are the ones the service uses.
#[derive(Clone, Copy, Debug)]
pub struct CycleParams {
    /// Purchases closer together than this many days count as one trip.
    pub same_trip_days: f64,
    /// Prior strength k: the own estimate gets weight n / (n + k) against the population cycle.
    pub prior_strength: f64,
    /// Huber tuning constant, in robust standard deviations.
    pub huber_k: f64,
    /// Confidence of an estimate that rests on the population cycle alone.
    pub prior_reliability: f64,
}

impl Default for CycleParams {
    fn default() -> Self {
        CycleParams { same_trip_days: 0.5, prior_strength: 2.0, huber_k: 1.345, prior_reliability: 0.3 }
    }
}

impl CycleParams {
    pub fn validate(&self) -> CoreResult<()> {
        if !(self.same_trip_days >= 0.0 && self.same_trip_days.is_finite()) {
            return invalid!("same_trip_days must be a finite number >= 0, got {}", self.same_trip_days);
        }
        if !(self.prior_strength >= 0.0 && self.prior_strength.is_finite()) {
            return invalid!("prior_strength must be a finite number >= 0, got {}", self.prior_strength);
        }
        if !(self.huber_k > 0.0 && self.huber_k.is_finite()) {
            return invalid!("huber_k must be a finite number > 0, got {}", self.huber_k);
        }
        if !(0.0..=1.0).contains(&self.prior_reliability) {
            return invalid!("prior_reliability must be in [0, 1], got {}", self.prior_reliability);
        }
        Ok(())
    }
}

/// A single interval says nothing about spread: assume a typical one (robust CV of 0.5).
const UNKNOWN_DISPERSION: f64 = 0.5;
/// How many of the latest gaps describe the current pace (for growing / fading trends).
const RECENT_GAPS: usize = 3;

/// The cycle of one group. Day values are in the caller's unit (days since an epoch).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CycleEstimate {
    /// Blended cycle in days; NaN when there is neither an own gap nor a population cycle.
    pub cycle_days: f64,
    /// The customer's own robust cycle; NaN with fewer than two trips.
    pub own_cycle_days: f64,
    /// Trust in `cycle_days`, 0..1.
    pub confidence: f64,
    /// Number of trips (purchases after merging same-trip duplicates).
    pub trips: u32,
    /// Robust coefficient of variation of the gaps (1.4826 × MAD / own cycle); NaN below 2 gaps.
    pub dispersion: f64,
    pub first_day: f64,
    pub last_day: f64,
    /// Median of the latest three gaps (the current pace); NaN with fewer than two trips.
    pub recent_cycle_days: f64,
}

impl CycleEstimate {
    fn empty(prior: f64, params: &CycleParams) -> Self {
        let known = prior.is_finite() && prior > 0.0;
        CycleEstimate {
            cycle_days: if known { prior } else { f64::NAN },
            own_cycle_days: f64::NAN,
            confidence: if known { params.prior_reliability } else { 0.0 },
            trips: 0,
            dispersion: f64::NAN,
            first_day: f64::NAN,
            last_day: f64::NAN,
            recent_cycle_days: f64::NAN,
        }
    }
}

/// Collapse sorted purchase days into trip days (each trip dated by its first purchase).
pub fn trip_days(sorted_days: &[f64], same_trip_days: f64) -> Vec<f64> {
    let mut trips: Vec<f64> = Vec::with_capacity(sorted_days.len());
    trip_days_into(sorted_days.iter().copied(), same_trip_days, &mut trips);
    trips
}

/// `trip_days` into `trips` (cleared first), for callers that reuse one buffer.
pub fn trip_days_into(sorted_days: impl Iterator<Item = f64>, same_trip_days: f64, trips: &mut Vec<f64>) {
    trips.clear();
    for day in sorted_days {
        match trips.last() {
            Some(&start) if day - start < same_trip_days => {}
            _ => trips.push(day),
        }
    }
}

/// Cycle of one group from its purchase days (sorted ascending) and its population cycle
/// (`prior`; NaN or <= 0 when unknown).
pub fn estimate_cycle(sorted_days: &[f64], prior: f64, params: &CycleParams) -> CycleEstimate {
    let trips = trip_days(sorted_days, params.same_trip_days);
    let mut estimate = CycleEstimate::empty(prior, params);
    let (Some(&first), Some(&last)) = (trips.first(), trips.last()) else {
        return estimate;
    };
    estimate.trips = trips.len() as u32;
    estimate.first_day = first;
    estimate.last_day = last;
    let gaps: Vec<f64> = trips.windows(2).map(|w| w[1] - w[0]).collect();
    let n = gaps.len();
    if n == 0 {
        return estimate;
    }
    // The floor keeps whole-day series (MAD = 0) robust: a quarter of a day, or 5 % of the cycle.
    let mut sorted_gaps = gaps.clone();
    let centre = median(&mut sorted_gaps);
    let own = huber_location(&gaps, params.huber_k, (0.05 * centre).max(0.25));
    estimate.own_cycle_days = own;
    estimate.dispersion = if n >= 2 { MAD_TO_SD * mad(&gaps, centre) / own } else { f64::NAN };
    let mut recent = gaps[n.saturating_sub(RECENT_GAPS)..].to_vec();
    estimate.recent_cycle_days = median(&mut recent);

    let own_weight = n as f64 / (n as f64 + params.prior_strength);
    let own_reliability = 1.0 / (1.0 + if n >= 2 { estimate.dispersion } else { UNKNOWN_DISPERSION });
    if prior.is_finite() && prior > 0.0 {
        estimate.cycle_days = (own_weight * own.ln() + (1.0 - own_weight) * prior.ln()).exp();
        estimate.confidence = own_weight * own_reliability + (1.0 - own_weight) * params.prior_reliability;
    } else {
        estimate.cycle_days = own;
        estimate.confidence = own_weight * own_reliability;
    }
    estimate
}

/// Column-wise results of `estimate_cycles`, one entry per group.
#[derive(Debug, Default)]
pub struct CycleColumns {
    pub cycle_days: Vec<f64>,
    pub own_cycle_days: Vec<f64>,
    pub confidence: Vec<f64>,
    pub trips: Vec<u32>,
    pub dispersion: Vec<f64>,
    pub first_day: Vec<f64>,
    pub last_day: Vec<f64>,
    pub recent_cycle_days: Vec<f64>,
}

/// Row indices grouped by dense code: `order[offsets[g]..offsets[g + 1]]` are group g's rows.
pub fn group_rows(codes: &[i64], n_groups: usize) -> CoreResult<(Vec<usize>, Vec<usize>)> {
    let mut offsets = vec![0usize; n_groups + 1];
    for (row, &code) in codes.iter().enumerate() {
        if code < 0 || code as usize >= n_groups {
            return invalid!("code {code} at row {row} is outside 0..{n_groups}");
        }
        offsets[code as usize + 1] += 1;
    }
    for g in 0..n_groups {
        offsets[g + 1] += offsets[g];
    }
    let mut cursor = offsets.clone();
    let mut order = vec![0usize; codes.len()];
    for (row, &code) in codes.iter().enumerate() {
        let slot = &mut cursor[code as usize];
        order[*slot] = row;
        *slot += 1;
    }
    Ok((order, offsets))
}

pub fn check_days(days: &[f64]) -> CoreResult<()> {
    match days.iter().position(|d| !d.is_finite()) {
        Some(row) => invalid!("days[{row}] is not a finite number"),
        None => Ok(()),
    }
}

/// Cycles of many groups at once. `group_codes[i]` in `0..priors.len()` names the group of
/// purchase `days[i]` (any order); `priors[g]` is group g's population cycle (NaN = unknown).
pub fn estimate_cycles(
    group_codes: &[i64],
    days: &[f64],
    priors: &[f64],
    params: &CycleParams,
) -> CoreResult<CycleColumns> {
    params.validate()?;
    if group_codes.len() != days.len() {
        return invalid!("group_codes has {} rows but days has {}", group_codes.len(), days.len());
    }
    check_days(days)?;
    let (order, offsets) = group_rows(group_codes, priors.len())?;
    let estimates: Vec<CycleEstimate> = (0..priors.len())
        .into_par_iter()
        .map(|g| {
            let mut group_days: Vec<f64> = order[offsets[g]..offsets[g + 1]].iter().map(|&r| days[r]).collect();
            group_days.sort_unstable_by(f64::total_cmp);
            estimate_cycle(&group_days, priors[g], params)
        })
        .collect();
    let mut columns = CycleColumns::default();
    for e in estimates {
        columns.cycle_days.push(e.cycle_days);
        columns.own_cycle_days.push(e.own_cycle_days);
        columns.confidence.push(e.confidence);
        columns.trips.push(e.trips);
        columns.dispersion.push(e.dispersion);
        columns.first_day.push(e.first_day);
        columns.last_day.push(e.last_day);
        columns.recent_cycle_days.push(e.recent_cycle_days);
    }
    Ok(columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> CycleParams {
        CycleParams::default()
    }

    #[test]
    fn same_day_purchases_are_one_trip() {
        assert_eq!(trip_days(&[0.0, 0.2, 7.0, 7.1, 14.0], 0.5), vec![0.0, 7.0, 14.0]);
    }

    #[test]
    fn regular_buyer_keeps_their_own_cycle_with_high_confidence() {
        let days: Vec<f64> = (0..12).map(|i| i as f64 * 7.0).collect();
        let e = estimate_cycle(&days, 14.0, &params());
        assert_eq!(e.trips, 12);
        assert_eq!(e.own_cycle_days, 7.0);
        // 11 gaps against k = 2: 85 % own weight, in log space.
        let expected = (11.0 / 13.0 * 7f64.ln() + 2.0 / 13.0 * 14f64.ln()).exp();
        assert!((e.cycle_days - expected).abs() < 1e-9);
        assert!(e.confidence > 0.8, "{}", e.confidence);
        assert_eq!(e.dispersion, 0.0);
    }

    #[test]
    fn one_gap_is_pulled_halfway_to_the_population() {
        let e = estimate_cycle(&[0.0, 4.0], 16.0, &params());
        // n = 1, k = 2: weight 1/3 on 4 days, 2/3 on 16 days (geometric).
        let expected = (4f64.ln() / 3.0 + 2.0 * 16f64.ln() / 3.0).exp();
        assert!((e.cycle_days - expected).abs() < 1e-9);
        assert!(e.confidence < 0.45, "{}", e.confidence);
    }

    #[test]
    fn single_purchase_falls_back_to_the_population_cycle() {
        let e = estimate_cycle(&[3.0], 10.0, &params());
        assert_eq!((e.cycle_days, e.trips, e.confidence), (10.0, 1, 0.3));
        assert!(e.own_cycle_days.is_nan());
        let unknown = estimate_cycle(&[3.0], f64::NAN, &params());
        assert!(unknown.cycle_days.is_nan());
        assert_eq!(unknown.confidence, 0.0);
    }

    #[test]
    fn erratic_buyer_gets_lower_confidence_than_regular_one() {
        let regular = estimate_cycle(&[0.0, 7.0, 14.0, 21.0, 28.0, 35.0], f64::NAN, &params());
        let erratic = estimate_cycle(&[0.0, 3.0, 15.0, 20.0, 34.0, 38.0, 48.0], f64::NAN, &params());
        assert!(regular.confidence > erratic.confidence + 0.2);
        assert!(erratic.dispersion > 0.5);
    }

    #[test]
    fn groups_are_estimated_independently_of_row_order() {
        let codes = [1, 0, 1, 0, 1, 0];
        let days = [14.0, 10.0, 0.0, 0.0, 7.0, 5.0];
        let columns = estimate_cycles(&codes, &days, &[f64::NAN, f64::NAN, 9.0], &params()).unwrap();
        assert_eq!(columns.own_cycle_days[0], 5.0);
        assert_eq!(columns.own_cycle_days[1], 7.0);
        assert_eq!(columns.trips, vec![3, 3, 0]);
        assert_eq!(columns.cycle_days[2], 9.0);
        assert_eq!(columns.last_day[1], 14.0);
    }

    #[test]
    fn bad_input_is_rejected_with_the_reason() {
        let err = estimate_cycles(&[0, 3], &[0.0, 1.0], &[f64::NAN; 2], &params()).unwrap_err();
        assert!(err.to_string().contains("outside 0..2"), "{err}");
        let err = estimate_cycles(&[0], &[f64::NAN], &[1.0], &params()).unwrap_err();
        assert!(err.to_string().contains("days[0]"), "{err}");
        let err = estimate_cycles(&[0], &[1.0, 2.0], &[1.0], &params()).unwrap_err();
        assert!(err.to_string().contains("rows"), "{err}");
        let bad = CycleParams { huber_k: 0.0, ..params() };
        assert!(estimate_cycles(&[0], &[1.0], &[1.0], &bad).is_err());
    }
}
