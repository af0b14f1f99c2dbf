//! Fixed-point numbers for everything that is signed or decides a winner.
//!
//! [`Score`] is a `u32` where 1.0 = 1_000_000_000 and the range is `[0, 1]`. [`Fraction`] has
//! the same scale and range and is used for protocol parameters (kappa, quorum) and stake
//! shares. Conversions from `f64` round to the nearest representable value and refuse NaN,
//! infinities and values outside `[0, 1]`; nothing in a signed payload is ever a float.

use crate::CoreError;
use parity_scale_codec::{Decode, Encode, Input};
use std::fmt;

/// The fixed-point scale: 1.0 is this many units.
pub const ONE: u32 = 1_000_000_000;

fn from_f64(v: f64) -> Result<u32, CoreError> {
    if !v.is_finite() || !(0.0..=1.0).contains(&v) {
        return Err(CoreError::ScoreOutOfRange(format!("{v}")));
    }
    Ok((v * ONE as f64).round() as u32)
}

fn fmt_fixed(v: u32, f: &mut fmt::Formatter<'_>) -> fmt::Result {
    write!(f, "{}.{:09}", v / ONE, v % ONE)
}

macro_rules! fixed_point {
    ($name:ident, $what:literal) => {
        #[doc = concat!("A ", $what, " in `[0, 1]` as fixed point: 1.0 = 1_000_000_000.")]
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Encode)]
        pub struct $name(u32);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(0);
            /// One (1_000_000_000 units).
            pub const ONE: $name = $name(ONE);

            /// From raw units; refuses values above 1.0.
            pub fn from_units(units: u32) -> Result<Self, CoreError> {
                if units > ONE {
                    return Err(CoreError::ScoreOutOfRange(units.to_string()));
                }
                Ok($name(units))
            }

            /// From raw units, clamped to 1.0.
            pub fn saturating_from_units(units: u64) -> Self {
                $name(units.min(ONE as u64) as u32)
            }

            /// From a float in `[0, 1]`, rounded to the nearest unit.
            pub fn from_f64(v: f64) -> Result<Self, CoreError> {
                from_f64(v).map($name)
            }

            /// The raw fixed-point units.
            pub fn units(self) -> u32 {
                self.0
            }

            /// As a float, for display and JSON views only.
            pub fn to_f64(self) -> f64 {
                self.0 as f64 / ONE as f64
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt_fixed(self.0, f)
            }
        }

        impl Decode for $name {
            fn decode<I: Input>(input: &mut I) -> Result<Self, parity_scale_codec::Error> {
                let v = u32::decode(input)?;
                if v > ONE {
                    return Err(concat!($what, " above 1.0").into());
                }
                Ok($name(v))
            }
        }
    };
}

fixed_point!(Score, "score");
fixed_point!(Fraction, "fraction");

impl Score {
    /// `self + other`, saturating at 1.0 (used for `incumbent + margin`).
    pub fn saturating_add(self, other: Score) -> Score {
        Score::saturating_from_units(self.0 as u64 + other.0 as u64)
    }
}

impl Fraction {
    /// `num / den` rounded down, or `None` when `den` is zero or `num > den`.
    pub fn ratio(num: u128, den: u128) -> Option<Fraction> {
        if den == 0 || num > den {
            return None;
        }
        Some(Fraction((num * ONE as u128 / den) as u32))
    }

    /// True when `num / den >= self`, computed exactly in integers.
    pub fn is_met_by(self, num: u128, den: u128) -> bool {
        // num/den >= f/ONE  <=>  num*ONE >= f*den  (den > 0); an empty denominator meets nothing.
        den > 0 && num.saturating_mul(ONE as u128) >= (self.0 as u128).saturating_mul(den)
    }

    /// `ceil(self * total)`: the smallest integer amount that is at least this share of `total`.
    pub fn ceil_share_of(self, total: u128) -> u128 {
        let p = (self.0 as u128) * total;
        p.div_ceil(ONE as u128)
    }
}

/// An exact share `num / den` of a total, for thresholds that must be decided without rounding
/// (the quorum: 2 of 3 equal stakes reach 2/3, which no 9-digit fixed point can say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Ratio {
    num: u32,
    den: u32,
}

impl Ratio {
    /// Two thirds.
    pub const TWO_THIRDS: Ratio = Ratio { num: 2, den: 3 };
    /// All of it.
    pub const ONE: Ratio = Ratio { num: 1, den: 1 };

    /// `num / den`; refuses a zero denominator, a zero numerator and shares above 1.
    pub fn new(num: u32, den: u32) -> Result<Ratio, CoreError> {
        if den == 0 || num == 0 || num > den {
            return Err(CoreError::ScoreOutOfRange(format!("{num}/{den}")));
        }
        Ok(Ratio { num, den })
    }

