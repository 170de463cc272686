//! Token prices and the cost of a call.
//!
//! A [`Price`] is three [`Usd`] amounts per **1 million tokens**: uncached
//! input, cached input and output. [`Price::cost`] turns a call's
//! [`TokenCount`] into nano-USD exactly, rounding up.
//!
//! # The built-in table
//!
//! [`builtin`] knows OpenAI's **list prices, standard tier, in USD per 1M
//! tokens**, keyed by the upstream model id. Batch, flex and priority tiers,
//! regional uplifts and negotiated discounts are not modelled; operators set
//! their own figures with `[llm.models.NAME.price]` (read as [`PriceConfig`]),
//! which replaces the built-in price. The figures were taken from:
//!
//! - `pydantic/genai-prices`, `prices/providers/openai.yml` at commit 47df840
//!   (2026-08-21; the file last changed in e6630683, 2026-08-05). Every row
//!   below matches it, except `gpt-4o-2024-05-13` (see there).
//! - `BerriAI/litellm`, `model_prices_and_context_window.json` at commit
//!   00035b69f416 (undated; it lists models from April 2026): gpt-4o,
//!   gpt-4o-mini, gpt-4.1, gpt-4.1-mini, gpt-4.1-nano and gpt-5 agree.
//! - OpenAI's model pages (developers.openai.com/api/docs/models, undated
//!   copies from 2026): gpt-4.1-nano, gpt-5-mini, gpt-5-nano and the
//!   text-embedding-3 models agree.
//!
//! [`TABLE_DATE`] is the date of the newest of these. Reasoning tokens are
//! part of the output count and billed at the output price.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::money::Usd;

/// The date of the newest source of the built-in price table.
pub const TABLE_DATE: &str = "2026-08-21";

/// The highest price per 1M tokens a [`PriceConfig`] accepts: 1 000 000 USD,
/// i.e. 1 USD per token, far above any real price.
pub const MAX_PRICE_PER_MTOK: Usd = Usd::from_nanos(1_000_000 * super::money::NANOS_PER_USD);

/// Tokens a price is quoted for.
const TOKENS_PER_QUOTE: u128 = 1_000_000;

/// What one model charges, in USD per 1M tokens of each kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Price {
    /// Prompt tokens not served from the provider's prompt cache.
    pub input: Usd,
    /// Prompt tokens served from the prompt cache.
    pub cached_input: Usd,
    /// Completion tokens, reasoning tokens included.
    pub output: Usd,
}

/// The tokens one call used, as the provider reports them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TokenCount {
    /// All prompt tokens, cached ones included.
    pub input: u64,
    /// The prompt tokens served from the cache: a part of `input`, not added to it.
    pub cached_input: u64,
    /// Completion tokens, reasoning tokens included.
    pub output: u64,
}

impl Price {
    /// A price of zero, for models nobody has priced.
    pub const FREE: Price = Price {
        input: Usd::ZERO,
        cached_input: Usd::ZERO,
        output: Usd::ZERO,
    };

    /// The cost of a call:
    /// `ceil(((input − cached)·input_price + cached·cached_price + output·output_price) / 10^6)`
    /// nano-USD, with prices in nano-USD per 1M tokens.
    ///
    /// `cached_input` is clamped to `input`. The products are taken in `u128`
    /// (a `u64` times a `u64` always fits) and the division rounds up, so a
    /// call never costs less than its exact price, and a 1-token call of a
    /// cheap model costs at least one nano-USD. A result above `u64::MAX`
    /// nano-USD saturates there.
    pub fn cost(&self, tokens: &TokenCount) -> Usd {
        let cached = tokens.cached_input.min(tokens.input);
        let uncached = tokens.input - cached;
        let term = |count: u64, price: Usd| u128::from(count) * u128::from(price.nanos());
        let total = term(uncached, self.input)
            .saturating_add(term(cached, self.cached_input))
            .saturating_add(term(tokens.output, self.output));
        Usd::from_nanos(u64::try_from(total.div_ceil(TOKENS_PER_QUOTE)).unwrap_or(u64::MAX))
    }
}

