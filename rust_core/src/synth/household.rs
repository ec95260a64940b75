//! Who shops: a household's make-up, diet, budget, taste and shopping rhythm.
//!
//! Drawn from the household's own random stream, so household 17 is the same person whatever
//! the thread count. The proportions are plausible for a Western supermarket's customer base;
//! they are written to households.csv as ground truth for profiling.
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, Exp, LogNormal};

use crate::synth::seeds;
use crate::synth::shelf::{Aisle, Audience, Product, DIET_VEGAN, DIET_VEGETARIAN};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Diet {
    Omnivore,
    Vegetarian,
    Vegan,
}

impl Diet {
    pub fn label(self) -> &'static str {
        match self {
            Diet::Omnivore => "omnivore",
            Diet::Vegetarian => "vegetarian",
            Diet::Vegan => "vegan",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Budget {
    Low,
    Mid,
    High,
}

impl Budget {
    pub fn label(self) -> &'static str {
        match self {
            Budget::Low => "low",
            Budget::Mid => "mid",
            Budget::High => "high",
        }
    }
}

/// Allergen bit positions, as in `domain.models.ALLERGENS`, with how common each allergy is.
const ALLERGY_SHARES: [(u16, f64); 8] = [
    (3, 0.25), // peanuts
    (4, 0.15), // tree_nuts
    (1, 0.20), // milk
    (0, 0.15), // gluten
    (7, 0.10), // shellfish
    (2, 0.07), // eggs
    (5, 0.04), // soy
    (8, 0.04), // sesame
];
const HOUSEHOLD_SIZE_SHARES: [f64; 6] = [0.28, 0.34, 0.15, 0.14, 0.06, 0.03];

#[derive(Clone, Debug)]
pub struct Household {
    pub size: u8,
    pub adults: u8,
    pub children: u8,
    pub baby: bool,
    pub age_band: &'static str,
    pub budget: Budget,
    pub diet: Diet,
    pub allergens: u16,
    pub organic: bool,
    pub dog: bool,
    pub cat: bool,
    pub drinks: bool,
    pub segment: u32,
    /// Scales how many aisles become regular needs: top-up shoppers (small) to big weekly shops.
    pub repertoire: f32,
    /// Typical days between shopping trips.
    pub trip_interval: f32,
    /// Relative liking for each weekday (0 = Sunday).
    pub weekday_liking: [f32; 7],
    pub usual_hour: f32,
    pub first_day: u32,
    /// The day the household stops shopping (≥ the period's length: never).
    pub last_day: u32,
    /// Preference for expensive (> 0) or cheap (< 0) products within an aisle.
    pub price_taste: f32,
    /// Chance, at each purchase of a regular need, of switching to another product.
    pub switch_rate: f32,
    pub explore_rate: f32,
    pub impulse_rate: f32,
    pub complement_propensity: f32,
    brand_key: u64,
}

impl Household {
    pub fn draw(rng: &mut ChaCha8Rng, index: u32, days: u32, segments: usize, seed: u64) -> Household {
        let size = 1 + pick_index(rng, &HOUSEHOLD_SIZE_SHARES) as u8;
        let adults = if size == 1 || (size >= 2 && rng.random::<f64>() < 0.1) { 1 } else { 2 }.min(size);
        let children = size - adults;
        let baby = children > 0 && rng.random::<f64>() < 0.3;
        let age_band = if children > 0 {
            ["25-34", "35-44", "45-54"][pick_index(rng, &[0.4, 0.45, 0.15])]
        } else {
            ["18-24", "25-34", "35-44", "45-54", "55-64", "65+"][pick_index(rng, &[0.12, 0.24, 0.16, 0.16, 0.16, 0.16])]
        };
        let budget = [Budget::Low, Budget::Mid, Budget::High][pick_index(rng, &[0.3, 0.5, 0.2])];
        let diet = [Diet::Omnivore, Diet::Vegetarian, Diet::Vegan][pick_index(rng, &[0.9, 0.07, 0.03])];
        let allergens = if rng.random::<f64>() < 0.1 {
            let shares: Vec<f64> = ALLERGY_SHARES.iter().map(|(_, s)| *s).collect();
            1u16 << ALLERGY_SHARES[pick_index(rng, &shares)].0
        } else {
            0
        };
        let organic = rng.random::<f64>()
            < match budget {
                Budget::Low => 0.06,
                Budget::Mid => 0.15,
                Budget::High => 0.35,
            };
        let dog = rng.random::<f64>() < 0.25;
        let cat = rng.random::<f64>() < 0.2;
        let drinks = rng.random::<f64>() < 0.6;
        let segment = rng.random_range(0..segments as u32);
        let repertoire =
            (LogNormal::new((0.18f64).ln(), 0.55).unwrap().sample(rng) * (size as f64 / 2.0).powf(0.3)) as f32;

        // Bigger households shop a little more often; everyone has their own rhythm.
        let interval = LogNormal::new((13.0f64).ln(), 0.6).unwrap().sample(rng) * (2.0 / size as f64).powf(0.15);
        let trip_interval = interval.clamp(2.5, 60.0) as f32;
        const WEEKDAY_BASE: [f32; 7] = [1.4, 1.05, 0.85, 0.85, 0.9, 0.95, 1.3];
        let jitter = LogNormal::new(0.0, 0.4).unwrap();
        let mut weekday_liking = [0f32; 7];
        for (liking, base) in weekday_liking.iter_mut().zip(WEEKDAY_BASE) {
            *liking = base * jitter.sample(rng) as f32;
        }
        let usual_hour = match pick_index(rng, &[0.4, 0.4, 0.2]) {
            0 => 10.5 + 1.8 * standard_normal(rng),
            1 => 14.5 + 1.8 * standard_normal(rng),
            _ => 19.0 + 1.5 * standard_normal(rng),
        } as f32;

        // Most customers are already shopping when the period starts; the rest sign up over
        // the year. About a third leave again (churn) after a few months.
        let min_span = (3.0 * trip_interval).min(days as f32 / 2.0) as u32;
        let first_day = if rng.random::<f64>() < 0.45 {
            rng.random_range(0..(days / 12).max(1))
        } else {
            rng.random_range(0..(days - min_span).max(1))
        };
        let last_day = if rng.random::<f64>() < 0.45 {
            let lifetime = Exp::new(1.0 / 100.0).unwrap().sample(rng) as u32;
            first_day + lifetime.max(min_span)
        } else {
            u32::MAX
        };

        let (price_taste, switch_rate) = match budget {
            Budget::Low => (-2.0, 0.06),
            Budget::Mid => (-0.6, 0.03),
            Budget::High => (0.4, 0.02),
        };
        let rate = |median: f64, rng: &mut ChaCha8Rng| LogNormal::new(median.ln(), 0.5).unwrap().sample(rng) as f32;
        Household {
            size,
            adults,
            children,
            baby,
            age_band,
            budget,
            diet,
            allergens,
            organic,
            dog,
            cat,
            drinks,
            segment,
            repertoire,
            trip_interval,
            weekday_liking,
            usual_hour,
            first_day,
            last_day,
            price_taste,
            switch_rate,
            explore_rate: rate(2.0, rng),
            impulse_rate: rate(0.6, rng) * (size as f32 / 2.0).powf(0.3),
            complement_propensity: rate(1.0, rng),
            brand_key: seeds::key(seed, seeds::TAG_BRAND_LIKING, index as u64, 0),
        }
    }