    /// From `"n/d"` or a decimal in `(0, 1]` (taken to 9 digits).
    pub fn parse(s: &str) -> Result<Ratio, CoreError> {
        let bad = || CoreError::ScoreOutOfRange(s.to_string());
        if let Some((n, d)) = s.split_once('/') {
            let n = n.trim().parse().map_err(|_| bad())?;
            let d = d.trim().parse().map_err(|_| bad())?;
            return Ratio::new(n, d);
        }
        let v: f64 = s.trim().parse().map_err(|_| bad())?;
        Ratio::new(from_f64(v)?, ONE)
    }

    /// The numerator.
    pub fn num(self) -> u32 {
        self.num
    }

    /// The denominator.
    pub fn den(self) -> u32 {
        self.den
    }

    /// True when `part / total >= num / den`, computed exactly; an empty total meets nothing.
    pub fn is_met_by(self, part: u128, total: u128) -> bool {
        total > 0 && part.saturating_mul(self.den as u128) >= total.saturating_mul(self.num as u128)
    }

    /// As a float, for display only.
    pub fn to_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }

    /// The least integer `x` with `x / total >= num / den`: `ceil(total * num / den)`.
    pub fn ceil_share_of(self, total: u128) -> u128 {
        total
            .saturating_mul(self.num as u128)
            .div_ceil(self.den as u128)
    }
}

impl fmt::Display for Ratio {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ratio_is_exact() {
        let q = Ratio::TWO_THIRDS;
        assert!(q.is_met_by(2, 3));
        assert!(q.is_met_by(2_000, 3_000));
        assert!(!q.is_met_by(1_999, 3_000));
        assert!(!q.is_met_by(1, 2));
        assert!(!q.is_met_by(0, 0));
        // stake totals near u64::MAX do not overflow
        let t = u64::MAX as u128 * 3;
        assert!(q.is_met_by(u64::MAX as u128 * 2, t));
        assert!(!q.is_met_by(u64::MAX as u128 * 2 - 1, t));
        assert_eq!(Ratio::parse("2/3").unwrap(), q);
        assert_eq!(
            Ratio::parse("0.5").unwrap().to_string(),
            "500000000/1000000000"
        );
        assert!(Ratio::parse("0").is_err());
        assert!(Ratio::parse("4/3").is_err());
        assert!(Ratio::parse("1/0").is_err());
        assert!(Ratio::parse("x").is_err());
        assert_eq!(q.ceil_share_of(3), 2);
        assert_eq!(q.ceil_share_of(4), 3);
        assert_eq!(q.ceil_share_of(0), 0);
        for t in 1..50u128 {
            let x = q.ceil_share_of(t);
            assert!(q.is_met_by(x, t) && !q.is_met_by(x - 1, t));
        }
    }

    #[test]
    fn float_conversion_rounds_and_refuses_bad_values() {
        assert_eq!(Score::from_f64(0.5).unwrap().units(), 500_000_000);
        assert_eq!(Score::from_f64(0.1234567894).unwrap().units(), 123_456_789);
        assert_eq!(Score::from_f64(0.1234567896).unwrap().units(), 123_456_790);
        assert!(Score::from_f64(f64::NAN).is_err());
        assert!(Score::from_f64(1.000001).is_err());
        assert!(Score::from_f64(-0.1).is_err());
        assert!(Score::from_units(ONE + 1).is_err());
    }

    #[test]
    fn display_has_nine_decimals() {
        assert_eq!(Score::from_units(5).unwrap().to_string(), "0.000000005");
        assert_eq!(Score::ONE.to_string(), "1.000000000");
    }

    #[test]
    fn decode_refuses_above_one() {
        let bytes = (ONE + 1).encode();
        assert!(Score::decode(&mut &bytes[..]).is_err());
        let ok = ONE.encode();
        assert_eq!(Score::decode(&mut &ok[..]).unwrap(), Score::ONE);
    }

    #[test]
    fn fraction_threshold_is_exact() {
        let two_thirds = Fraction::from_units(666_666_667).unwrap();
        assert!(!two_thirds.is_met_by(2, 3)); // 0.666666666.. < 0.666666667
        assert!(two_thirds.is_met_by(666_666_667, 1_000_000_000));
        let half = Fraction::from_units(500_000_000).unwrap();
        assert!(half.is_met_by(1, 2));
        assert!(!half.is_met_by(49, 100));
        assert!(!half.is_met_by(0, 0));
        assert_eq!(half.ceil_share_of(3), 2);
        assert_eq!(half.ceil_share_of(4), 2);
        assert_eq!(Fraction::ONE.ceil_share_of(7), 7);
    }
}