/// The built-in table: upstream model id, then nano-USD per 1M tokens of input,
/// cached input and output. Embedding models have no output and no cache
/// discount.
const TABLE: &[(&str, u64, u64, u64)] = &[
    ("gpt-4o", 2_500_000_000, 1_250_000_000, 10_000_000_000),
    // genai-prices files this snapshot under gpt-4o, but OpenAI lists it
    // separately at $5 / $15 with no cached-input rate (as copied by price
    // trackers, e.g. llmcloudhub.com "standard tier, as of 2026-05-08", and
    // several projects' price tables); falling back to gpt-4o would charge
    // half. Cached input is charged as input.
    (
        "gpt-4o-2024-05-13",
        5_000_000_000,
        5_000_000_000,
        15_000_000_000,
    ),
    ("gpt-4o-mini", 150_000_000, 75_000_000, 600_000_000),
    ("gpt-4.1", 2_000_000_000, 500_000_000, 8_000_000_000),
    ("gpt-4.1-mini", 400_000_000, 100_000_000, 1_600_000_000),
    ("gpt-4.1-nano", 100_000_000, 25_000_000, 400_000_000),
    // The price since 2025-06-10 (before: $10 / $2.50 / $40).
    ("o3", 2_000_000_000, 500_000_000, 8_000_000_000),
    ("o4-mini", 1_100_000_000, 275_000_000, 4_400_000_000),
    ("gpt-5", 1_250_000_000, 125_000_000, 10_000_000_000),
    ("gpt-5-mini", 250_000_000, 25_000_000, 2_000_000_000),
    ("gpt-5-nano", 50_000_000, 5_000_000, 400_000_000),
    ("text-embedding-3-small", 20_000_000, 20_000_000, 0),
    ("text-embedding-3-large", 130_000_000, 130_000_000, 0),
    // genai-prices (as above), also OpenRouter's and Vercel AI Gateway's pages.
    ("text-embedding-ada-002", 100_000_000, 100_000_000, 0),
];

/// The built-in list price of an upstream model id, or `None` if the table
/// does not know it.
///
/// An exact match wins; otherwise a dated snapshot id `<base>-YYYY-MM-DD`
/// A model's price: the configured one, else the built-in list price of its
/// upstream id; `None` when it has neither (it is then unpriced).
pub fn for_model(configured: Option<&PriceConfig>, upstream_model: &str) -> Option<Price> {
    configured
        .map(PriceConfig::price)
        .or_else(|| builtin(upstream_model))
}

/// (`gpt-4o-mini-2024-07-18`) takes the price of `<base>`.
pub fn builtin(upstream_model: &str) -> Option<Price> {
    lookup(upstream_model).or_else(|| snapshot_base(upstream_model).and_then(lookup))
}

fn lookup(model: &str) -> Option<Price> {
    TABLE
        .iter()
        .find(|(id, ..)| *id == model)
        .map(|&(_, input, cached_input, output)| Price {
            input: Usd::from_nanos(input),
            cached_input: Usd::from_nanos(cached_input),
            output: Usd::from_nanos(output),
        })
}

/// `base` of `base-YYYY-MM-DD` (digits only checked, not the calendar).
fn snapshot_base(model: &str) -> Option<&str> {
    let (base, date) = model.split_at_checked(model.len().checked_sub(11)?)?;
    let [b'-', y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2] = date.as_bytes() else {
        return None;
    };
    let digits = [y1, y2, y3, y4, m1, m2, d1, d2];
    (!base.is_empty() && digits.iter().all(|b| b.is_ascii_digit())).then_some(base)
}

