//! Exact amounts of money: whole nano-USD (10^-9 USD) in a `u64`.
//!
//! Floats never hold money here. Config values arrive as TOML numbers (f64 or
//! integers) or strings and are parsed exactly into [`Usd`]; arithmetic is
//! integer; [`Usd::to_f64_usd`] exists only for metrics. A `u64` of nano-USD
//! holds about 18.4 billion USD, and [`Money`] (the `google.type.Money` shape)
//! holds any of them.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

/// Nano-USD in one USD.
pub const NANOS_PER_USD: u64 = 1_000_000_000;

/// The largest amount, in whole USD, that [`Usd::parse`] and deserialization
/// accept: 9 million USD.
///
/// 9 × 10^15 nano-USD is below 2^53 (≈ 9.007 × 10^15), so every amount read
/// from config, and any counter bounded by one, stays exact as a Lua double
/// inside Redis scripts.
pub const MAX_USD: u64 = 9_000_000;

/// Decimal places of a nano-USD amount.
const MAX_DECIMALS: usize = 9;

/// An amount of US dollars, stored as whole nano-USD (10^-9 USD).
///
/// Displays as an exact decimal without a currency sign, trailing zeros trimmed
/// to at least two decimals (`0.00000015`, `10.00`); serializes as that string
/// and deserializes from a number or a string (see [`Usd::parse`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Usd(u64);

/// Why text or a number is not a valid [`Usd`] amount.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum UsdError {
    /// A minus sign or a negative number.
    #[error("must not be negative")]
    Negative,
    /// Not a plain decimal number.
    #[error(
        "is not a plain decimal number like \"2.50\" (digits with an optional point; \
         no sign, exponent, separators or spaces)"
    )]
    NotANumber,
    /// More than nine digits after the point.
    #[error("has more than 9 decimal places (the smallest unit is 0.000000001 USD)")]
    TooManyDecimals,
    /// Above [`MAX_USD`].
    #[error("exceeds the maximum of {MAX_USD} USD")]
    TooLarge,
    /// A NaN or an infinity.
    #[error("must be a finite number, not NaN or infinity")]
    NotFinite,
}

impl Usd {
    /// Zero dollars.
    pub const ZERO: Usd = Usd(0);

    /// The largest amount parsing accepts: [`MAX_USD`] dollars.
    pub const MAX_PARSED: Usd = Usd(MAX_USD * NANOS_PER_USD);

    /// The amount of `nanos` nano-USD.
    pub const fn from_nanos(nanos: u64) -> Usd {
        Usd(nanos)
    }

    /// The amount in nano-USD.
    pub const fn nanos(self) -> u64 {
        self.0
    }

    /// The sum, or `None` if it overflows `u64` nano-USD.
    pub const fn checked_add(self, other: Usd) -> Option<Usd> {
        match self.0.checked_add(other.0) {
            Some(sum) => Some(Usd(sum)),
            None => None,
        }
    }

    /// The sum, clamped at `u64::MAX` nano-USD.
    pub const fn saturating_add(self, other: Usd) -> Usd {
        Usd(self.0.saturating_add(other.0))
    }

    /// The amount in USD as an `f64`, for metrics only: a double has about 16
    /// significant digits, so large amounts lose their last nano-USD.
    pub fn to_f64_usd(self) -> f64 {
        // Dollars and fraction apart: each converts exactly, and only the
        // final sum rounds.
        (self.0 / NANOS_PER_USD) as f64 + (self.0 % NANOS_PER_USD) as f64 / NANOS_PER_USD as f64
    }

    /// Parses a decimal USD amount exactly: digits, optionally a point and one
    /// to nine more digits (`"0.15"`, `"2"`, `"0.000000001"`), at most
    /// [`MAX_USD`]. No sign, exponent, spaces or digit separators.
    pub fn parse(text: &str) -> Result<Usd, UsdError> {
        let unsigned = text.strip_prefix(['-', '+']).unwrap_or(text);
        if ["nan", "inf", "infinity"]
            .iter()
            .any(|word| unsigned.eq_ignore_ascii_case(word))
        {
            return Err(UsdError::NotFinite);
        }
        if text.starts_with('-') {
            // A negative number is reported as such; "-abc" is just not a number.
            return Err(match parse_unsigned(unsigned) {
                Err(UsdError::NotANumber) => UsdError::NotANumber,
                _ => UsdError::Negative,
            });
        }
        parse_unsigned(text)
    }

