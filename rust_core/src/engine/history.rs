//! A shopper's order lines summarised per product: the history side of a ranking request.
//!
//! Serving caches this summary per shopper and rebuilds it whenever the shopper buys something
//! (`omnix_recs.engine.features.summarize_lines`), so it runs on every cache miss of a
//! recommendation request. A typical shopper has 50–200 lines, a heavy one thousands; the
//! summary is one pass over the lines, a sort of the trips and a sort of the (product, trip)
//! pairs, where the Python loop it replaced built an object per line.
//!
//! A trip is an order, placed at its earliest line's time. Per product the summary gives the
//! time of the last trip containing it, the mean gap between those trips, how many there were
//! and the habit weight: the time-decayed share of the shopper's trips that contained it, a trip
//! k trips before the latest one weighing `habit_decay`^k (TIFU-KNN's within-group decay).
use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;

use crate::errors::{CoreErrorKind, CoreResult};
use crate::gil::without_gil;
use crate::invalid;

const SECONDS_PER_DAY: f64 = 86_400.0;

/// One shopper's order lines as columns of equal length, in any order.
pub struct OrderLines<'a> {
    /// The trip (order) of each line, numbered 0..`trips` in order-id order: trips placed at
    /// the same moment are ranked by that number, as sorting by (time, order id) would.
    pub trip: &'a [i64],
    pub trips: usize,
    /// The model item of each line; -1 for a product the model does not know (it still counts
    /// for trips and spend).
    pub item: &'a [i64],
    pub quantity: &'a [i64],
    pub unit_price: &'a [f64],
    /// Epoch seconds.
    pub purchased_at_s: &'a [f64],
}

/// Per distinct model item (ascending), plus the shopper-wide figures.
#[derive(Debug, PartialEq)]
pub struct HistorySummary {
    pub items: Vec<i32>,
    pub last_bought_s: Vec<f64>,
    /// NaN for an item bought in one trip only.
    pub mean_gap_days: Vec<f32>,
    pub orders: Vec<f32>,
    pub habit: Vec<f32>,
    /// Every trip's time, oldest first.
    pub trip_times_s: Vec<f64>,
    pub spend: f64,
    /// The newest line's time; -inf without lines.
    pub newest_line_s: f64,
}

fn validate(lines: &OrderLines, habit_decay: f64) -> CoreResult<()> {
    let n = lines.trip.len();
    let lengths = [lines.item.len(), lines.quantity.len(), lines.unit_price.len(), lines.purchased_at_s.len()];
    if lengths.iter().any(|&len| len != n) {
        return invalid!(
            "order line columns differ in length: trip {n}, item/quantity/unit_price/purchased_at_s {lengths:?}"
        );
    }
    if let Some(&trip) = lines.trip.iter().find(|&&t| !(0..lines.trips as i64).contains(&t)) {
        return invalid!("trip {trip} is outside 0..{}", lines.trips);
    }
    if let Some(&item) = lines.item.iter().find(|&&i| !(-1..=i32::MAX as i64).contains(&i)) {
        return invalid!("item {item} is neither -1 (not in the model) nor a model item index");
    }
    if let Some(&at) = lines.purchased_at_s.iter().find(|at| !at.is_finite()) {
        return invalid!("purchased_at_s must be finite epoch seconds, got {at}");
    }
    if !(habit_decay.is_finite() && habit_decay > 0.0) {
        return invalid!("habit_decay must be a finite number > 0, got {habit_decay}");
    }
    Ok(())
}