    /// Consumption speed relative to a household of two (more people use things up faster).
    pub fn cycle_scale(&self) -> f32 {
        (2.0 / self.size as f32).powf(0.6)
    }

    /// May this household shop the aisle at all?
    pub fn uses_aisle(&self, aisle: &Aisle) -> bool {
        match aisle.audience {
            Audience::All => true,
            Audience::Dog => self.dog,
            Audience::Cat => self.cat,
            Audience::Baby => self.baby,
            Audience::Alcohol => self.drinks,
        }
    }

    /// Diet and allergies are hard rules: a vegan household never buys anything not vegan.
    pub fn may_eat(&self, product: &Product) -> bool {
        let diet_ok = match self.diet {
            Diet::Omnivore => true,
            Diet::Vegetarian => product.diet & DIET_VEGETARIAN != 0,
            Diet::Vegan => product.diet & DIET_VEGAN != 0,
        };
        diet_ok && product.allergens & self.allergens == 0
    }

    /// How much this household likes a product relative to its taste segment's view.
    pub fn liking(&self, product: &Product) -> f64 {
        let brand = (0.8 * seeds::normal(seeds::mix(self.brand_key ^ product.brand as u64))).exp();
        let price = (self.price_taste as f64 * product.relative_price as f64).exp();
        let organic = match (self.organic, product.organic) {
            (true, true) => 3.0,
            (false, true) => 0.6,
            _ => 1.0,
        };
        let kids = match (self.children > 0, product.kids) {
            (true, true) => 2.0,
            (false, true) => 0.15,
            _ => 1.0,
        };
        let plant = match (self.diet, product.plant) {
            (Diet::Omnivore, true) => 0.5,
            (_, true) => 3.0,
            _ => 1.0,
        };
        brand * price * organic * kids * plant
    }

    /// Aisles of plant-based alternatives matter more to vegetarian and vegan households.
    pub fn aisle_need_boost(&self, aisle: &Aisle) -> f32 {
        match self.diet {
            Diet::Omnivore => 1.0,
            _ => 1.0 + 6.0 * aisle.plant_share,
        }
    }

    pub fn allergen_list(&self, names: &[&str]) -> String {
        names
            .iter()
            .enumerate()
            .filter(|(bit, _)| self.allergens & (1 << bit) != 0)
            .map(|(_, name)| *name)
            .collect::<Vec<_>>()
            .join(";")
    }
}

pub fn pick_index(rng: &mut ChaCha8Rng, weights: &[f64]) -> usize {
    let total: f64 = weights.iter().sum();
    let mut u = rng.random::<f64>() * total;
    for (i, w) in weights.iter().enumerate() {
        if u < *w {
            return i;
        }
        u -= w;
    }
    weights.len() - 1
}

pub fn standard_normal(rng: &mut ChaCha8Rng) -> f64 {
    rand_distr::StandardNormal.sample(rng)
}