/// A price as configured under `[llm.models.NAME.price]` (and, input only,
/// `[retrieval.embeddings.price]`): USD per 1M tokens, each a TOML number
/// (`0.15`) or string (`"0.15"`), parsed exactly (see [`Usd::parse`]).
///
/// Deserializing checks that no field exceeds [`MAX_PRICE_PER_MTOK`] and that
/// `cached_input` does not exceed `input`: the budget reservation prices the
/// whole prompt at `input`, which is an upper bound only if the cache never
/// costs more.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawPriceConfig")]
pub struct PriceConfig {
    /// Uncached prompt tokens.
    pub input: Usd,
    /// Cached prompt tokens; unset means the same as `input`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<Usd>,
    /// Completion tokens; unset means free (embedding models have none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<Usd>,
}

/// A [`PriceConfig`] that cannot be right.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PriceError {
    /// A field above [`MAX_PRICE_PER_MTOK`].
    #[error("{field} = {value} USD per 1M tokens is above the maximum of {MAX_PRICE_PER_MTOK}")]
    TooHigh {
        /// The field's config key.
        field: &'static str,
        /// Its value.
        value: Usd,
    },
    /// `cached_input` above `input`.
    #[error("cached_input = {cached_input} is above input = {input}; a cache hit never costs more")]
    CachedAboveInput {
        /// The configured `cached_input`.
        cached_input: Usd,
        /// The configured `input`.
        input: Usd,
    },
}

impl PriceConfig {
    /// A checked price config (the checks deserialization applies).
    pub fn new(
        input: Usd,
        cached_input: Option<Usd>,
        output: Option<Usd>,
    ) -> Result<PriceConfig, PriceError> {
        let fields = [
            ("input", Some(input)),
            ("cached_input", cached_input),
            ("output", output),
        ];
        for (field, value) in fields {
            if let Some(value) = value.filter(|&v| v > MAX_PRICE_PER_MTOK) {
                return Err(PriceError::TooHigh { field, value });
            }
        }
        if let Some(cached_input) = cached_input.filter(|&c| c > input) {
            return Err(PriceError::CachedAboveInput {
                cached_input,
                input,
            });
        }
        Ok(PriceConfig {
            input,
            cached_input,
            output,
        })
    }

    /// The price this config sets: `cached_input` defaults to `input`,
    /// `output` to zero.
    pub fn price(&self) -> Price {
        Price {
            input: self.input,
            cached_input: self.cached_input.unwrap_or(self.input),
            output: self.output.unwrap_or(Usd::ZERO),
        }
    }
}

/// The fields of a [`PriceConfig`] as written, before the checks.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPriceConfig {
    input: Usd,
    #[serde(default)]
    cached_input: Option<Usd>,
    #[serde(default)]
    output: Option<Usd>,
}

impl TryFrom<RawPriceConfig> for PriceConfig {
    type Error = PriceError;

    fn try_from(raw: RawPriceConfig) -> Result<PriceConfig, PriceError> {
        PriceConfig::new(raw.input, raw.cached_input, raw.output)
    }
}

impl fmt::Display for Price {
    /// `input/cached_input/output USD per 1M tokens`, for logs and errors.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{}/{} USD per 1M tokens (input/cached input/output)",
            self.input, self.cached_input, self.output
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn usd(text: &str) -> Usd {
        Usd::parse(text).unwrap()
    }

    fn tokens(input: u64, cached_input: u64, output: u64) -> TokenCount {
        TokenCount {
            input,
            cached_input,
            output,
        }
    }