/// Summarise one shopper's order lines (see the module docs).
pub fn summarize(lines: &OrderLines, habit_decay: f64) -> CoreResult<HistorySummary> {
    validate(lines, habit_decay)?;
    let trips = lines.trips;
    let mut placed_at = vec![f64::INFINITY; trips];
    let mut newest_line_s = f64::NEG_INFINITY;
    for (&trip, &at) in lines.trip.iter().zip(lines.purchased_at_s) {
        let trip = trip as usize;
        placed_at[trip] = placed_at[trip].min(at);
        newest_line_s = newest_line_s.max(at);
    }
    if let Some(empty) = placed_at.iter().position(|at| *at == f64::INFINITY) {
        return invalid!("trip {empty} has no order lines");
    }

    let mut by_time: Vec<usize> = (0..trips).collect();
    by_time.sort_unstable_by(|&a, &b| placed_at[a].total_cmp(&placed_at[b]).then(a.cmp(&b)));
    let mut trips_ago = vec![0usize; trips];
    for (position, &trip) in by_time.iter().enumerate() {
        trips_ago[trip] = trips - 1 - position;
    }
    let trip_times_s: Vec<f64> = by_time.iter().map(|&trip| placed_at[trip]).collect();
    let time_of = |ago: usize| trip_times_s[trips - 1 - ago];
    // powf, not powi: the same libm pow numpy's `decay ** k` uses, so weights match the reference.
    let decay: Vec<f64> = (0..trips).map(|ago| habit_decay.powf(ago as f64)).collect();
    let total_weight: f64 = decay.iter().sum();

    // One (item, trip) pair per line, deduplicated: a product twice in one order is one trip.
    // Sorted by item, then trips ago, so each item's newest trip comes first.
    let mut pairs: Vec<(i32, usize)> = lines
        .item
        .iter()
        .zip(lines.trip)
        .filter(|(&item, _)| item >= 0)
        .map(|(&item, &trip)| (item as i32, trips_ago[trip as usize]))
        .collect();
    pairs.sort_unstable();
    pairs.dedup();

    let mut summary = HistorySummary {
        items: Vec::new(),
        last_bought_s: Vec::new(),
        mean_gap_days: Vec::new(),
        orders: Vec::new(),
        habit: Vec::new(),
        trip_times_s: Vec::new(),
        spend: spend(lines.quantity, lines.unit_price),
        newest_line_s,
    };
    for bought in pairs.chunk_by(|a, b| a.0 == b.0) {
        let count = bought.len();
        let last = time_of(bought[0].1);
        let earliest = time_of(bought[count - 1].1);
        let habit: f64 = bought.iter().map(|&(_, ago)| decay[ago]).sum::<f64>() / total_weight;
        let mean_gap = if count > 1 { (last - earliest) / SECONDS_PER_DAY / (count - 1) as f64 } else { f64::NAN };
        summary.items.push(bought[0].0);
        summary.last_bought_s.push(last);
        summary.mean_gap_days.push(mean_gap as f32);
        summary.orders.push(count as f32);
        summary.habit.push(habit as f32);
    }
    summary.trip_times_s = trip_times_s;
    Ok(summary)
}

/// Sum of quantity × unit price, smallest amounts first: the total does not depend on the order
/// the store returned the lines in.
fn spend(quantity: &[i64], unit_price: &[f64]) -> f64 {
    let mut amounts: Vec<f64> = quantity.iter().zip(unit_price).map(|(&q, &p)| q as f64 * p).collect();
    amounts.sort_unstable_by(f64::total_cmp);
    // From +0.0: `Sum` for f64 starts at -0.0, which a shopper without purchases would show.
    amounts.iter().fold(0.0, |total, amount| total + amount)
}

fn slice<'a, T: numpy::Element>(array: &'a PyReadonlyArray1<'_, T>, name: &str) -> CoreResult<&'a [T]> {
    array.as_slice().map_err(|_| CoreErrorKind::InvalidInput(format!("{name} must be a C-contiguous array")))
}

type SummaryArrays<'py> = (
    Bound<'py, PyArray1<i32>>,
    Bound<'py, PyArray1<f64>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<f32>>,
    Bound<'py, PyArray1<f64>>,
    f64,
    f64,
);

