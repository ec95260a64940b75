//! Shoppers like you: per customer, the products their nearest fellow shoppers buy.
//!
//! TIFU-KNN (Hu et al., SIGIR 2020) predicts a basket from the shopper's own time-decayed
//! product vector and the mean vector of the shoppers closest to it. The own part is the
//! ranking kernel's habit signal, computed per request; this is the other part, computed at
//! build time: each customer's row of the customer × item matrix of habit weights is compared
//! (cosine) with the others, and the top products of the weighted mean of the nearest rows are
//! kept per customer, for serving to read as candidates and as a signal.
//!
//! Comparing every pair of customers is quadratic: at a few hundred thousand customers, the
//! buyers of a staple alone make billions of pairs. So the search walks an inverted index whose
//! lists keep only each product's `postings_cap` most devoted buyers (largest weight): everyone
//! who shares a product with few buyers is still found, and a staple bought by half the shop,
//! which says little about taste, contributes only its most telling buyers. With a cap at least
//! the largest number of buyers of a product, the result is the exact cosine top-k.
//!
//! The habit weights themselves are computed here from the order lines (`habit_rows`), per
//! customer in parallel, as the request-time habit of engine/history.rs computes them for one.
use std::cell::RefCell;

use numpy::{PyArray1, PyReadonlyArray1};
use pyo3::prelude::*;
use rayon::prelude::*;

use super::best::BestK;
use super::sparse::{copy_array, grouped, prefetch, Csr};
use crate::errors::{CoreErrorKind, CoreResult};
use crate::gil::without_gil;
use crate::invalid;

/// One customer's (item, score) pairs.
type Row = Vec<(u32, f32)>;

/// What `shoppers_like_you` keeps.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    /// Nearest customers whose products are averaged.
    pub neighbours: usize,
    /// Products kept per customer.
    pub items: usize,
    /// Buyers kept per product in the inverted index (0 = all).
    pub postings_cap: usize,
}

/// Every customer's order lines as columns of equal length, in any order.
pub struct Lines<'a> {
    pub customer: &'a [i32],
    /// Basket (trip) code of each line; a basket belongs to one customer.
    pub basket: &'a [i32],
    pub item: &'a [i32],
    /// Epoch seconds.
    pub purchased_at: &'a [i64],
    pub n_customers: usize,
    pub n_items: usize,
}

fn check_lines(lines: &Lines) -> CoreResult<()> {
    let n = lines.customer.len();
    if [lines.basket.len(), lines.item.len(), lines.purchased_at.len()].iter().any(|l| *l != n) {
        return invalid!("customer, basket, item and purchased_at must have the same length");
    }
    if lines.customer.iter().any(|c| *c < 0 || *c as usize >= lines.n_customers) {
        return invalid!("customer codes must be in 0..{}", lines.n_customers);
    }
    if lines.item.iter().any(|i| *i < 0 || *i as usize >= lines.n_items) {
        return invalid!("item codes must be in 0..{}", lines.n_items);
    }
    if lines.basket.iter().any(|b| *b < 0) {
        return invalid!("basket codes must be >= 0");
    }
    Ok(())
}

/// Customer × item habit weights: the time-decayed share of the customer's trips that held the
/// item, a trip k trips before their latest weighing `decay`^k (trips in time order, ties by
/// basket code). Shares too small for f32 are left out.
pub fn habit_rows(lines: &Lines, decay: f64) -> CoreResult<Csr<Vec<f32>>> {
    check_lines(lines)?;
    if !(decay.is_finite() && decay > 0.0) {
        return invalid!("habit_decay must be a finite number > 0, got {decay}");
    }
    let (starts, by_customer) = grouped(lines.customer, lines.n_customers);
    let rows: Vec<Row> = (0..lines.n_customers)
        .into_par_iter()
        .map(|c| habit_row(lines, &by_customer[starts[c]..starts[c + 1]], decay))
        .collect();
    let mut indptr = Vec::with_capacity(rows.len() + 1);
    indptr.push(0usize);
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for row in rows {
        for (item, weight) in row {
            indices.push(item);
            data.push(weight);
        }
        indptr.push(indices.len());
    }
    Ok(Csr { n_cols: lines.n_items, indptr, indices, data })
}