    /// Converts a float of USD to the decimal it was written as, exactly.
    ///
    /// Rust's `Display` for `f64` prints the shortest decimal that reads back
    /// as the same float, without exponent notation (`1e-7` prints as
    /// `0.0000001`), so `0.15` written in TOML becomes exactly 150 000 000
    /// nano-USD rather than the binary float's 0.1499999999999999944…. That
    /// decimal is then parsed by [`Usd::parse`]: one with more than nine
    /// decimals is rejected, never rounded (and were `Display` ever to print
    /// an exponent, the parse would fail rather than misread it).
    pub fn from_f64_usd(value: f64) -> Result<Usd, UsdError> {
        if !value.is_finite() {
            return Err(UsdError::NotFinite);
        }
        if value < 0.0 {
            return Err(UsdError::Negative);
        }
        if value == 0.0 {
            // Also -0.0, which would print as "-0".
            return Ok(Usd::ZERO);
        }
        // Checked first so that a huge float is not printed in full.
        if value > MAX_USD as f64 {
            return Err(UsdError::TooLarge);
        }
        Usd::parse(&value.to_string())
    }

    /// The amount of `usd` whole dollars, at most [`MAX_USD`].
    pub fn from_whole_usd(usd: u64) -> Result<Usd, UsdError> {
        if usd > MAX_USD {
            return Err(UsdError::TooLarge);
        }
        Ok(Usd(usd * NANOS_PER_USD))
    }
}

/// Parses `digits[.digits]` with at most nine decimals, at most [`MAX_USD`].
fn parse_unsigned(text: &str) -> Result<Usd, UsdError> {
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    let all_digits = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    if !all_digits(whole) || !fraction.is_none_or(all_digits) {
        return Err(UsdError::NotANumber);
    }
    let fraction = fraction.unwrap_or("");
    if fraction.len() > MAX_DECIMALS {
        return Err(UsdError::TooManyDecimals);
    }
    let mut dollars: u64 = 0;
    for digit in whole.bytes().map(|b| u64::from(b - b'0')) {
        dollars = dollars
            .checked_mul(10)
            .and_then(|d| d.checked_add(digit))
            .filter(|&d| d <= MAX_USD)
            .ok_or(UsdError::TooLarge)?;
    }
    let mut nanos: u64 = 0;
    for digit in fraction.bytes().map(|b| u64::from(b - b'0')) {
        nanos = nanos * 10 + digit; // At most nine digits: below 10^9.
    }
    for _ in fraction.len()..MAX_DECIMALS {
        nanos *= 10;
    }
    // dollars <= MAX_USD, so this cannot overflow.
    let amount = dollars * NANOS_PER_USD + nanos;
    if amount > Usd::MAX_PARSED.0 {
        return Err(UsdError::TooLarge);
    }
    Ok(Usd(amount))
}

impl FromStr for Usd {
    type Err = UsdError;

    fn from_str(text: &str) -> Result<Usd, UsdError> {
        Usd::parse(text)
    }
}

impl fmt::Display for Usd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let dollars = self.0 / NANOS_PER_USD;
        let mut fraction = self.0 % NANOS_PER_USD;
        let mut width = MAX_DECIMALS;
        while width > 2 && fraction.is_multiple_of(10) {
            fraction /= 10;
            width -= 1;
        }
        write!(f, "{dollars}.{fraction:0width$}")
    }
}

