//! What the simulated households shop from: the catalogue, the calendar and the taste segments.
//!
//! Built once from the arrays Python prepares (python/omnix_recs/data/generate.py), validated,
//! then shared read-only by every household simulation thread.
use crate::errors::CoreResult;
use crate::invalid;
use crate::synth::seeds;

/// Who may buy an aisle's products (codes match `taxonomy.AUDIENCES`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Audience {
    All,
    Dog,
    Cat,
    Baby,
    Alcohol,
}

impl Audience {
    fn from_code(code: u8) -> CoreResult<Self> {
        Ok(match code {
            0 => Audience::All,
            1 => Audience::Dog,
            2 => Audience::Cat,
            3 => Audience::Baby,
            4 => Audience::Alcohol,
            _ => return invalid!("unknown aisle audience code {code}"),
        })
    }
}

pub const DIET_VEGAN: u8 = 1;
pub const DIET_VEGETARIAN: u8 = 2;

#[derive(Clone, Debug)]
pub struct Product {
    pub aisle: u32,
    pub brand: u32,
    /// Days a household of two takes to use up one pack.
    pub cycle_days: f32,
    pub season: u8,
    /// First day the product is on the shelf (0 = from the start).
    pub launch_day: u32,
    pub relative_price: f32,
    pub diet: u8,
    pub allergens: u16,
    pub organic: bool,
    pub kids: bool,
    pub plant: bool,
}

#[derive(Clone, Debug)]
pub struct Aisle {
    pub penetration: f32,
    pub needs: f32,
    pub impulse: f32,
    pub season: u8,
    pub audience: Audience,
    /// Share of the aisle's products that are plant-based alternatives.
    pub plant_share: f32,
    pub complements: Vec<(u32, f32)>,
}

/// The catalogue as columns, grouped by aisle for sampling.
pub struct ProductColumns<'a> {
    pub aisle: &'a [u32],
    pub brand: &'a [u32],
    pub cycle_days: &'a [f32],
    pub season: &'a [u8],
    pub launch_day: &'a [i32],
    pub popularity: &'a [f32],
    pub relative_price: &'a [f32],
    pub diet: &'a [u8],
    pub allergens: &'a [u16],
    pub organic: &'a [u8],
    pub kids: &'a [u8],
    pub plant: &'a [u8],
}

pub struct AisleColumns<'a> {
    pub penetration: &'a [f32],
    pub needs: &'a [f32],
    pub impulse: &'a [f32],
    pub season: &'a [u8],
    pub audience: &'a [u8],
    pub complement_offsets: &'a [u32],
    pub complement_aisles: &'a [u32],
    pub complement_probability: &'a [f32],
}

pub struct Shelf {
    pub products: Vec<Product>,
    pub aisles: Vec<Aisle>,
    /// Products of aisle `a` are `aisle_products[aisle_offsets[a]..aisle_offsets[a + 1]]`.
    aisle_offsets: Vec<usize>,
    aisle_products: Vec<u32>,
    pub segments: usize,
    /// Per segment, running sums of product appeal in `aisle_products` order (restarting per aisle).
    appeal_cumulative: Vec<f64>,
    /// Per segment and aisle: how much more (or less) than average the segment uses the aisle.
    aisle_affinity: Vec<f32>,
}

/// How strongly taste segments disagree about products and aisles (log-normal spreads).
const PRODUCT_TASTE_SPREAD: f64 = 1.0;
const AISLE_TASTE_SPREAD: f64 = 0.6;