/// One customer's habit weights (items ascending) from the positions of their lines.
fn habit_row(lines: &Lines, own: &[usize], decay: f64) -> Row {
    // Trips: (placed at = the basket's first line's time, basket code), oldest first.
    let mut trips: Vec<(i64, i32)> = own.iter().map(|&l| (lines.purchased_at[l], lines.basket[l])).collect();
    trips.sort_unstable_by_key(|t| (t.1, t.0));
    trips.dedup_by_key(|t| t.1); // the earliest line of each basket stays
    trips.sort_unstable();
    let n_trips = trips.len();
    let mut by_basket: Vec<(i32, usize)> = trips.iter().enumerate().map(|(k, t)| (t.1, n_trips - 1 - k)).collect();
    by_basket.sort_unstable();
    let ago_of = |basket: i32| by_basket[by_basket.binary_search_by_key(&basket, |b| b.0).expect("own basket")].1;
    // powf, as numpy's `decay ** k`: the weights match the numpy reference. Computed once per
    // trip, not once per line.
    let decayed: Vec<f64> = (0..n_trips).map(|ago| decay.powf(ago as f64)).collect();
    let total: f64 = decayed.iter().sum();
    let mut pairs: Vec<(u32, usize)> = own.iter().map(|&l| (lines.item[l] as u32, ago_of(lines.basket[l]))).collect();
    pairs.sort_unstable();
    pairs.dedup();
    let mut row = Vec::new();
    for bought in pairs.chunk_by(|a, b| a.0 == b.0) {
        let weight = (bought.iter().map(|&(_, ago)| decayed[ago]).sum::<f64>() / total) as f32;
        if weight > 0.0 {
            row.push((bought[0].0, weight));
        }
    }
    row
}

/// CSR (customer × item) of the top products of each customer's nearest shoppers' weighted
/// mean vector: (indptr, items, scores), each row best first (ties: lower item first). With
/// `only`, just the rows of the customers it marks are filled (the others are empty), though
/// neighbours are still found among everyone: what a validation that reads a few shoppers'
/// rows needs, for a fraction of the search.
pub fn shoppers_like_you(
    weights: &Csr<Vec<f32>>,
    s: Settings,
    only: Option<&[bool]>,
) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
    let n_customers = weights.n_rows();
    let unit = unit_rows(weights);
    let postings = capped_postings(&unit, s.postings_cap);
    let (unit, postings) = (&unit, &postings);
    let rows: Vec<Row> = (0..n_customers)
        .into_par_iter()
        .map(|u| {
            if only.is_some_and(|wanted| !wanted[u]) {
                return Row::new();
            }
            SCRATCH.with(|cell| {
                let mut scratch = cell.borrow_mut();
                scratch.prepare(n_customers, weights.n_cols);
                let nearest = scratch.nearest(unit, postings, u, s.neighbours);
                scratch.mean_of(weights, &nearest, s.items)
            })
        })
        .collect();
    let mut indptr = Vec::with_capacity(n_customers + 1);
    indptr.push(0i64);
    let total: usize = rows.iter().map(Vec::len).sum();
    let (mut items, mut scores) = (Vec::with_capacity(total), Vec::with_capacity(total));
    for row in rows {
        for (item, score) in row {
            items.push(item as i32);
            scores.push(score);
        }
        indptr.push(items.len() as i64);
    }
    (indptr, items, scores)
}

/// Each row scaled to unit length, so dot products are cosines.
fn unit_rows(weights: &Csr<Vec<f32>>) -> Csr<Vec<f32>> {
    let mut unit = weights.clone();
    for row in 0..unit.n_rows() {
        let range = unit.row_range(row);
        let norm = unit.data[range.clone()].iter().map(|w| w * w).sum::<f32>().sqrt();
        if norm > 0.0 {
            unit.data[range].iter_mut().for_each(|w| *w /= norm);
        }
    }
    unit
}

