//! Population cycles: how often a typical repeat buyer buys each product.
//!
//! Each repeat buyer counts once (the median of their own gaps), and the product's cycle is the
//! median over its repeat buyers, so a handful of heavy buyers cannot set the cycle for everyone.
//! These are the priors the per-customer estimate is shrunk towards; the same computation over
//! customers' order days (one "item") gives the population's shopping cadence.
use rayon::prelude::*;

use super::cycles::{check_days, trip_days};
use super::robust::median;
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
}

/// `customer_codes[i]`, `item_codes[i]` (in `0..n_items`) and `days[i]` describe purchase i,
/// in any order.
pub fn population_cycles(
    customer_codes: &[i64],
    item_codes: &[i64],
    days: &[f64],
    n_items: usize,
    same_trip_days: f64,
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

    let mut order: Vec<usize> = (0..days.len()).collect();
    order.par_sort_unstable_by(|&a, &b| {
        (item_codes[a], customer_codes[a]).cmp(&(item_codes[b], customer_codes[b])).then(days[a].total_cmp(&days[b]))
    });
    // Boundaries of each item's run in `order`.
    let mut item_start = vec![0usize; n_items + 1];
    for &row in &order {
        item_start[item_codes[row] as usize + 1] += 1;
    }
    for i in 0..n_items {
        item_start[i + 1] += item_start[i];
    }

    let per_item: Vec<(f64, u32, u32)> = (0..n_items)
        .into_par_iter()
        .map(|item| {
            let rows = &order[item_start[item]..item_start[item + 1]];
            let (mut buyer_cycles, mut buyers) = (Vec::new(), 0u32);
            for run in rows.chunk_by(|&a, &b| customer_codes[a] == customer_codes[b]) {
                buyers += 1;
                let run_days: Vec<f64> = run.iter().map(|&r| days[r]).collect();
                let trips = trip_days(&run_days, same_trip_days);
                let mut gaps: Vec<f64> = trips.windows(2).map(|w| w[1] - w[0]).collect();
                if !gaps.is_empty() {
                    buyer_cycles.push(median(&mut gaps));
                }
            }
            let repeat_buyers = buyer_cycles.len() as u32;
            (median(&mut buyer_cycles), buyers, repeat_buyers)
        })
        .collect();

    Ok(PopulationCycles {
        cycle_days: per_item.iter().map(|t| t.0).collect(),
        buyers: per_item.iter().map(|t| t.1).collect(),
        repeat_buyers: per_item.iter().map(|t| t.2).collect(),
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
        let result = population_cycles(&customers, &items, &days, 3, 0.5).unwrap();
        assert_eq!(result.cycle_days[0], 10.0);
        assert_eq!(result.buyers, vec![3, 1, 0]);
        assert_eq!(result.repeat_buyers, vec![3, 0, 0]);
        assert!(result.cycle_days[1].is_nan() && result.cycle_days[2].is_nan());
    }

    #[test]
    fn same_day_repeats_are_not_a_cycle() {
        let result = population_cycles(&[0, 0, 0], &[0, 0, 0], &[1.0, 1.1, 8.0], 1, 0.5).unwrap();
        assert_eq!(result.cycle_days, vec![7.0]);
    }

    #[test]
    fn rejects_codes_outside_the_catalog() {
        let err = population_cycles(&[0], &[5], &[1.0], 2, 0.5).unwrap_err();
        assert!(err.to_string().contains("item code 5"), "{err}");
    }
}