    #[test]
    fn table_matches_the_published_decimal_prices() {
        // The memo's figures as written in USD per 1M tokens, parsed exactly,
        // against the integers in the table.
        let published = [
            ("gpt-4o", "2.50", "1.25", "10.00"),
            ("gpt-4o-2024-05-13", "5.00", "5.00", "15.00"),
            ("gpt-4o-mini", "0.15", "0.075", "0.60"),
            ("gpt-4.1", "2.00", "0.50", "8.00"),
            ("gpt-4.1-mini", "0.40", "0.10", "1.60"),
            ("gpt-4.1-nano", "0.10", "0.025", "0.40"),
            ("o3", "2.00", "0.50", "8.00"),
            ("o4-mini", "1.10", "0.275", "4.40"),
            ("gpt-5", "1.25", "0.125", "10.00"),
            ("gpt-5-mini", "0.25", "0.025", "2.00"),
            ("gpt-5-nano", "0.05", "0.005", "0.40"),
            ("text-embedding-3-small", "0.02", "0.02", "0"),
            ("text-embedding-3-large", "0.13", "0.13", "0"),
            ("text-embedding-ada-002", "0.10", "0.10", "0"),
        ];
        assert_eq!(published.len(), TABLE.len());
        for (model, input, cached_input, output) in published {
            let expected = Price {
                input: usd(input),
                cached_input: usd(cached_input),
                output: usd(output),
            };
            assert_eq!(builtin(model), Some(expected), "{model}");
            assert!(expected.cached_input <= expected.input, "{model}");
        }
    }

    #[test]
    fn dated_snapshots_fall_back_to_their_base() {
        assert_eq!(builtin("gpt-4o-mini-2024-07-18"), builtin("gpt-4o-mini"));
        assert_eq!(builtin("gpt-4.1-2025-04-14"), builtin("gpt-4.1"));
        assert_eq!(builtin("gpt-4o-2024-08-06"), builtin("gpt-4o"));
        // An exact entry wins over the fallback.
        assert_eq!(builtin("gpt-4o-2024-05-13").unwrap().input, usd("5"));
        assert_eq!(builtin("gpt-4o").unwrap().input, usd("2.5"));
    }

    #[test]
    fn unknown_models_have_no_price() {
        for model in [
            "",
            "gpt-4o-mini-2024-07",
            "gpt-4o-mini-2024-07-1x",
            "gpt-4o-mini-20240718",
            "-2024-07-18",
            "2024-07-18",
            "GPT-4O",
            "gpt-4o-mini-search-preview",
            "unknown-2024-07-18",
            "gpt-4o-2024-07-18-2024-07-18",
            "llama3",
        ] {
            assert_eq!(builtin(model), None, "{model:?}");
        }
    }

    #[test]
    fn cost_of_a_call_by_hand() {
        // gpt-4o-mini: 1000 prompt tokens of which 200 cached, 500 completion.
        // (800 × 150 000 000 + 200 × 75 000 000 + 500 × 600 000 000) / 10^6
        // = (120 000 000 000 + 15 000 000 000 + 300 000 000 000) / 10^6
        // = 435 000 nano-USD = $0.000435.
        let price = builtin("gpt-4o-mini").unwrap();
        assert_eq!(
            price.cost(&tokens(1000, 200, 500)),
            Usd::from_nanos(435_000)
        );
        // More cached than prompt tokens counts the whole prompt as cached.
        assert_eq!(price.cost(&tokens(1000, 5000, 0)), Usd::from_nanos(75_000));
        assert_eq!(price.cost(&TokenCount::default()), Usd::ZERO);
        assert_eq!(
            Price::FREE.cost(&tokens(1_000_000, 0, 1_000_000)),
            Usd::ZERO
        );
    }

    #[test]
    fn cost_rounds_up() {
        // One input token of gpt-5-nano is 50 000 000 / 10^6 = 50 nano-USD
        // exactly; one cached token is 5 000 000 / 10^6 = 5.
        let nano = builtin("gpt-5-nano").unwrap();
        assert_eq!(nano.cost(&tokens(1, 0, 0)), Usd::from_nanos(50));
        assert_eq!(nano.cost(&tokens(1, 1, 0)), Usd::from_nanos(5));
        // A price of 0.000000001 USD per 1M tokens: one token costs 10^-6
        // nano-USD, charged as one; a million tokens cost exactly one.
        let tiny = PriceConfig::new(usd("0.000000001"), None, None)
            .unwrap()
            .price();
        assert_eq!(tiny.cost(&tokens(1, 0, 0)), Usd::from_nanos(1));
        assert_eq!(tiny.cost(&tokens(1_000_000, 0, 0)), Usd::from_nanos(1));
        assert_eq!(tiny.cost(&tokens(1_000_001, 0, 0)), Usd::from_nanos(2));
    }