/// Item × customer index of the unit weights, keeping each item's `cap` largest (ties: lower
/// customer first); 0 keeps all.
fn capped_postings(unit: &Csr<Vec<f32>>, cap: usize) -> Csr<Vec<f32>> {
    let full = unit.transpose();
    if cap == 0 {
        return full;
    }
    let mut indptr = vec![0usize];
    let (mut indices, mut data) = (Vec::new(), Vec::new());
    for item in 0..full.n_rows() {
        let range = full.row_range(item);
        let mut buyers: Vec<(u32, f32)> =
            full.indices[range.clone()].iter().copied().zip(full.data[range].iter().copied()).collect();
        if buyers.len() > cap {
            buyers.select_nth_unstable_by(cap - 1, |a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            buyers.truncate(cap);
            buyers.sort_unstable_by_key(|b| b.0);
        }
        for (customer, weight) in buyers {
            indices.push(customer);
            data.push(weight);
        }
        indptr.push(indices.len());
    }
    Csr { n_cols: full.n_cols, indptr, indices, data }
}

/// How many of the shopper's products ahead `nearest` asks for a posting list (its cache lines
/// scattered over tens of megabytes, too short for the hardware prefetcher to notice), and
/// twice that for where it starts: enough to cover a memory round trip while a list is summed.
const LISTS_AHEAD: usize = 2;
/// How many neighbours ahead `mean_of` asks for a neighbour's weight row.
const ROWS_AHEAD: usize = 4;

/// Dense accumulators over customers and items, all zero between uses (reset through their
/// touched lists).
#[derive(Default)]
struct Scratch {
    by_customer: Vec<f32>,
    customers_touched: Vec<u32>,
    by_item: Vec<f32>,
    items_touched: Vec<u32>,
    best: BestK,
}

thread_local! {
    // One per thread, kept from customer to customer and build to build: a fresh one is a
    // megabyte the kernel zeroes page by page, and rayon splits a build into thousands of jobs.
    static SCRATCH: RefCell<Scratch> = RefCell::new(Scratch::default());
}

impl Scratch {
    /// Room for `n_customers` and `n_items` (it only grows: indices below both stay zero).
    fn prepare(&mut self, n_customers: usize, n_items: usize) {
        if self.by_customer.len() < n_customers {
            self.by_customer.resize(n_customers, 0.0);
        }
        if self.by_item.len() < n_items {
            self.by_item.resize(n_items, 0.0);
        }
    }

    /// The `k` customers most similar to `u` (cosine through the capped index), best first.
    fn nearest(&mut self, unit: &Csr<Vec<f32>>, postings: &Csr<Vec<f32>>, u: usize, k: usize) -> Row {
        let row = unit.row_range(u);
        let (items, weights) = (&unit.indices[row.clone()], &unit.data[row]);
        let by_customer = &mut self.by_customer[..postings.n_cols];
        for (n, (&item, &w)) in items.iter().zip(weights).enumerate() {
            if let Some(&ahead) = items.get(n + 2 * LISTS_AHEAD) {
                prefetch(&postings.indptr, ahead as usize);
            }
            if let Some(&ahead) = items.get(n + LISTS_AHEAD) {
                postings.prefetch_row(ahead as usize);
            }
            let span = postings.row_range(item as usize);
            // Each v is in a list at most once, so its sum adds the shopper's products in
            // row order whatever the order within lists. `u` is summed too, and left out below.
            for (&v, &weight) in postings.indices[span.clone()].iter().zip(&postings.data[span]) {
                let acc = &mut by_customer[v as usize];
                if *acc == 0.0 {
                    self.customers_touched.push(v);
                }
                *acc += w * weight;
            }
        }
        for &v in &self.customers_touched {
            // A customer listed twice (a product underflowed to 0) is empty the second time.
            let similarity = std::mem::take(&mut by_customer[v as usize]);
            if v as usize != u && similarity > 0.0 && self.best.admits(similarity) {
                self.best.offer((similarity, v), k);
            }
        }
        self.customers_touched.clear();
        self.best.take(k)
    }

    /// The top `k` products of the similarity-weighted mean of the neighbours' weight rows.
    fn mean_of(&mut self, weights: &Csr<Vec<f32>>, nearest: &Row, k: usize) -> Row {
        let total: f32 = nearest.iter().map(|n| n.1).sum();
        if total <= 0.0 {
            return Vec::new();
        }
        // Each neighbour's row is a few lines somewhere in a matrix far larger than the cache.
        for &(v, _) in nearest {
            prefetch(&weights.indptr, v as usize);
        }
        for &(v, _) in nearest.iter().take(ROWS_AHEAD) {
            weights.prefetch_row(v as usize);
        }
        for (n, &(v, similarity)) in nearest.iter().enumerate() {
            if let Some(&(ahead, _)) = nearest.get(n + ROWS_AHEAD) {
                weights.prefetch_row(ahead as usize);
            }
            let span = weights.row_range(v as usize);
            for (&item, &weight) in weights.indices[span.clone()].iter().zip(&weights.data[span]) {
                let acc = &mut self.by_item[item as usize];
                if *acc == 0.0 {
                    self.items_touched.push(item);
                }
                *acc += similarity / total * weight;
            }
        }
        for &i in &self.items_touched {
            let score = std::mem::take(&mut self.by_item[i as usize]);
            if score > 0.0 && self.best.admits(score) {
                self.best.offer((score, i), k);
            }
        }
        self.items_touched.clear();
        self.best.take(k)
    }
}

/// The order-line columns copied out of numpy, so the work can run without the GIL.
struct OwnedLines {
    customer: Vec<i32>,
    basket: Vec<i32>,
    item: Vec<i32>,
    purchased_at: Vec<i64>,
    n_customers: usize,
    n_items: usize,
}

impl OwnedLines {
    fn copied(
        customer: &PyReadonlyArray1<'_, i32>,
        basket: &PyReadonlyArray1<'_, i32>,
        item: &PyReadonlyArray1<'_, i32>,
        purchased_at: &PyReadonlyArray1<'_, i64>,
        n_customers: usize,
        n_items: usize,
    ) -> CoreResult<Self> {
        Ok(Self {
            customer: copy_array("customer", customer)?,
            basket: copy_array("basket", basket)?,
            item: copy_array("item", item)?,
            purchased_at: copy_array("purchased_at", purchased_at)?,
            n_customers,
            n_items,
        })
    }

    fn view(&self) -> Lines<'_> {
        Lines {
            customer: &self.customer,
            basket: &self.basket,
            item: &self.item,
            purchased_at: &self.purchased_at,
            n_customers: self.n_customers,
            n_items: self.n_items,
        }
    }
}

