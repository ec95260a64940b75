//! Writing simulated households in the public Instacart CSV layout, in parallel, deterministically.
//!
//! Households are simulated in fixed-size chunks: each chunk is simulated and formatted in
//! parallel (rayon; every household has its own seeded random stream), then written in
//! household order. Order ids are numbered in that order too, so the bytes depend only on
//! the seed and the inputs, never on the number of threads.
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

use crate::errors::CoreResult;
use crate::synth::household::Household;
use crate::synth::shelf::{Calendar, Shelf};
use crate::synth::shopping::{shop, History, REORDERED};

const CHUNK_HOUSEHOLDS: usize = 2048;
const WRITE_BUFFER_BYTES: usize = 8 << 20;

pub const ORDERS_HEADER: &str =
    "order_id,user_id,eval_set,order_number,order_dow,order_hour_of_day,days_since_prior_order\n";
pub const ORDER_PRODUCTS_HEADER: &str = "order_id,product_id,add_to_cart_order,reordered\n";
pub const HOUSEHOLDS_HEADER: &str = "user_id,household_size,adults,children,age_band,budget_tier,diet,allergens,\
organic_preference,pets,taste_segment,days_between_orders,churned,days_since_last_order\n";

#[derive(Debug, Default, Clone, Copy)]
pub struct Counts {
    pub customers: u64,
    pub orders: u64,
    pub prior_lines: u64,
    pub train_lines: u64,
}

pub struct Run<'a> {
    pub shelf: &'a Shelf,
    pub calendar: &'a Calendar,
    pub households: u32,
    pub seed: u64,
    pub allergen_names: &'a [String],
}

/// The four files of one chunk of households, formatted.
#[derive(Default)]
struct ChunkText {
    orders: Vec<u8>,
    prior: Vec<u8>,
    train: Vec<u8>,
    households: Vec<u8>,
    counts: Counts,
}

pub fn write_households(run: &Run<'_>, out_dir: &Path) -> CoreResult<Counts> {
    let open = |name: &str, header: &str| -> CoreResult<BufWriter<File>> {
        let mut writer = BufWriter::with_capacity(WRITE_BUFFER_BYTES, File::create(out_dir.join(name))?);
        writer.write_all(header.as_bytes())?;
        Ok(writer)
    };
    let mut orders = open("orders.csv", ORDERS_HEADER)?;
    let mut prior = open("order_products__prior.csv", ORDER_PRODUCTS_HEADER)?;
    let mut train = open("order_products__train.csv", ORDER_PRODUCTS_HEADER)?;
    let mut households = open("households.csv", HOUSEHOLDS_HEADER)?;
    let allergen_names: Vec<&str> = run.allergen_names.iter().map(String::as_str).collect();

    let mut totals = Counts::default();
    let mut next_order_id = 1u64;
    let n = run.households as usize;
    for start in (0..n).step_by(CHUNK_HOUSEHOLDS) {
        let end = (start + CHUNK_HOUSEHOLDS).min(n);
        let simulated: Vec<(Household, History)> = (start..end)
            .into_par_iter()
            .map(|index| {
                let mut rng = ChaCha8Rng::seed_from_u64(run.seed);
                rng.set_stream(index as u64);
                let household =
                    Household::draw(&mut rng, index as u32, run.calendar.days, run.shelf.segments, run.seed);
                let history = shop(&household, run.shelf, run.calendar, &mut rng);
                (household, history)
            })
            .collect();
        // Order ids follow household order, so they need a running offset per household.
        let mut first_ids = Vec::with_capacity(simulated.len());
        for (_, history) in &simulated {
            first_ids.push(next_order_id);
            next_order_id += history.orders.len() as u64;
        }
        let texts: Vec<ChunkText> = simulated
            .par_iter()
            .zip(first_ids.par_iter())
            .enumerate()
            .map(|(k, ((household, history), &first_id))| {
                format_household(
                    (start + k) as u64 + 1,
                    first_id,
                    household,
                    history,
                    &run.calendar.weekday,
                    &allergen_names,
                )
            })
            .collect();
        for text in texts {
            orders.write_all(&text.orders)?;
            prior.write_all(&text.prior)?;
            train.write_all(&text.train)?;
            households.write_all(&text.households)?;
            totals.customers += text.counts.customers;
            totals.orders += text.counts.orders;
            totals.prior_lines += text.counts.prior_lines;
            totals.train_lines += text.counts.train_lines;
        }
    }
    for writer in [&mut orders, &mut prior, &mut train, &mut households] {
        writer.flush()?;
    }
    Ok(totals)
}

