//! One household's shopping history: trips, and what goes into each basket.
//!
//! The household keeps a repertoire of regular needs (a product it is loyal to, with its own
//! consumption cycle and a stock level). On each trip:
//! 1. stock is used up since the last trip (faster in the product's season, with noise);
//!    every need that would run out before the next trip goes into the basket — unless
//!    forgotten — and sometimes the household switches to another product of the aisle;
//! 2. complements follow what is in the basket (pasta → its usual pasta sauce);
//! 3. a few occasional purchases on a whim, from impulse aisles, weighted by season;
//! 4. exploration: a product never bought before, from what the household's taste segment
//!    likes (new launches get a boost); some are adopted into the repertoire.
//!
//! The next trip follows the household's rhythm, nudged towards its favourite weekdays.
use rand::seq::SliceRandom;
use rand::Rng;
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, LogNormal, Poisson};

use crate::synth::household::{pick_index, standard_normal, Household};
use crate::synth::shelf::{Calendar, Shelf};

/// A product id with the "bought before" flag in the top bit.
pub const REORDERED: u32 = 1 << 31;

#[derive(Clone, Copy, Debug)]
pub struct Order {
    pub day: u32,
    pub hour: u8,
    pub lines: u32,
}

#[derive(Default)]
pub struct History {
    pub orders: Vec<Order>,
    /// Order lines of all orders, in order; each is a product index, `| REORDERED` if bought before.
    pub lines: Vec<u32>,
}

struct Need {
    product: u32,
    aisle: u32,
    cycle: f32,
    /// Packs left at the last trip (1.0 = a full pack).
    stock: f32,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Purpose {
    /// A regular need or a complement: the household's everyday choice.
    Everyday,
    /// A whim: seasonal products sell now.
    Occasion,
    /// Something never bought before; fresh launches are noticed.
    Discovery,
}

const FORGET_RATE: f64 = 0.07;
/// Stock below which a need must be bought before the next trip (in packs).
const REORDER_BUFFER: f32 = 0.15;
const CONSUMPTION_NOISE: f64 = 0.2;
const ADOPTION_RATE: f64 = 0.1;
const MAX_NEEDS: usize = 120;
const MIN_ORDERS: usize = 2;
const CANDIDATES: usize = 6;
const MAX_DRAWS: usize = 40;
/// How long a launch stays "new" for explorers (days, exponential decay).
const NOVELTY_DAYS: f32 = 40.0;

pub fn shop(household: &Household, shelf: &Shelf, calendar: &Calendar, rng: &mut ChaCha8Rng) -> History {
    Trip::new(household, shelf, calendar).run(rng)
}

struct Trip<'a> {
    household: &'a Household,
    shelf: &'a Shelf,
    calendar: &'a Calendar,
    needs: Vec<Need>,
    /// The product the household reaches for in each aisle (u32::MAX = none yet).
    usual: Vec<u32>,
    bought: Vec<u64>,
    /// Per aisle: how likely this household is to shop it on a whim / to explore it.
    impulse_weight: Vec<f32>,
    explore_weight: Vec<f32>,
}

impl<'a> Trip<'a> {
    fn new(household: &'a Household, shelf: &'a Shelf, calendar: &'a Calendar) -> Self {
        let gate = |k: usize| {
            let aisle = &shelf.aisles[k];
            if household.uses_aisle(aisle) {
                shelf.aisle_affinity(household.segment, k as u32)
            } else {
                0.0
            }
        };
        let impulse_weight = (0..shelf.aisles.len()).map(|k| gate(k) * shelf.aisles[k].impulse).collect();
        let explore_weight = (0..shelf.aisles.len())
            .map(|k| gate(k) * (shelf.aisles[k].penetration + 0.5 * shelf.aisles[k].impulse + 0.02))
            .collect();
        Trip {
            household,
            shelf,
            calendar,
            needs: Vec::new(),
            usual: vec![u32::MAX; shelf.aisles.len()],
            bought: vec![0; shelf.products.len().div_ceil(64)],
            impulse_weight,
            explore_weight,
        }
    }