impl Shelf {
    pub fn new(p: &ProductColumns<'_>, a: &AisleColumns<'_>, segments: usize, seed: u64) -> CoreResult<Shelf> {
        let n = p.aisle.len();
        let lengths = [
            p.brand.len(),
            p.cycle_days.len(),
            p.season.len(),
            p.launch_day.len(),
            p.popularity.len(),
            p.relative_price.len(),
            p.diet.len(),
            p.allergens.len(),
            p.organic.len(),
            p.kids.len(),
            p.plant.len(),
        ];
        if n == 0 || lengths.iter().any(|&l| l != n) {
            return invalid!("product columns must be non-empty and of equal length {n}");
        }
        let n_aisles = a.penetration.len();
        let aisle_lengths = [a.needs.len(), a.impulse.len(), a.season.len(), a.audience.len()];
        if n_aisles == 0 || aisle_lengths.iter().any(|&l| l != n_aisles) {
            return invalid!("aisle columns must be non-empty and of equal length {n_aisles}");
        }
        if a.complement_offsets.len() != n_aisles + 1
            || a.complement_aisles.len() != a.complement_probability.len()
            || a.complement_offsets[n_aisles] as usize != a.complement_aisles.len()
        {
            return invalid!("complement offsets do not match the complement lists");
        }
        if segments == 0 {
            return invalid!("taste_segments must be positive");
        }

        let mut products = Vec::with_capacity(n);
        for i in 0..n {
            if p.aisle[i] as usize >= n_aisles {
                return invalid!("product {i}: aisle {} out of range", p.aisle[i]);
            }
            if !positive(p.cycle_days[i]) || !positive(p.popularity[i]) {
                return invalid!("product {i}: cycle_days and popularity must be positive");
            }
            products.push(Product {
                aisle: p.aisle[i],
                brand: p.brand[i],
                cycle_days: p.cycle_days[i],
                season: p.season[i],
                launch_day: p.launch_day[i].max(0) as u32,
                relative_price: p.relative_price[i],
                diet: p.diet[i],
                allergens: p.allergens[i],
                organic: p.organic[i] != 0,
                kids: p.kids[i] != 0,
                plant: p.plant[i] != 0,
            });
        }

        let mut aisle_offsets = vec![0usize; n_aisles + 1];
        for product in &products {
            aisle_offsets[product.aisle as usize + 1] += 1;
        }
        for k in 0..n_aisles {
            aisle_offsets[k + 1] += aisle_offsets[k];
        }
        let mut fill = aisle_offsets.clone();
        let mut aisle_products = vec![0u32; n];
        for (i, product) in products.iter().enumerate() {
            let slot = &mut fill[product.aisle as usize];
            aisle_products[*slot] = i as u32;
            *slot += 1;
        }

        let mut aisles = Vec::with_capacity(n_aisles);
        for k in 0..n_aisles {
            let (lo, hi) = (a.complement_offsets[k] as usize, a.complement_offsets[k + 1] as usize);
            if lo > hi {
                return invalid!("complement offsets must not decrease");
            }
            let mut complements = Vec::with_capacity(hi - lo);
            for j in lo..hi {
                if a.complement_aisles[j] as usize >= n_aisles {
                    return invalid!("aisle {k}: complement aisle out of range");
                }
                complements.push((a.complement_aisles[j], a.complement_probability[j]));
            }
            let members = &aisle_products[aisle_offsets[k]..aisle_offsets[k + 1]];
            let plants = members.iter().filter(|&&i| products[i as usize].plant).count();
            aisles.push(Aisle {
                penetration: a.penetration[k],
                needs: a.needs[k].max(1.0),
                impulse: a.impulse[k],
                season: a.season[k],
                audience: Audience::from_code(a.audience[k])?,
                plant_share: if members.is_empty() { 0.0 } else { plants as f32 / members.len() as f32 },
                complements,
            });
        }

        // Taste segments: each segment likes some products and aisles more than the average
        // shopper does. Households of one segment therefore share preferences — the signal
        // that "customers like you also buy" must find.
        let mut appeal_cumulative = vec![0f64; segments * n];
        for s in 0..segments {
            let row = &mut appeal_cumulative[s * n..(s + 1) * n];
            for k in 0..n_aisles {
                let mut running = 0.0;
                for pos in aisle_offsets[k]..aisle_offsets[k + 1] {
                    let i = aisle_products[pos] as u64;
                    let z = seeds::normal(seeds::key(seed, seeds::TAG_PRODUCT_APPEAL, s as u64, i));
                    running += p.popularity[i as usize] as f64 * (PRODUCT_TASTE_SPREAD * z).exp();
                    row[pos] = running;
                }
            }
        }
        let mut aisle_affinity = vec![0f32; segments * n_aisles];
        for s in 0..segments {
            for k in 0..n_aisles {
                let z = seeds::normal(seeds::key(seed, seeds::TAG_AISLE_AFFINITY, s as u64, k as u64));
                aisle_affinity[s * n_aisles + k] = (AISLE_TASTE_SPREAD * z).exp() as f32;
            }
        }
        Ok(Shelf { products, aisles, aisle_offsets, aisle_products, segments, appeal_cumulative, aisle_affinity })
    }