impl Serialize for Usd {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Usd {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Usd, D::Error> {
        deserializer.deserialize_any(UsdVisitor)
    }
}

/// Reads a USD amount from a number or a string.
struct UsdVisitor;

/// The serde error for `shown`, stating why it is not an amount.
fn invalid<E: de::Error>(shown: impl fmt::Display, error: UsdError) -> E {
    E::custom(format_args!("invalid USD amount {shown}: {error}"))
}

impl Visitor<'_> for UsdVisitor {
    type Value = Usd;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a USD amount: a number such as 0.15 or a decimal string such as \"0.15\"")
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Usd, E> {
        Usd::from_whole_usd(value).map_err(|e| invalid(value, e))
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<Usd, E> {
        match u64::try_from(value) {
            Ok(value) => self.visit_u64(value),
            Err(_) => Err(invalid(value, UsdError::Negative)),
        }
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<Usd, E> {
        Usd::from_f64_usd(value).map_err(|e| invalid(value, e))
    }

    fn visit_str<E: de::Error>(self, value: &str) -> Result<Usd, E> {
        Usd::parse(value).map_err(|e| invalid(format_args!("{value:?}"), e))
    }
}

/// An amount in the shape of `google.type.Money` (currency USD): whole
/// `units` and `nanos` of a unit, with `nanos` in ±999 999 999 and of the
/// same sign as `units`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Money {
    /// Whole dollars.
    pub units: i64,
    /// Nano-dollars, `0..=999_999_999` for the non-negative amounts [`Usd`] holds.
    pub nanos: i32,
}