    fn run(mut self, rng: &mut ChaCha8Rng) -> History {
        let h = self.household;
        let mut history = History::default();
        let end = self.calendar.days.min(h.last_day);
        let mut day = h.first_day;
        self.form_repertoire(day, rng);
        let mut previous = day;
        let mut basket: Vec<u32> = Vec::with_capacity(64);
        // Everyone who signs up shops at least twice (a history and a last basket), even if
        // they leave straight away.
        while day < self.calendar.days && (day < end || history.orders.len() < MIN_ORDERS) {
            basket.clear();
            self.restock_needs(previous, day, &mut basket, rng);
            self.add_complements(day, &mut basket, rng);
            self.add_occasions(day, &mut basket, rng);
            self.explore(day, &mut basket, rng);
            if basket.is_empty() {
                self.add_most_due(&mut basket);
            }
            if basket.is_empty() {
                self.add_anything(day, &mut basket, rng);
            }
            if !basket.is_empty() {
                basket.shuffle(rng); // add-to-cart order
                for &product in &basket {
                    let seen = self.has_bought(product);
                    history.lines.push(if seen { product | REORDERED } else { product });
                }
                for &product in &basket {
                    self.mark_bought(product);
                }
                let hour = (h.usual_hour as f64 + 1.5 * standard_normal(rng)).round().clamp(0.0, 23.0) as u8;
                history.orders.push(Order { day, hour, lines: basket.len() as u32 });
            }
            previous = day;
            let mut gap = self.next_gap(day, rng);
            if history.orders.len() < MIN_ORDERS {
                gap = gap.min(self.calendar.days.saturating_sub(day + 1)).max(1);
            }
            day += gap;
        }
        history
    }

    fn form_repertoire(&mut self, day: u32, rng: &mut ChaCha8Rng) {
        let h = self.household;
        for k in 0..self.shelf.aisles.len() {
            let aisle = &self.shelf.aisles[k];
            if aisle.penetration <= 0.0 || !h.uses_aisle(aisle) {
                continue;
            }
            let affinity = self.shelf.aisle_affinity(h.segment, k as u32).powf(0.8);
            let chance = (aisle.penetration * affinity * h.aisle_need_boost(aisle) * h.repertoire).min(0.95);
            if rng.random::<f32>() >= chance {
                continue;
            }
            let extra = Poisson::new((aisle.needs - 1.0).max(1e-3) as f64).unwrap().sample(rng) as usize;
            for _ in 0..1 + extra.min(4) {
                let taken: Vec<u32> = self.needs.iter().filter(|n| n.aisle == k as u32).map(|n| n.product).collect();
                if let Some(product) = self.pick(k as u32, day, Purpose::Everyday, &taken, rng) {
                    let stock = rng.random::<f32>();
                    self.add_need(product, stock, rng);
                }
            }
        }
    }

    fn add_need(&mut self, product: u32, stock: f32, rng: &mut ChaCha8Rng) {
        if self.needs.len() >= MAX_NEEDS {
            return;
        }
        let p = &self.shelf.products[product as usize];
        let personal = LogNormal::new(0.0, 0.25).unwrap().sample(rng) as f32;
        let cycle = (p.cycle_days * self.household.cycle_scale() * personal).max(1.0);
        self.usual[p.aisle as usize] = product;
        self.needs.push(Need { product, aisle: p.aisle, cycle, stock });
    }

    fn restock_needs(&mut self, previous: u32, day: u32, basket: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        let horizon = day + self.household.trip_interval.round() as u32;
        let noise = LogNormal::new(0.0, CONSUMPTION_NOISE).unwrap();
        for i in 0..self.needs.len() {
            let season = self.shelf.products[self.needs[i].product as usize].season;
            let used = self.calendar.usage_between(season, previous, day) * noise.sample(rng);
            let need = &mut self.needs[i];
            // Ran out since the last trip: the household did without (or bought it elsewhere).
            need.stock = (need.stock - (used / need.cycle as f64) as f32).max(0.0);
            let upcoming = (self.calendar.usage_between(season, day, horizon) / need.cycle as f64) as f32;
            if need.stock - upcoming >= REORDER_BUFFER || rng.random::<f64>() < FORGET_RATE {
                continue;
            }
            need.stock += 1.0;
            if rng.random::<f32>() < self.household.switch_rate {
                let (aisle, current) = (need.aisle, need.product);
                if let Some(other) = self.pick(aisle, day, Purpose::Everyday, &[current], rng) {
                    self.needs[i].product = other;
                    self.usual[aisle as usize] = other;
                }
            }
            push_unique(basket, self.needs[i].product);
        }
    }

