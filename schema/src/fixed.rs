//! Fixed-point numbers: prices, quantities and money are integers with a fixed scale.
//!
//! Floating point cannot represent 0.1 exactly, and a position folded from thousands of
//! fills must come out to the same last digit every time it is recomputed (the consistency
//! check does exactly that). So every amount is an `i64` count of a fixed unit:
//!
//! | type | unit | scale | largest value |
//! |---|---|---|---|
//! | [`Price`] | 10^-8 of the quote currency | [`PRICE_SCALE`] | ~92 billion |
//! | [`Quantity`] | 10^-8 of one unit of the instrument | [`QTY_SCALE`] | ~92 billion units |
//! | [`Money`] | 10^-6 of the currency (a micro-unit) | [`MONEY_SCALE`] | ~9.2 trillion |
//!
//! Eight decimals cover crypto ticks and fractional shares; money has six, enough for
//! sub-cent fees while leaving room for fund-sized balances. The notional of a fill,
//! `price * quantity`, is computed in `i128` and rounded half away from zero to money
//! units; an amount that does not fit in `i64` is an error, never a wrap.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Price units per currency unit (8 decimals).
pub const PRICE_SCALE: i64 = 100_000_000;
/// Quantity units per instrument unit (8 decimals).
pub const QTY_SCALE: i64 = 100_000_000;
/// Money units per currency unit (6 decimals).
pub const MONEY_SCALE: i64 = 1_000_000;

macro_rules! fixed {
    ($name:ident, $scale:expr, $decimals:expr, $doc:literal) => {
        #[doc = $doc]
        #[derive(
            Clone,
            Copy,
            Debug,
            Default,
            PartialEq,
            Eq,
            PartialOrd,
            Ord,
            Hash,
            Serialize,
            Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// Zero.
            pub const ZERO: $name = $name(0);
            /// Units of this type per whole unit.
            pub const SCALE: i64 = $scale;

            /// A whole number of units (`from_units(3)` is 3.0).
            pub fn from_units(units: i64) -> Option<$name> {
                units.checked_mul($scale).map($name)
            }

            /// The raw scaled integer.
            pub fn raw(self) -> i64 {
                self.0
            }

            /// Checked addition.
            pub fn checked_add(self, other: $name) -> Option<$name> {
                self.0.checked_add(other.0).map($name)
            }

            /// Checked subtraction.
            pub fn checked_sub(self, other: $name) -> Option<$name> {
                self.0.checked_sub(other.0).map($name)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                format_fixed(f, self.0, $scale, $decimals)
            }
        }

        impl FromStr for $name {
            type Err = ParseFixedError;
            fn from_str(s: &str) -> Result<$name, ParseFixedError> {
                parse_fixed(s, $decimals).map($name)
            }
        }
    };
}

fixed!(
    Price,
    PRICE_SCALE,
    8,
    "A price in units of 10^-8 of the quote currency."
);
fixed!(
    Quantity,
    QTY_SCALE,
    8,
    "A quantity in units of 10^-8 of the instrument."
);
fixed!(
    Money,
    MONEY_SCALE,
    6,
    "An amount of money in micro-units (10^-6) of its currency."
);

/// A decimal string that is not a valid fixed-point number of the expected precision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseFixedError {
    input: String,
    reason: &'static str,
}

impl fmt::Display for ParseFixedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "invalid decimal number {:?}: {}",
            self.input, self.reason
        )
    }
}

impl std::error::Error for ParseFixedError {}

fn format_fixed(f: &mut fmt::Formatter<'_>, raw: i64, scale: i64, decimals: usize) -> fmt::Result {
    let sign = if raw < 0 { "-" } else { "" };
    let abs = raw.unsigned_abs();
    let scale = scale.unsigned_abs();
    let int = abs / scale;
    let frac = abs % scale;
    if frac == 0 {
        return write!(f, "{sign}{int}");
    }
    let digits = format!("{frac:0decimals$}");
    write!(f, "{sign}{int}.{}", digits.trim_end_matches('0'))
}