    #[test]
    fn cost_saturates_instead_of_overflowing() {
        let dear = Price {
            input: Usd::from_nanos(u64::MAX),
            cached_input: Usd::from_nanos(u64::MAX),
            output: Usd::from_nanos(u64::MAX),
        };
        let most = tokens(u64::MAX, u64::MAX / 2, u64::MAX);
        assert_eq!(dear.cost(&most), Usd::from_nanos(u64::MAX));
        let gpt_4o = builtin("gpt-4o").unwrap();
        assert_eq!(
            gpt_4o.cost(&tokens(u64::MAX, 0, u64::MAX)),
            Usd::from_nanos(u64::MAX)
        );
    }

    #[test]
    fn config_defaults_and_checks() {
        let embeddings = PriceConfig::new(usd("0.02"), None, None).unwrap().price();
        assert_eq!(embeddings, builtin("text-embedding-3-small").unwrap());
        let chat = PriceConfig::new(usd("2.5"), Some(usd("1.25")), Some(usd("10"))).unwrap();
        assert_eq!(chat.price(), builtin("gpt-4o").unwrap());

        assert_eq!(
            PriceConfig::new(usd("1"), Some(usd("2")), None),
            Err(PriceError::CachedAboveInput {
                cached_input: usd("2"),
                input: usd("1")
            })
        );
        assert_eq!(
            PriceConfig::new(usd("1"), None, Some(usd("1000000.000000001"))),
            Err(PriceError::TooHigh {
                field: "output",
                value: usd("1000000.000000001")
            })
        );
        assert!(PriceConfig::new(MAX_PRICE_PER_MTOK, None, Some(MAX_PRICE_PER_MTOK)).is_ok());
    }

    #[test]
    fn config_reads_numbers_and_strings() {
        let read = |json: &str| serde_json::from_str::<PriceConfig>(json);
        let config = read(r#"{"input": 0.15, "cached_input": "0.075", "output": 0.6}"#).unwrap();
        assert_eq!(config.price(), builtin("gpt-4o-mini").unwrap());
        let config = read(r#"{"input": 2}"#).unwrap();
        assert_eq!(
            config,
            PriceConfig {
                input: usd("2"),
                cached_input: None,
                output: None
            }
        );

        let error = |json: &str| read(json).unwrap_err().to_string();
        assert!(error(r#"{"input": 0.15, "outptu": 1}"#).contains("unknown field `outptu`"));
        assert!(error(r#"{"output": 1}"#).contains("missing field `input`"));
        assert!(error(r#"{"input": -0.15}"#).contains("must not be negative"));
        assert!(error(r#"{"input": "0.1234567891"}"#).contains("more than 9 decimal places"));
        assert!(error(r#"{"input": 2000000}"#).contains("input = 2000000.00 USD per 1M tokens"));
        assert!(error(r#"{"input": 1, "cached_input": 2}"#).contains("a cache hit never costs"));
    }

    #[test]
    fn config_round_trips_as_strings() {
        let config = PriceConfig::new(usd("0.15"), Some(usd("0.075")), None).unwrap();
        let json = serde_json::to_string(&config).unwrap();
        assert_eq!(json, r#"{"input":"0.15","cached_input":"0.075"}"#);
        assert_eq!(serde_json::from_str::<PriceConfig>(&json).unwrap(), config);
    }

    #[test]
    fn price_displays_all_three_rates() {
        assert_eq!(
            builtin("gpt-4o-mini").unwrap().to_string(),
            "0.15/0.075/0.60 USD per 1M tokens (input/cached input/output)"
        );
    }
}