    fn add_complements(&mut self, day: u32, basket: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        let mut i = 0;
        // Only what was in the basket before this step pulls complements (no chains).
        let planned = basket.len();
        while i < planned {
            let aisle = self.shelf.products[basket[i] as usize].aisle as usize;
            for &(target, probability) in &self.shelf.aisles[aisle].complements {
                if !self.household.uses_aisle(&self.shelf.aisles[target as usize]) {
                    continue;
                }
                if rng.random::<f32>() < probability * self.household.complement_propensity {
                    if let Some(product) = self.usual_or_new(target, day, Purpose::Everyday, rng) {
                        push_unique(basket, product);
                    }
                }
            }
            i += 1;
        }
    }

    fn add_occasions(&mut self, day: u32, basket: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        let count = poisson(self.household.impulse_rate as f64, rng);
        for _ in 0..count {
            let Some(aisle) = self.seasonal_aisle(&self.impulse_weight, day, rng) else { return };
            let usual = self.usual[aisle as usize];
            let in_season =
                usual != u32::MAX && self.calendar.multiplier(self.shelf.products[usual as usize].season, day) >= 0.6;
            let product = if in_season && rng.random::<f64>() < 0.6 {
                Some(usual)
            } else {
                self.pick(aisle, day, Purpose::Occasion, &[], rng)
            };
            if let Some(product) = product {
                if usual == u32::MAX || rng.random::<f64>() < 0.3 {
                    self.usual[aisle as usize] = product;
                }
                push_unique(basket, product);
            }
        }
    }

    fn explore(&mut self, day: u32, basket: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        let count = poisson(self.household.explore_rate as f64, rng);
        for _ in 0..count {
            let Some(aisle) = self.seasonal_aisle(&self.explore_weight, day, rng) else { return };
            let Some(product) = self.pick(aisle, day, Purpose::Discovery, &[], rng) else { continue };
            push_unique(basket, product);
            if rng.random::<f64>() >= ADOPTION_RATE || self.shelf.aisles[aisle as usize].penetration <= 0.0 {
                continue;
            }
            // Adopted: it replaces the household's usual product of the aisle, or joins it.
            let existing = self.needs.iter().position(|n| n.aisle == aisle);
            match existing {
                Some(i) if rng.random::<f64>() < 0.5 => {
                    self.needs[i].product = product;
                    self.needs[i].stock = self.needs[i].stock.max(1.0);
                    self.usual[aisle as usize] = product;
                }
                _ => self.add_need(product, 1.0, rng),
            }
        }
    }

    /// When nothing is due the household still came for something: the need closest to running out.
    fn add_most_due(&self, basket: &mut Vec<u32>) {
        let most_due = self.needs.iter().min_by(|a, b| (a.stock * a.cycle).total_cmp(&(b.stock * b.cycle)));
        if let Some(need) = most_due {
            basket.push(need.product);
        }
    }

    /// A household with no regular needs yet still leaves with something it likes.
    fn add_anything(&self, day: u32, basket: &mut Vec<u32>, rng: &mut ChaCha8Rng) {
        for _ in 0..20 {
            let Some(aisle) = self.seasonal_aisle(&self.explore_weight, day, rng) else { return };
            if let Some(product) = self.pick(aisle, day, Purpose::Everyday, &[], rng) {
                basket.push(product);
                return;
            }
        }
    }