/// (indptr, items, scores) as numpy arrays.
type Table<'py> = (Bound<'py, PyArray1<i64>>, Bound<'py, PyArray1<i32>>, Bound<'py, PyArray1<f32>>);

/// Shoppers like you from every customer's order lines (`customer`, `basket`, `item` codes and
/// `purchased_at` epoch seconds, as the build's `PurchaseLines` holds them): (indptr
/// int64[n_customers + 1], items int32, scores float32), each customer's products best first.
/// `only` (customer codes, int32): fill just their rows, the others empty. Runs in parallel
/// with the GIL released.
#[pyfunction]
#[pyo3(signature = (customer, basket, item, purchased_at, n_customers, n_items, *, habit_decay, neighbours, items,
                    postings_cap, only=None))]
#[allow(clippy::too_many_arguments)]
pub fn shoppers_like_you_table<'py>(
    py: Python<'py>,
    customer: PyReadonlyArray1<'py, i32>,
    basket: PyReadonlyArray1<'py, i32>,
    item: PyReadonlyArray1<'py, i32>,
    purchased_at: PyReadonlyArray1<'py, i64>,
    n_customers: usize,
    n_items: usize,
    habit_decay: f64,
    neighbours: usize,
    items: usize,
    postings_cap: usize,
    only: Option<PyReadonlyArray1<'py, i32>>,
) -> PyResult<Table<'py>> {
    let lines = OwnedLines::copied(&customer, &basket, &item, &purchased_at, n_customers, n_items)?;
    let wanted = match only {
        None => None,
        Some(codes) => {
            let mut wanted = vec![false; n_customers];
            for &c in copy_array("only", &codes)?.iter() {
                if c < 0 || c as usize >= n_customers {
                    return Err(CoreErrorKind::InvalidInput(format!(
                        "only: customer code {c} outside 0..{n_customers}"
                    ))
                    .into());
                }
                wanted[c as usize] = true;
            }
            Some(wanted)
        }
    };
    let (indptr, items, scores) = without_gil(py, move || {
        let weights = habit_rows(&lines.view(), habit_decay)?;
        Ok(shoppers_like_you(&weights, Settings { neighbours, items, postings_cap }, wanted.as_deref()))
    })?;
    Ok((PyArray1::from_vec(py, indptr), PyArray1::from_vec(py, items), PyArray1::from_vec(py, scores)))
}