/// Summarise one shopper's order lines for ranking (columns of equal length, any order).
///
/// `trip` int64: each line's trip, 0..`trips` in order-id order (ties in time go to the lower
/// number); `item` int64: the model item, -1 when not in the model; `quantity` int64,
/// `unit_price` float64, `purchased_at_s` float64 epoch seconds. Returns (items int32,
/// last_bought_s float64, mean_gap_days float32 (NaN after one trip), orders float32, habit
/// float32, trip_times_s float64 oldest first, spend, newest_line_s (-inf without lines)).
/// InvalidInputError on mismatched lengths, out-of-range trips or items, non-finite times, a
/// trip without lines or a habit_decay that is not > 0.
#[pyfunction]
#[pyo3(signature = (*, trip, trips, item, quantity, unit_price, purchased_at_s, habit_decay))]
#[allow(clippy::too_many_arguments)]
pub fn summarize_order_lines<'py>(
    py: Python<'py>,
    trip: PyReadonlyArray1<'py, i64>,
    trips: usize,
    item: PyReadonlyArray1<'py, i64>,
    quantity: PyReadonlyArray1<'py, i64>,
    unit_price: PyReadonlyArray1<'py, f64>,
    purchased_at_s: PyReadonlyArray1<'py, f64>,
    habit_decay: f64,
) -> PyResult<SummaryArrays<'py>> {
    let lines = OrderLines {
        trip: slice(&trip, "trip")?,
        trips,
        item: slice(&item, "item")?,
        quantity: slice(&quantity, "quantity")?,
        unit_price: slice(&unit_price, "unit_price")?,
        purchased_at_s: slice(&purchased_at_s, "purchased_at_s")?,
    };
    let s = without_gil(py, || summarize(&lines, habit_decay))?;
    // Copied into arrays numpy owns (a few hundred bytes): servers cache these summaries, and an
    // array over a Rust vector keeps a container object alive that the garbage collector would
    // have to scan, six per cached shopper, on every full collection.
    Ok((
        PyArray1::from_slice(py, &s.items),
        PyArray1::from_slice(py, &s.last_bought_s),
        PyArray1::from_slice(py, &s.mean_gap_days),
        PyArray1::from_slice(py, &s.orders),
        PyArray1::from_slice(py, &s.habit),
        PyArray1::from_slice(py, &s.trip_times_s),
        s.spend,
        s.newest_line_s,
    ))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(summarize_order_lines, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: f64 = SECONDS_PER_DAY;

    /// An order line as (trip, item, quantity, unit price, day).
    type Row = (i64, i64, i64, f64, f64);

    fn summarize_rows(rows: &[Row], trips: usize, habit_decay: f64) -> CoreResult<HistorySummary> {
        let trip: Vec<i64> = rows.iter().map(|r| r.0).collect();
        let item: Vec<i64> = rows.iter().map(|r| r.1).collect();
        let quantity: Vec<i64> = rows.iter().map(|r| r.2).collect();
        let unit_price: Vec<f64> = rows.iter().map(|r| r.3).collect();
        let at: Vec<f64> = rows.iter().map(|r| r.4 * DAY).collect();
        let lines = OrderLines {
            trip: &trip,
            trips,
            item: &item,
            quantity: &quantity,
            unit_price: &unit_price,
            purchased_at_s: &at,
        };
        summarize(&lines, habit_decay)
    }

    #[test]
    fn milk_every_week_bread_once_and_a_product_the_model_lacks() {
        // Trip 0 on day 0: milk (item 3) twice and bread (item 1); trip 1 on day 7: milk and a
        // product outside the model; trip 2 on day 14: milk.
        let rows = [
            (0, 3, 1, 1.0, 0.0),
            (0, 3, 2, 1.0, 0.0),
            (0, 1, 1, 2.5, 0.0),
            (1, 3, 1, 1.0, 7.0),
            (1, -1, 4, 0.5, 7.0),
            (2, 3, 1, 1.0, 14.0),
        ];
        let s = summarize_rows(&rows, 3, 0.5).unwrap();
        let total = 1.0 + 0.5 + 0.25;
        assert_eq!(s.items, vec![1, 3]);
        assert_eq!(s.last_bought_s, vec![0.0, 14.0 * DAY]);
        assert!(s.mean_gap_days[0].is_nan());
        assert_eq!(s.mean_gap_days[1], 7.0);
        assert_eq!(s.orders, vec![1.0, 3.0]);
        assert_eq!(s.habit, vec![(0.25 / total) as f32, 1.0]);
        assert_eq!(s.trip_times_s, vec![0.0, 7.0 * DAY, 14.0 * DAY]);
        assert_eq!(s.spend, 1.0 + 2.0 + 2.5 + 1.0 + 2.0 + 1.0);
        assert_eq!(s.newest_line_s, 14.0 * DAY);
    }

    #[test]
    fn a_trip_is_placed_at_its_earliest_line_and_ties_go_to_the_lower_trip() {
        // Trip 1's lines span days 2 and 5: it was placed on day 2, with trip 0.
        let rows = [(1, 0, 1, 1.0, 5.0), (1, 0, 1, 1.0, 2.0), (0, 1, 1, 1.0, 2.0)];
        let s = summarize_rows(&rows, 2, 0.9).unwrap();
        assert_eq!(s.trip_times_s, vec![2.0 * DAY, 2.0 * DAY]);
        // Trip 1 is the latest (ties go to the lower trip first), so item 0 has the full weight.
        assert_eq!(s.habit, vec![(1.0 / 1.9) as f32, (0.9 / 1.9) as f32]);
        assert_eq!(s.newest_line_s, 5.0 * DAY);
    }

    #[test]
    fn no_lines_no_summary() {
        let s = summarize_rows(&[], 0, 0.9).unwrap();
        assert!(s.items.is_empty() && s.trip_times_s.is_empty());
        assert_eq!((s.spend.to_bits(), s.newest_line_s), (0.0f64.to_bits(), f64::NEG_INFINITY));
    }

    #[test]
    fn spend_does_not_depend_on_line_order() {
        let prices = [0.1, 1e16, 0.2, -1e16, 0.3, 3.3];
        let forward: Vec<Row> = prices.iter().map(|&p| (0, -1, 1, p, 0.0)).collect();
        let backward: Vec<_> = forward.iter().rev().copied().collect();
        let a = summarize_rows(&forward, 1, 0.9).unwrap();
        let b = summarize_rows(&backward, 1, 0.9).unwrap();
        assert_eq!(a.spend.to_bits(), b.spend.to_bits());
    }

    #[test]
    fn malformed_lines_are_refused() {
        let cases: [(&[Row], usize, f64, &str); 6] = [
            (&[(2, 0, 1, 1.0, 0.0)], 2, 0.9, "trip 2 is outside"),
            (&[(-1, 0, 1, 1.0, 0.0)], 2, 0.9, "trip -1 is outside"),
            (&[(0, -2, 1, 1.0, 0.0)], 1, 0.9, "item -2"),
            (&[(0, 0, 1, 1.0, f64::NAN)], 1, 0.9, "finite"),
            (&[(0, 0, 1, 1.0, 0.0)], 2, 0.9, "trip 1 has no order lines"),
            (&[(0, 0, 1, 1.0, 0.0)], 1, 0.0, "habit_decay"),
        ];
        for (rows, trips, decay, message) in cases {
            let err = summarize_rows(rows, trips, decay).unwrap_err().to_string();
            assert!(err.contains(message), "{err} should mention {message}");
        }
        let trip = [0i64, 0];
        let lines = OrderLines {
            trip: &trip,
            trips: 1,
            item: &[0],
            quantity: &[1, 1],
            unit_price: &[1.0, 1.0],
            purchased_at_s: &[0.0, 0.0],
        };
        assert!(summarize(&lines, 0.9).unwrap_err().to_string().contains("differ in length"));
    }
}