fn format_household(
    user_id: u64,
    first_order_id: u64,
    household: &Household,
    history: &History,
    weekdays: &[u8],
    allergen_names: &[&str],
) -> ChunkText {
    let days = weekdays.len() as u32;
    let mut text = ChunkText::default();
    let last = history.orders.len().saturating_sub(1);
    let mut line = 0usize;
    for (k, order) in history.orders.iter().enumerate() {
        let order_id = first_order_id + k as u64;
        // The public files: hour zero-padded ("08"), days since prior as a float ("7.0").
        let o = &mut text.orders;
        push_u64(o, order_id);
        o.push(b',');
        push_u64(o, user_id);
        o.extend_from_slice(if k == last { b",train," } else { b",prior," });
        push_u64(o, k as u64 + 1);
        o.push(b',');
        push_u64(o, weekdays[order.day as usize] as u64);
        o.push(b',');
        if order.hour < 10 {
            o.push(b'0');
        }
        push_u64(o, order.hour as u64);
        o.push(b',');
        if k > 0 {
            push_u64(o, (order.day - history.orders[k - 1].day) as u64);
            o.extend_from_slice(b".0");
        }
        o.push(b'\n');

        let (lines, count) = if k == last {
            (&mut text.train, &mut text.counts.train_lines)
        } else {
            (&mut text.prior, &mut text.counts.prior_lines)
        };
        for position in 0..order.lines as usize {
            let entry = history.lines[line + position];
            push_u64(lines, order_id);
            lines.push(b',');
            push_u64(lines, (entry & !REORDERED) as u64 + 1);
            lines.push(b',');
            push_u64(lines, position as u64 + 1);
            lines.extend_from_slice(if entry & REORDERED != 0 { b",1\n" } else { b",0\n" });
        }
        *count += order.lines as u64;
        line += order.lines as usize;
    }
    text.counts.orders = history.orders.len() as u64;
    text.counts.customers = 1;

    let h = household;
    let last_day = history.orders.last().map(|o| o.day).unwrap_or(0);
    let pets = match (h.dog, h.cat) {
        (true, true) => "dog;cat",
        (true, false) => "dog",
        (false, true) => "cat",
        (false, false) => "",
    };
    let row = format!(
        "{user_id},{},{},{},{},{},{},{},{},{},{},{:.1},{},{}\n",
        h.size,
        h.adults,
        h.children,
        h.age_band,
        h.budget.label(),
        h.diet.label(),
        h.allergen_list(allergen_names),
        u8::from(h.organic),
        pets,
        h.segment,
        h.trip_interval,
        u8::from(h.last_day < days),
        days - 1 - last_day,
    );
    text.households.extend_from_slice(row.as_bytes());
    text
}

/// Decimal digits of `value` appended to `out` (the hot loop writes ~130M numbers at scale).
fn push_u64(out: &mut Vec<u8>, mut value: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (value % 10) as u8;
        value /= 10;
        if value == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

#[cfg(test)]
mod tests {
    use super::push_u64;

    #[test]
    fn push_u64_writes_decimal() {
        for value in [0u64, 7, 10, 99, 12345, u64::MAX] {
            let mut out = Vec::new();
            push_u64(&mut out, value);
            assert_eq!(out, value.to_string().into_bytes());
        }
    }
}