/// The customer × item habit weights `shoppers_like_you_table` compares, as CSR (indptr int64,
/// indices int32, data float32), for checking against a reference.
#[pyfunction]
#[pyo3(signature = (customer, basket, item, purchased_at, n_customers, n_items, *, habit_decay))]
#[allow(clippy::too_many_arguments)]
pub fn customer_habit_weights<'py>(
    py: Python<'py>,
    customer: PyReadonlyArray1<'py, i32>,
    basket: PyReadonlyArray1<'py, i32>,
    item: PyReadonlyArray1<'py, i32>,
    purchased_at: PyReadonlyArray1<'py, i64>,
    n_customers: usize,
    n_items: usize,
    habit_decay: f64,
) -> PyResult<Table<'py>> {
    let lines = OwnedLines::copied(&customer, &basket, &item, &purchased_at, n_customers, n_items)?;
    let weights = without_gil(py, move || habit_rows(&lines.view(), habit_decay))?;
    let indptr: Vec<i64> = weights.indptr.iter().map(|p| *p as i64).collect();
    let indices: Vec<i32> = weights.indices.iter().map(|i| *i as i32).collect();
    Ok((PyArray1::from_vec(py, indptr), PyArray1::from_vec(py, indices), PyArray1::from_vec(py, weights.data)))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(shoppers_like_you_table, m)?)?;
    m.add_function(wrap_pyfunction!(customer_habit_weights, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Customers 0-2 buy among items {0, 1, 2}; 3-4 among {3, 4}; customer 5 buys 2 and 3.
    fn shop() -> Csr<Vec<f32>> {
        let rows: [&[(i32, f32)]; 6] = [
            &[(0, 1.0), (1, 0.5)],
            &[(0, 0.8), (1, 0.4), (2, 0.3)],
            &[(1, 0.9), (2, 0.6)],
            &[(3, 1.0), (4, 0.2)],
            &[(3, 0.7)],
            &[(2, 0.5), (3, 0.5)],
        ];
        let (mut indptr, mut indices, mut data) = (vec![0i64], vec![], vec![]);
        for row in rows {
            for (i, w) in row {
                indices.push(*i);
                data.push(*w);
            }
            indptr.push(indices.len() as i64);
        }
        Csr::from_parts(indptr, indices, data, 5).unwrap()
    }

    fn row(table: &(Vec<i64>, Vec<i32>, Vec<f32>), r: usize) -> Vec<i32> {
        table.1[table.0[r] as usize..table.0[r + 1] as usize].to_vec()
    }

    #[test]
    fn neighbours_come_from_the_same_taste() {
        let table = shoppers_like_you(&shop(), Settings { neighbours: 2, items: 3, postings_cap: 0 }, None);
        // Customer 0's nearest are 1 and 2: their products, not the other group's.
        assert!(row(&table, 0).iter().all(|i| *i <= 2));
        assert_eq!(row(&table, 0), vec![0, 1, 2], "the nearest neighbour's favourite first");
        assert!(row(&table, 3).contains(&3));
        assert_eq!(*table.0.last().unwrap() as usize, table.1.len());
    }

    #[test]
    fn a_wide_cap_is_exact_and_a_narrow_one_still_finds_neighbours() {
        let exact = shoppers_like_you(&shop(), Settings { neighbours: 2, items: 5, postings_cap: 0 }, None);
        let capped = shoppers_like_you(&shop(), Settings { neighbours: 2, items: 5, postings_cap: 6 }, None);
        assert_eq!(exact, capped);
        let narrow = shoppers_like_you(&shop(), Settings { neighbours: 2, items: 5, postings_cap: 1 }, None);
        assert_eq!(narrow.0.len(), 7);
    }

    #[test]
    fn only_the_wanted_rows_are_filled_and_they_are_the_full_tables() {
        let settings = Settings { neighbours: 2, items: 5, postings_cap: 0 };
        let full = shoppers_like_you(&shop(), settings, None);
        let wanted = [false, true, false, false, false, true];
        let some = shoppers_like_you(&shop(), settings, Some(&wanted));
        for (customer, &is_wanted) in wanted.iter().enumerate() {
            assert_eq!(row(&some, customer), if is_wanted { row(&full, customer) } else { vec![] });
        }
    }

    #[test]
    fn habit_rows_decay_by_trips_ago() {
        // Customer 0: trips at t=10 (basket 3: items 0, 1) and t=20 (basket 1: item 0, twice).
        // Customer 1: one trip (basket 2: item 1).
        let lines = Lines {
            customer: &[0, 0, 0, 0, 1],
            basket: &[3, 3, 1, 1, 2],
            item: &[0, 1, 0, 0, 1],
            purchased_at: &[10, 11, 20, 21, 5],
            n_customers: 2,
            n_items: 2,
        };
        let rows = habit_rows(&lines, 0.5).unwrap();
        assert_eq!(rows.indptr, vec![0, 2, 3]);
        assert_eq!(rows.indices, vec![0, 1, 1]);
        // Item 0 in both trips: (1 + 0.5) / 1.5; item 1 only in the older: 0.5 / 1.5.
        assert!((rows.data[0] - 1.0).abs() < 1e-6 && (rows.data[1] - 1.0 / 3.0).abs() < 1e-6);
        assert_eq!(rows.data[2], 1.0);
        let bad = Lines { item: &[0, 1, 0, 0, 2], ..lines };
        assert!(habit_rows(&bad, 0.5).is_err());
    }

    #[test]
    fn a_customer_with_nothing_in_common_gets_an_empty_row() {
        let m = Csr::from_parts(vec![0, 1, 2], vec![0, 1], vec![1.0, 1.0], 2).unwrap();
        let table = shoppers_like_you(&m, Settings { neighbours: 3, items: 3, postings_cap: 0 }, None);
        assert_eq!(table.0, vec![0, 0, 0]);
    }

    /// A shop of `n` customers over `n_items` products, weights from a few values so that equal
    /// rows (and so tied similarities and scores) are common.
    fn random_shop(n: usize, n_items: usize, seed: u64) -> Csr<Vec<f32>> {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
        let (mut indptr, mut indices, mut data) = (vec![0i64], Vec::new(), Vec::new());
        for _ in 0..n {
            let mut row: Vec<i32> =
                (0..rng.random_range(0..12)).map(|_| (rng.random::<f64>().powi(2) * n_items as f64) as i32).collect();
            row.sort_unstable();
            row.dedup();
            data.extend(row.iter().map(|_| [0.3f32, 0.7, 1.3][rng.random_range(0..3)]));
            indices.extend(row);
            indptr.push(indices.len() as i64);
        }
        Csr::from_parts(indptr, indices, data, n_items as i64).unwrap()
    }

    /// The table computed the plain way: every pair of customers over dense rows, each sum taken
    /// in the order the index walk takes it (the shopper's products in order, then the
    /// neighbours best first), full sorts instead of selections.
    fn plain_table(weights: &Csr<Vec<f32>>, s: Settings) -> (Vec<i64>, Vec<i32>, Vec<f32>) {
        let unit = unit_rows(weights);
        let (n, n_items) = (unit.n_rows(), unit.n_cols);
        let mut dense = vec![vec![0f32; n_items]; n];
        for (c, row) in dense.iter_mut().enumerate() {
            for e in unit.row_range(c) {
                row[unit.indices[e] as usize] = unit.data[e];
            }
        }
        // listed[i][v]: v is among the `postings_cap` heaviest buyers of i (ties: lower v).
        let mut listed = vec![vec![false; n]; n_items];
        for (i, listed) in listed.iter_mut().enumerate() {
            let mut buyers: Vec<usize> = (0..n).filter(|&v| dense[v][i] > 0.0).collect();
            buyers.sort_by(|&a, &b| dense[b][i].partial_cmp(&dense[a][i]).unwrap().then(a.cmp(&b)));
            let keep = if s.postings_cap == 0 { buyers.len() } else { s.postings_cap.min(buyers.len()) };
            buyers[..keep].iter().for_each(|&v| listed[v] = true);
        }
        let best_first = |a: &(u32, f32), b: &(u32, f32)| b.1.partial_cmp(&a.1).unwrap().then(a.0.cmp(&b.0));
        let (mut indptr, mut items, mut scores) = (vec![0i64], Vec::new(), Vec::new());
        for u in 0..n {
            let mut similar: Vec<(u32, f32)> = (0..n)
                .filter(|&v| v != u)
                .map(|v| {
                    let mut sum = 0f32;
                    for e in unit.row_range(u) {
                        let i = unit.indices[e] as usize;
                        if listed[i][v] {
                            sum += unit.data[e] * dense[v][i];
                        }
                    }
                    (v as u32, sum)
                })
                .filter(|p| p.1 > 0.0)
                .collect();
            similar.sort_by(best_first);
            similar.truncate(s.neighbours);
            let total: f32 = similar.iter().map(|p| p.1).sum();
            let mut mean = vec![0f32; n_items];
            for &(v, similarity) in &similar {
                for e in weights.row_range(v as usize) {
                    mean[weights.indices[e] as usize] += similarity / total * weights.data[e];
                }
            }
            let mut top: Vec<(u32, f32)> =
                mean.iter().enumerate().filter(|p| *p.1 > 0.0).map(|(i, m)| (i as u32, *m)).collect();
            top.sort_by(best_first);
            top.truncate(s.items);
            for (item, score) in top {
                items.push(item as i32);
                scores.push(score);
            }
            indptr.push(items.len() as i64);
        }
        (indptr, items, scores)
    }

    /// Bit for bit: the prefetching index walk and the bounded selections change only speed.
    #[test]
    fn the_index_walk_matches_the_plain_computation_exactly() {
        let cases = [(0, 3, 5), (0, 1, 1), (0, 40, 40), (2, 3, 5), (5, 2, 3), (1, 10, 8)];
        for (seed, (postings_cap, neighbours, items)) in cases.into_iter().enumerate() {
            let shop = random_shop(150, 40, seed as u64);
            let s = Settings { neighbours, items, postings_cap };
            let (got, want) = (shoppers_like_you(&shop, s, None), plain_table(&shop, s));
            assert_eq!((&got.0, &got.1), (&want.0, &want.1), "{s:?}");
            let bits = |scores: &[f32]| scores.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&got.2), bits(&want.2), "{s:?}");
        }
    }
}
