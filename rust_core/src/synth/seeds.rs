//! Stateless randomness: values that must be the same wherever they are asked for.
//!
//! A taste segment's appeal for a product, or a household's liking for a brand, is a pure
//! function of (seed, who, what): hashing instead of drawing from a stream keeps it identical
//! no matter which thread asks, in which order, or how often.

/// SplitMix64 finaliser: a fast, well-mixed 64-bit hash step.
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Hash of a seed, a purpose tag and two keys.
pub fn key(seed: u64, tag: u64, a: u64, b: u64) -> u64 {
    mix(mix(mix(seed ^ tag.rotate_left(32)) ^ a) ^ b.rotate_left(17))
}

/// Uniform in (0, 1) from a hash.
pub fn unit(h: u64) -> f64 {
    // 52 bits so that the half-step offset stays exactly representable below 1.
    ((h >> 12) as f64 + 0.5) * (1.0 / (1u64 << 52) as f64)
}

/// Standard normal from a hash (Box–Muller on two derived uniforms).
pub fn normal(h: u64) -> f64 {
    let u1 = unit(h);
    let u2 = unit(mix(h));
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

// Purpose tags, so that different uses of the same keys never correlate.
pub const TAG_PRODUCT_APPEAL: u64 = 1;
pub const TAG_AISLE_AFFINITY: u64 = 2;
pub const TAG_BRAND_LIKING: u64 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normal_has_unit_moments() {
        let n = 200_000u64;
        let xs: Vec<f64> = (0..n).map(|i| normal(key(7, TAG_PRODUCT_APPEAL, i, 3))).collect();
        let mean = xs.iter().sum::<f64>() / n as f64;
        let var = xs.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n as f64;
        assert!(mean.abs() < 0.01, "mean {mean}");
        assert!((var - 1.0).abs() < 0.02, "variance {var}");
    }

    #[test]
    fn unit_stays_inside_the_open_interval() {
        assert!(unit(0) > 0.0);
        assert!(unit(u64::MAX) < 1.0);
    }
}