impl From<Usd> for Money {
    fn from(amount: Usd) -> Money {
        // u64::MAX / 10^9 is about 1.8 × 10^10, far inside i64, and the
        // remainder is below 10^9, inside i32: neither cast can wrap.
        Money {
            units: (amount.0 / NANOS_PER_USD) as i64,
            nanos: (amount.0 % NANOS_PER_USD) as i32,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    #[test]
    fn parses_decimals_exactly() {
        assert_eq!(usd("0.3").nanos(), 300_000_000);
        assert_eq!(usd("0.1").saturating_add(usd("0.2")), usd("0.3"));
        assert_eq!(usd("2.50").nanos(), 2_500_000_000);
        assert_eq!(usd("0.075").nanos(), 75_000_000);
        assert_eq!(usd("0.000000001").nanos(), 1);
        assert_eq!(usd("7").nanos(), 7_000_000_000);
        assert_eq!(usd("007.10").nanos(), 7_100_000_000);
        assert_eq!(usd("0").nanos(), 0);
        assert_eq!(usd("9000000"), Usd::MAX_PARSED);
        assert_eq!(usd("9000000.000000000"), Usd::MAX_PARSED);
        assert_eq!("1.5".parse::<Usd>(), Ok(Usd::from_nanos(1_500_000_000)));
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        let cases = [
            ("-1", UsdError::Negative),
            ("-0.5", UsdError::Negative),
            ("-abc", UsdError::NotANumber),
            ("", UsdError::NotANumber),
            ("abc", UsdError::NotANumber),
            ("+1", UsdError::NotANumber),
            ("1e-7", UsdError::NotANumber),
            (" 1", UsdError::NotANumber),
            ("1_000", UsdError::NotANumber),
            ("1,5", UsdError::NotANumber),
            (".5", UsdError::NotANumber),
            ("5.", UsdError::NotANumber),
            ("1.2.3", UsdError::NotANumber),
            ("0.0000000001", UsdError::TooManyDecimals),
            ("9000000.000000001", UsdError::TooLarge),
            ("9000001", UsdError::TooLarge),
            ("99999999999999999999999", UsdError::TooLarge),
            ("18446744074", UsdError::TooLarge), // fits u64, but not as nano-USD
            ("NaN", UsdError::NotFinite),
            ("-inf", UsdError::NotFinite),
            ("Infinity", UsdError::NotFinite),
        ];
        for (text, error) in cases {
            assert_eq!(Usd::parse(text), Err(error), "{text:?}");
        }
    }

    #[test]
    fn floats_become_the_decimal_they_were_written_as() {
        assert_eq!(Usd::from_f64_usd(0.15), Ok(usd("0.15")));
        assert_eq!(Usd::from_f64_usd(0.1 + 0.2), Err(UsdError::TooManyDecimals));
        assert_eq!(Usd::from_f64_usd(1e-7), Ok(Usd::from_nanos(100)));
        assert_eq!(Usd::from_f64_usd(1e-9), Ok(Usd::from_nanos(1)));
        assert_eq!(Usd::from_f64_usd(1e-10), Err(UsdError::TooManyDecimals));
        assert_eq!(Usd::from_f64_usd(2.5), Ok(usd("2.5")));
        assert_eq!(Usd::from_f64_usd(9e6), Ok(Usd::MAX_PARSED));
        assert_eq!(Usd::from_f64_usd(-0.0), Ok(Usd::ZERO));
        assert_eq!(Usd::from_f64_usd(-0.5), Err(UsdError::Negative));
        assert_eq!(Usd::from_f64_usd(1e300), Err(UsdError::TooLarge));
        assert_eq!(Usd::from_f64_usd(f64::NAN), Err(UsdError::NotFinite));
        assert_eq!(Usd::from_f64_usd(f64::INFINITY), Err(UsdError::NotFinite));
    }

    #[test]
    fn displays_exact_decimals() {
        assert_eq!(Usd::from_nanos(150).to_string(), "0.00000015");
        assert_eq!(Usd::from_nanos(10 * NANOS_PER_USD).to_string(), "10.00");
        assert_eq!(Usd::ZERO.to_string(), "0.00");
        assert_eq!(usd("0.5").to_string(), "0.50");
        assert_eq!(usd("1.075").to_string(), "1.075");
        assert_eq!(Usd::from_nanos(1).to_string(), "0.000000001");
        assert_eq!(
            Usd::from_nanos(u64::MAX).to_string(),
            "18446744073.709551615"
        );
        for nanos in [
            0,
            1,
            150,
            75_000_000,
            2_500_000_000,
            Usd::MAX_PARSED.nanos(),
        ] {
            let amount = Usd::from_nanos(nanos);
            assert_eq!(Usd::parse(&amount.to_string()), Ok(amount));
        }
    }

    #[test]
    fn adds_without_wrapping() {
        let top = Usd::from_nanos(u64::MAX);
        assert_eq!(top.checked_add(Usd::from_nanos(1)), None);
        assert_eq!(top.saturating_add(Usd::from_nanos(1)), top);
        assert_eq!(usd("1").checked_add(usd("0.5")), Some(usd("1.5")));
    }

    #[test]
    fn converts_to_f64_for_metrics() {
        assert_eq!(usd("2.5").to_f64_usd(), 2.5);
        assert_eq!(Usd::from_nanos(150).to_f64_usd(), 150e-9);
    }

    #[test]
    fn serde_reads_numbers_and_strings_and_writes_strings() {
        let read = |json: &str| serde_json::from_str::<Usd>(json);
        assert_eq!(read("0.15").unwrap(), usd("0.15"));
        assert_eq!(read("\"0.15\"").unwrap(), usd("0.15"));
        assert_eq!(read("2").unwrap(), usd("2"));
        assert_eq!(read("1e-7").unwrap(), Usd::from_nanos(100));
        assert_eq!(serde_json::to_string(&usd("2.5")).unwrap(), "\"2.50\"");
        let amount = Usd::from_nanos(123_456_789_012);
        let json = serde_json::to_string(&amount).unwrap();
        assert_eq!(read(&json).unwrap(), amount);

        let error = |json: &str| read(json).unwrap_err().to_string();
        assert!(error("-1").contains("invalid USD amount -1: must not be negative"));
        assert!(error("-0.5").contains("must not be negative"));
        assert!(error("\"abc\"").contains("\"abc\": is not a plain decimal"));
        assert!(error("0.0000000001").contains("more than 9 decimal places"));
        assert!(error("1e7").contains("exceeds the maximum of 9000000 USD"));
        assert!(error("10000000").contains("exceeds the maximum"));
        assert!(error("true").contains("a USD amount"));
    }

    #[test]
    fn money_splits_units_and_nanos() {
        assert_eq!(
            Money::from(usd("1.75")),
            Money {
                units: 1,
                nanos: 750_000_000
            }
        );
        assert_eq!(
            Money::from(Usd::from_nanos(150)),
            Money {
                units: 0,
                nanos: 150
            }
        );
        assert_eq!(Money::from(Usd::ZERO), Money::default());
        assert_eq!(
            Money::from(Usd::from_nanos(u64::MAX)),
            Money {
                units: 18_446_744_073,
                nanos: 709_551_615
            }
        );
    }
}