fn parse_fixed(s: &str, decimals: usize) -> Result<i64, ParseFixedError> {
    let err = |reason| ParseFixedError {
        input: s.to_owned(),
        reason,
    };
    let (neg, body) = match s.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, s),
    };
    let (int_part, frac_part) = match body.split_once('.') {
        Some((i, f)) => (i, f),
        None => (body, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() {
        return Err(err("no digits"));
    }
    if !int_part.bytes().all(|b| b.is_ascii_digit())
        || !frac_part.bytes().all(|b| b.is_ascii_digit())
    {
        return Err(err("only digits, one '.' and a leading '-' are allowed"));
    }
    if frac_part.len() > decimals {
        return Err(err("more decimal places than the type holds"));
    }
    let mut value: i128 = 0;
    for b in int_part.bytes().chain(frac_part.bytes()) {
        value = value * 10 + i128::from(b - b'0');
        if value > i128::from(i64::MAX) + 1 {
            return Err(err("out of range"));
        }
    }
    for _ in frac_part.len()..decimals {
        value *= 10;
    }
    let value = if neg { -value } else { value };
    i64::try_from(value).map_err(|_| err("out of range"))
}

/// Divides `num` by `den` (den > 0), rounding half away from zero.
pub(crate) fn div_round(num: i128, den: i128) -> i128 {
    let q = num / den;
    let r = num % den;
    if 2 * r.abs() >= den {
        q + num.signum()
    } else {
        q
    }
}

/// The notional `price * quantity` in money units, rounded half away from zero.
/// `None` when it does not fit in an `i64`.
pub fn notional(price: Price, quantity: Quantity) -> Option<Money> {
    let den = i128::from(PRICE_SCALE) * i128::from(QTY_SCALE) / i128::from(MONEY_SCALE);
    let raw = div_round(i128::from(price.0) * i128::from(quantity.0), den);
    i64::try_from(raw).ok().map(Money)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_parse_round_trip() {
        let p: Price = "101.25".parse().unwrap();
        assert_eq!(p.0, 10_125_000_000);
        assert_eq!(p.to_string(), "101.25");
        assert_eq!("-0.5".parse::<Money>().unwrap(), Money(-500_000));
        assert_eq!(Money(-500_000).to_string(), "-0.5");
        assert_eq!(
            "7".parse::<Quantity>().unwrap(),
            Quantity::from_units(7).unwrap()
        );
    }

    #[test]
    fn parse_rejects_bad_input() {
        assert!("1.123456789".parse::<Price>().is_err());
        assert!("1.0000001".parse::<Money>().is_err());
        assert!("abc".parse::<Price>().is_err());
        assert!("".parse::<Price>().is_err());
        assert!("1e5".parse::<Price>().is_err());
        assert!("99999999999999999999".parse::<Price>().is_err());
    }

    #[test]
    fn notional_rounds_half_away_from_zero() {
        // 0.00000001 * 0.5 units = 0.000000005 -> 0 micro
        let p = Price(1);
        let q = Quantity(QTY_SCALE / 2);
        assert_eq!(notional(p, q), Some(Money(0)));
        // 100.5 * 3 = 301.5
        let p: Price = "100.5".parse().unwrap();
        let q = Quantity::from_units(3).unwrap();
        assert_eq!(notional(p, q), Some("301.5".parse().unwrap()));
        // 0.0000015 money -> rounds to 0.000002
        let p: Price = "0.0000015".parse().unwrap();
        assert_eq!(
            notional(p, Quantity::from_units(1).unwrap()),
            Some(Money(2))
        );
        assert_eq!(
            notional(p, Quantity::from_units(-1).unwrap()),
            Some(Money(-2))
        );
    }

    #[test]
    fn notional_overflow_is_none() {
        assert_eq!(notional(Price(i64::MAX), Quantity(i64::MAX)), None);
    }

    proptest::proptest! {
        #[test]
        fn parse_display_inverse(raw in proptest::num::i64::ANY) {
            let p = Price(raw);
            proptest::prop_assert_eq!(p.to_string().parse::<Price>().unwrap(), p);
        }
    }
}