    fn usual_or_new(&mut self, aisle: u32, day: u32, purpose: Purpose, rng: &mut ChaCha8Rng) -> Option<u32> {
        let usual = self.usual[aisle as usize];
        if usual != u32::MAX {
            return Some(usual);
        }
        let product = self.pick(aisle, day, purpose, &[], rng)?;
        self.usual[aisle as usize] = product;
        Some(product)
    }

    fn seasonal_aisle(&self, weights: &[f32], day: u32, rng: &mut ChaCha8Rng) -> Option<u32> {
        let seasonal: Vec<f64> = weights
            .iter()
            .zip(&self.shelf.aisles)
            .map(|(w, aisle)| (*w * self.calendar.multiplier(aisle.season, day)) as f64)
            .collect();
        if seasonal.iter().sum::<f64>() <= 0.0 {
            return None;
        }
        Some(pick_index(rng, &seasonal) as u32)
    }

    /// Choose a product of the aisle the way this household would: a few candidates drawn
    /// from what its taste segment likes, then one of them weighted by the household's own
    /// liking (brands, price, organic, kids, plant-based) and the purpose of the purchase.
    fn pick(&self, aisle: u32, day: u32, purpose: Purpose, exclude: &[u32], rng: &mut ChaCha8Rng) -> Option<u32> {
        let (products, cumulative) = self.shelf.aisle_with_appeal(aisle, self.household.segment);
        let total = *cumulative.last()?;
        let mut candidates = [(0u32, 0f64); CANDIDATES];
        let mut found = 0;
        for _ in 0..MAX_DRAWS {
            if found == CANDIDATES {
                break;
            }
            let u = rng.random::<f64>() * total;
            let at = cumulative.partition_point(|&c| c <= u).min(products.len() - 1);
            let index = products[at];
            let product = &self.shelf.products[index as usize];
            if product.launch_day > day || exclude.contains(&index) || !self.household.may_eat(product) {
                continue;
            }
            if purpose == Purpose::Discovery && self.has_bought(index) {
                continue;
            }
            let mut weight = self.household.liking(product);
            match purpose {
                Purpose::Everyday => {}
                Purpose::Occasion => weight *= self.calendar.multiplier(product.season, day) as f64,
                Purpose::Discovery => {
                    if product.launch_day > 0 {
                        let age = (day - product.launch_day) as f32;
                        weight *= (1.0 + 4.0 * (-age / NOVELTY_DAYS).exp()) as f64;
                    }
                }
            }
            candidates[found] = (index, weight);
            found += 1;
        }
        if found == 0 {
            return None;
        }
        let weights: Vec<f64> = candidates[..found].iter().map(|c| c.1).collect();
        Some(candidates[pick_index(rng, &weights)].0)
    }

    /// Days until the next trip: the household's rhythm with noise, nudged to a liked weekday.
    fn next_gap(&self, day: u32, rng: &mut ChaCha8Rng) -> u32 {
        let h = self.household;
        let gap = (h.trip_interval as f64 * LogNormal::new(0.0, 0.3).unwrap().sample(rng)).round().max(1.0) as u32;
        let options = [gap.saturating_sub(1).max(1), gap, gap + 1];
        let weights: Vec<f64> = options
            .iter()
            .enumerate()
            .map(|(k, &g)| {
                let weekday = self.calendar.weekday[((day + g).min(self.calendar.days - 1)) as usize];
                let closeness = if k == 1 { 1.0 } else { 0.6 };
                closeness * h.weekday_liking[weekday as usize] as f64
            })
            .collect();
        options[pick_index(rng, &weights)]
    }

    fn has_bought(&self, product: u32) -> bool {
        self.bought[product as usize / 64] & (1u64 << (product % 64)) != 0
    }

    fn mark_bought(&mut self, product: u32) {
        self.bought[product as usize / 64] |= 1u64 << (product % 64);
    }
}

fn push_unique(basket: &mut Vec<u32>, product: u32) {
    if !basket.contains(&product) {
        basket.push(product);
    }
}

fn poisson(mean: f64, rng: &mut ChaCha8Rng) -> u32 {
    if mean <= 0.0 {
        return 0;
    }
    Poisson::new(mean).unwrap().sample(rng) as u32
}
