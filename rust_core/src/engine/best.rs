//! The best k of many scored candidates, best first: what every neighbour table keeps per row.
use std::cmp::Ordering;

/// Bounded selection of the best k (score, index) pairs: holds at most 2k, pruned back to k
/// with a linear-time partition when full, after which only better pairs get in. The order
/// (`best_first`: score, then the lower index) is total for distinct indices, so the result does
/// not depend on the order pairs are offered in.
pub struct BestK {
    candidates: Vec<(f32, u32)>,
    /// The k-th best after the last pruning.
    worst_kept: Option<(f32, u32)>,
    /// Its score: anything scoring less cannot get in (the cheap test on the hot path).
    floor: f32,
}

impl Default for BestK {
    fn default() -> Self {
        BestK { candidates: Vec::new(), worst_kept: None, floor: f32::NEG_INFINITY }
    }
}

impl BestK {
    /// False for scores that cannot get in, NaN and -inf (a dropped pair) included.
    #[inline(always)]
    pub fn admits(&self, score: f32) -> bool {
        score >= self.floor && score > f32::NEG_INFINITY
    }

    pub fn offer(&mut self, candidate: (f32, u32), k: usize) {
        if k == 0 || self.worst_kept.is_some_and(|worst| best_first(&candidate, &worst) != Ordering::Less) {
            return; // nothing is kept, or a tie with the worst kept on a higher index
        }
        self.candidates.push(candidate);
        if self.candidates.len() == 2 * k {
            self.candidates.select_nth_unstable_by(k - 1, best_first);
            self.candidates.truncate(k);
            self.worst_kept = Some(self.candidates[k - 1]);
            self.floor = self.candidates[k - 1].0;
        }
    }

    /// Writes the best first into the row (the rest of it keeps its padding) and resets.
    pub fn write_into(&mut self, item_row: &mut [i32], score_row: &mut [f32]) {
        self.candidates.sort_unstable_by(best_first);
        for (slot, &(s, j)) in self.candidates.iter().take(item_row.len()).enumerate() {
            item_row[slot] = j as i32;
            score_row[slot] = s;
        }
        self.reset();
    }

    /// The `k` best, best first, as (index, score) in a row of their own (the candidates are
    /// scratch kept for the next use), and resets.
    pub fn take(&mut self, k: usize) -> Vec<(u32, f32)> {
        self.candidates.sort_unstable_by(best_first);
        let row = self.candidates.iter().take(k).map(|&(s, j)| (j, s)).collect();
        self.reset();
        row
    }

    fn reset(&mut self) {
        self.candidates.clear();
        self.worst_kept = None;
        self.floor = f32::NEG_INFINITY;
    }
}

/// Best first by score, ties to the lower index.
pub fn best_first(a: &(f32, u32), b: &(f32, u32)) -> Ordering {
    b.0.total_cmp(&a.0).then(a.1.cmp(&b.1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_selection_keeps_the_best_whatever_the_order_offered() {
        let pairs: Vec<(f32, u32)> =
            (0..60u32).map(|i| ([0.0f32, 0.5, 0.5, 1.0, 0.25, 2.0, 0.5][(i * 7 % 11 % 7) as usize], i)).collect();
        for k in [0, 1, 3, 8, 100] {
            let mut want: Vec<(f32, u32)> = pairs.iter().copied().filter(|p| p.0 > 0.0).collect();
            want.sort_by(best_first);
            want.truncate(k);
            let want: Vec<(u32, f32)> = want.into_iter().map(|(s, i)| (i, s)).collect();
            let mut best = BestK::default();
            for order in [pairs.clone(), pairs.iter().rev().copied().collect()] {
                // As the kernels offer them: positive scores the selection admits.
                for &p in &order {
                    if p.0 > 0.0 && best.admits(p.0) {
                        best.offer(p, k);
                    }
                }
                assert_eq!(best.take(k), want, "k = {k}");
            }
        }
    }
}
