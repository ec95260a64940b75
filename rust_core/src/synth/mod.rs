//! synth: the synthetic supermarket's households, simulated at Instacart scale.
//!
//! Python builds the catalogue and the calendar (python/omnix_recs/data/generate.py; the
//! README's "Generated data" describes the model); this module simulates every household's
//! shopping and writes orders.csv, order_products__prior.csv, order_products__train.csv and
//! households.csv.
//!
//! - `shelf`: catalogue, taste segments and calendar, shared read-only by all threads;
//! - `household`: who shops (size, diet, budget, rhythm);
//! - `shopping`: one household's trips and baskets;
//! - `instacart_files`: chunked parallel simulation and CSV writing;
//! - `seeds`: hashed randomness for values that must not depend on drawing order.
use std::path::PathBuf;

use numpy::{Element, PyReadonlyArray1, PyReadonlyArray2};
use pyo3::prelude::*;
use pyo3::types::PyDict;

use crate::errors::{CoreErrorKind, CoreResult};
use crate::gil::without_gil;
use crate::invalid;

pub mod household;
pub mod instacart_files;
pub mod seeds;
pub mod shelf;
pub mod shopping;

use instacart_files::{write_households, Counts, Run};
use shelf::{AisleColumns, Calendar, ProductColumns, Shelf};

/// Owned copies of the catalogue columns handed over by Python (small: one row per product).
struct ShelfInput {
    product_aisle: Vec<u32>,
    product_brand: Vec<u32>,
    product_cycle_days: Vec<f32>,
    product_season: Vec<u8>,
    product_launch_day: Vec<i32>,
    product_popularity: Vec<f32>,
    product_relative_price: Vec<f32>,
    product_diet: Vec<u8>,
    product_allergens: Vec<u16>,
    product_organic: Vec<u8>,
    product_kids: Vec<u8>,
    product_plant: Vec<u8>,
    aisle_penetration: Vec<f32>,
    aisle_needs: Vec<f32>,
    aisle_impulse: Vec<f32>,
    aisle_season: Vec<u8>,
    aisle_audience: Vec<u8>,
    complement_offsets: Vec<u32>,
    complement_aisles: Vec<u32>,
    complement_probability: Vec<f32>,
}

fn column<T: Element + Copy>(shelf: &Bound<'_, PyDict>, name: &str) -> PyResult<Vec<T>> {
    let value = shelf
        .get_item(name)?
        .ok_or_else(|| PyErr::from(CoreErrorKind::InvalidInput(format!("shelf column {name:?} is missing"))))?;
    let array = value.extract::<PyReadonlyArray1<'_, T>>().map_err(|_| {
        PyErr::from(CoreErrorKind::InvalidInput(format!(
            "shelf column {name:?} must be a 1-D numpy array of {}",
            std::any::type_name::<T>()
        )))
    })?;
    Ok(array.as_array().iter().copied().collect())
}

impl ShelfInput {
    fn extract(shelf: &Bound<'_, PyDict>) -> PyResult<Self> {
        Ok(ShelfInput {
            product_aisle: column(shelf, "product_aisle")?,
            product_brand: column(shelf, "product_brand")?,
            product_cycle_days: column(shelf, "product_cycle_days")?,
            product_season: column(shelf, "product_season")?,
            product_launch_day: column(shelf, "product_launch_day")?,
            product_popularity: column(shelf, "product_popularity")?,
            product_relative_price: column(shelf, "product_relative_price")?,
            product_diet: column(shelf, "product_diet")?,
            product_allergens: column(shelf, "product_allergens")?,
            product_organic: column(shelf, "product_organic")?,
            product_kids: column(shelf, "product_kids")?,
            product_plant: column(shelf, "product_plant")?,
            aisle_penetration: column(shelf, "aisle_penetration")?,
            aisle_needs: column(shelf, "aisle_needs")?,
            aisle_impulse: column(shelf, "aisle_impulse")?,
            aisle_season: column(shelf, "aisle_season")?,
            aisle_audience: column(shelf, "aisle_audience")?,
            complement_offsets: column(shelf, "complement_offsets")?,
            complement_aisles: column(shelf, "complement_aisles")?,
            complement_probability: column(shelf, "complement_probability")?,
        })
    }

    fn build(&self, segments: usize, seed: u64) -> CoreResult<Shelf> {
        let products = ProductColumns {
            aisle: &self.product_aisle,
            brand: &self.product_brand,
            cycle_days: &self.product_cycle_days,
            season: &self.product_season,
            launch_day: &self.product_launch_day,
            popularity: &self.product_popularity,
            relative_price: &self.product_relative_price,
            diet: &self.product_diet,
            allergens: &self.product_allergens,
            organic: &self.product_organic,
            kids: &self.product_kids,
            plant: &self.product_plant,
        };
        let aisles = AisleColumns {
            penetration: &self.aisle_penetration,
            needs: &self.aisle_needs,
            impulse: &self.aisle_impulse,
            season: &self.aisle_season,
            audience: &self.aisle_audience,
            complement_offsets: &self.complement_offsets,
            complement_aisles: &self.complement_aisles,
            complement_probability: &self.complement_probability,
        };
        Shelf::new(&products, &aisles, segments, seed)
    }
}

fn simulate(
    input: ShelfInput,
    calendar: Calendar,
    out_dir: PathBuf,
    households: u32,
    seed: u64,
    segments: usize,
    allergen_names: Vec<String>,
) -> CoreResult<Counts> {
    if households == 0 {
        return invalid!("households must be positive");
    }
    let shelf = input.build(segments, seed)?;
    for season in shelf.products.iter().map(|p| p.season).chain(shelf.aisles.iter().map(|a| a.season)) {
        calendar.check_season(season)?;
    }
    let run = Run { shelf: &shelf, calendar: &calendar, households, seed, allergen_names: &allergen_names };
    write_households(&run, &out_dir)
}

/// Simulate `households` households shopping the given shelf over the calendar's days and
/// write orders.csv, order_products__prior.csv, order_products__train.csv and households.csv
/// into `out_dir`. Returns counts: customers, orders, prior_lines, train_lines.
#[pyfunction]
#[pyo3(signature = (out_dir, shelf, *, households, seed, taste_segments, season_multiplier, weekday, allergen_names))]
#[allow(clippy::too_many_arguments)]
fn synth_simulate_households<'py>(
    py: Python<'py>,
    out_dir: PathBuf,
    shelf: &Bound<'py, PyDict>,
    households: u32,
    seed: u64,
    taste_segments: usize,
    season_multiplier: PyReadonlyArray2<'py, f32>,
    weekday: PyReadonlyArray1<'py, u8>,
    allergen_names: Vec<String>,
) -> PyResult<Bound<'py, PyDict>> {
    let input = ShelfInput::extract(shelf)?;
    let table = season_multiplier.as_array();
    let n_seasons = table.nrows();
    let calendar = Calendar::new(table.iter().copied().collect(), n_seasons, weekday.as_array().to_vec())?;
    let counts =
        without_gil(py, move || simulate(input, calendar, out_dir, households, seed, taste_segments, allergen_names))?;
    let result = PyDict::new(py);
    result.set_item("customers", counts.customers)?;
    result.set_item("orders", counts.orders)?;
    result.set_item("prior_lines", counts.prior_lines)?;
    result.set_item("train_lines", counts.train_lines)?;
    Ok(result)
}

/// Adds this module's functions to `omnix_recs._core`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(synth_simulate_households, m)?)?;
    Ok(())
}