    /// The products of an aisle and, for a segment, their running appeal sums (same length).
    pub fn aisle_with_appeal(&self, aisle: u32, segment: u32) -> (&[u32], &[f64]) {
        let (lo, hi) = (self.aisle_offsets[aisle as usize], self.aisle_offsets[aisle as usize + 1]);
        let row = segment as usize * self.products.len();
        (&self.aisle_products[lo..hi], &self.appeal_cumulative[row + lo..row + hi])
    }

    pub fn aisle_affinity(&self, segment: u32, aisle: u32) -> f32 {
        self.aisle_affinity[segment as usize * self.aisles.len() + aisle as usize]
    }
}

/// Days of the simulated period: seasonal multipliers (mean 1 over a year) and weekdays.
pub struct Calendar {
    pub days: u32,
    n_seasons: usize,
    multiplier: Vec<f32>,
    /// Running sums of the multipliers: consumption between two days is a difference.
    cumulative: Vec<f64>,
    /// 0 = Sunday … 6 = Saturday (the Instacart `order_dow` convention we write).
    pub weekday: Vec<u8>,
}

impl Calendar {
    pub fn new(multiplier: Vec<f32>, n_seasons: usize, weekday: Vec<u8>) -> CoreResult<Calendar> {
        let days = weekday.len();
        if days == 0 || n_seasons == 0 || multiplier.len() != n_seasons * days {
            return invalid!("season multipliers must be a [seasons, days] table matching the weekdays");
        }
        if multiplier.iter().any(|&m| m.is_nan() || m < 0.0) || weekday.iter().any(|&d| d > 6) {
            return invalid!("season multipliers must be non-negative and weekdays in 0..=6");
        }
        let mut cumulative = vec![0f64; n_seasons * (days + 1)];
        for s in 0..n_seasons {
            for d in 0..days {
                cumulative[s * (days + 1) + d + 1] = cumulative[s * (days + 1) + d] + multiplier[s * days + d] as f64;
            }
        }
        Ok(Calendar { days: days as u32, n_seasons, multiplier, cumulative, weekday })
    }

    pub fn check_season(&self, season: u8) -> CoreResult<()> {
        if (season as usize) < self.n_seasons {
            Ok(())
        } else {
            invalid!("season code {season} has no multiplier row")
        }
    }

    /// How much of the season's goods are used on `day` relative to an average day.
    pub fn multiplier(&self, season: u8, day: u32) -> f32 {
        let d = day.min(self.days - 1) as usize;
        self.multiplier[season as usize * self.days as usize + d]
    }

    /// Seasonal consumption between two days (in average days): past the end, the last day repeats.
    pub fn usage_between(&self, season: u8, from: u32, to: u32) -> f64 {
        let row = season as usize * (self.days as usize + 1);
        let at = |day: u32| {
            let d = day.min(self.days) as usize;
            let beyond = day.saturating_sub(self.days) as f64;
            self.cumulative[row + d] + beyond * self.multiplier(season, self.days - 1) as f64
        };
        at(to) - at(from)
    }
}

/// True for finite numbers above zero (NaN is not positive).
fn positive(value: f32) -> bool {
    value.is_finite() && value > 0.0
}

#[cfg(test)]
mod tests {
    use super::Calendar;

    fn calendar() -> Calendar {
        // Two seasons over four days: flat, and one that sells double on the last two days.
        Calendar::new(vec![1.0, 1.0, 1.0, 1.0, 0.5, 0.5, 1.5, 1.5], 2, vec![0, 1, 2, 3]).unwrap()
    }

    #[test]
    fn usage_between_days_follows_the_season() {
        let c = calendar();
        assert_eq!(c.usage_between(0, 0, 4), 4.0);
        assert_eq!(c.usage_between(1, 0, 2), 1.0);
        assert_eq!(c.usage_between(1, 2, 4), 3.0);
    }

    #[test]
    fn usage_past_the_end_repeats_the_last_day() {
        assert_eq!(calendar().usage_between(1, 3, 6), 1.5 * 3.0);
    }

    #[test]
    fn inconsistent_tables_are_rejected() {
        assert!(Calendar::new(vec![1.0; 7], 2, vec![0, 1, 2, 3]).is_err());
        assert!(Calendar::new(vec![1.0; 4], 1, vec![0, 1, 2, 7]).is_err());
        assert!(Calendar::new(vec![f32::NAN; 4], 1, vec![0, 1, 2, 3]).is_err());
    }
}
