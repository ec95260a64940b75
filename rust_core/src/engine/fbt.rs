//! "Frequently bought together": basket-level lift, so complements outrank substitutes.
//!
//! Customer-level co-purchase links two brands of milk (the same households buy both, in
//! different weeks); within one basket they rarely meet, because a shopper picks one. Lift,
//! the ratio of baskets holding both to what independence predicts, is above 1 for pasta and
//! pasta sauce and below 1 for the two milks. Raw lift explodes for rare pairs (two items seen
//! once, together, have lift N), so both counts get `prior` pseudo-baskets, which pulls thin
//! evidence towards 1, and pairs seen together in fewer than `min_support` baskets are dropped.
use numpy::PyReadonlyArray1;
use pyo3::prelude::*;

use super::cooccurrence::{neighbour_count, top_k_neighbours, NeighbourArrays, Neighbours};
use super::sparse::{copy_array, Csr, Ones};
use crate::gil::without_gil;
use crate::invalid;

/// Top-`k` complements per item by shrunk lift
/// (together + prior) / (expected + prior), expected = holding_i · holding_j / n_baskets;
/// only pairs with lift > 1 and at least `min_support` shared baskets are kept.
pub fn basket_lift_neighbours(baskets: &Csr<Ones>, k: usize, min_support: u32, prior: f32) -> Neighbours {
    let holding: Vec<f32> = baskets.column_counts().into_iter().map(|c| c as f32).collect();
    let n_baskets = baskets.n_rows().max(1) as f32;
    let min_support = min_support as f32;
    top_k_neighbours(baskets, k, &holding, |holding_i, holding_j, together| {
        let expected = holding_i * (holding_j / n_baskets);
        let lift = (together + prior) / (expected + prior);
        // Selects, not early returns: the kernel vectorises this for popular items.
        if together >= min_support && lift > 1.0 {
            lift
        } else {
            f32::NEG_INFINITY
        }
    })
}

/// Top-`k` items bought together with each item, by shrunk basket lift.
///
/// Input is the basket × item incidence matrix in CSR form (`indptr` int64, `indices` int32;
/// a basket lists each item once). Score = (together + prior) / (expected + prior) with
/// expected = baskets_i · baskets_j / n_baskets; only pairs with score > 1 and at least
/// `min_support` shared baskets are kept. Returns `(items int32 [n_items, k], lift float32
/// [n_items, k])`, best first, padded with -1 / 0. Runs in parallel with the GIL released.
#[pyfunction]
#[pyo3(signature = (indptr, indices, n_items, k, min_support, prior))]
pub fn basket_complements<'py>(
    py: Python<'py>,
    indptr: PyReadonlyArray1<'py, i64>,
    indices: PyReadonlyArray1<'py, i32>,
    n_items: i64,
    k: i64,
    min_support: i64,
    prior: f64,
) -> PyResult<NeighbourArrays<'py>> {
    let indptr = copy_array("indptr", &indptr)?;
    let indices = copy_array("indices", &indices)?;
    let neighbours = without_gil(py, move || {
        let k = neighbour_count(k)?;
        if !(1..=u32::MAX as i64).contains(&min_support) {
            return invalid!("min_support must be at least 1 basket, got {min_support}");
        }
        if !(prior.is_finite() && prior >= 0.0) {
            return invalid!("prior must be a finite number >= 0, got {prior}");
        }
        let baskets = Csr::from_parts(indptr, indices, Ones, n_items)?;
        Ok(basket_lift_neighbours(&baskets, k, min_support as u32, prior as f32))
    })?;
    Ok(neighbours.into_numpy(py))
}

pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(basket_complements, m)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Ten baskets over pasta (0), sauce (1), milk A (2), milk B (3):
    /// 4 × {pasta, sauce}, 1 × {pasta, milk A}, 2 × {milk A}, 2 × {milk B}, 1 × {sauce, milk B}.
    fn baskets() -> Csr<Ones> {
        let rows: Vec<Vec<i32>> =
            [vec![vec![0, 1]; 4], vec![vec![0, 2]], vec![vec![2]; 2], vec![vec![3]; 2], vec![vec![1, 3]]].concat();
        let mut indptr = vec![0i64];
        let mut indices = Vec::new();
        for row in rows {
            indices.extend(row);
            indptr.push(indices.len() as i64);
        }
        Csr::from_parts(indptr, indices, Ones, 4).unwrap()
    }

    #[test]
    fn lift_matches_hand_computation() {
        // pasta in 5 baskets, sauce in 5: expected together 2.5, seen 4 → (4+1)/(2.5+1).
        // pasta & milk A: 5·3/10 = 1.5 expected, seen 1 → (1+1)/(1.5+1) < 1, dropped.
        let n = basket_lift_neighbours(&baskets(), 2, 1, 1.0);
        let (items, lifts) = n.row(0);
        assert_eq!(items, &[1, -1]);
        assert!((lifts[0] - 5.0 / 3.5).abs() < 1e-6);
    }

    #[test]
    fn min_support_drops_rare_pairs() {
        let n = basket_lift_neighbours(&baskets(), 2, 5, 0.0);
        assert!(n.items.iter().all(|&j| j == -1));
    }

    #[test]
    fn substitutes_are_not_complements() {
        // The two milks never share a basket; milk B's only partner is sauce, at lift below 1.
        let n = basket_lift_neighbours(&baskets(), 3, 1, 0.0);
        assert_eq!(n.row(2).0, &[-1, -1, -1]);
        assert_eq!(n.row(3).0, &[-1, -1, -1]);
    }
}
