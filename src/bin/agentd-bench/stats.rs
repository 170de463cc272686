//! Percentiles of latency samples, shared by the benchmarks.

use std::time::Duration;

/// The percentiles every benchmark reports, by name.
pub const PERCENTILES: [(&str, f64); 4] =
    [("p50", 0.50), ("p90", 0.90), ("p99", 0.99), ("max", 1.0)];

/// [`PERCENTILES`] of `samples` in milliseconds (nearest rank; NaN without samples).
pub fn percentiles(samples: impl Iterator<Item = Duration>) -> [f64; 4] {
    let mut values: Vec<f64> = samples.map(|d| d.as_secs_f64() * 1e3).collect();
    values.sort_by(f64::total_cmp);
    PERCENTILES.map(|(_, q)| {
        // The smallest value with at least q of the samples at or below it.
        let rank = (q * values.len() as f64).ceil().max(1.0) as usize;
        values
            .get(rank.min(values.len()).saturating_sub(1))
            .copied()
            .unwrap_or(f64::NAN)
    })
}

/// Percentiles as a JSON object {"p50": ms, ...}, to the microsecond; NaN
/// (no samples) becomes null.
pub fn percentiles_json(values: &[f64; 4]) -> serde_json::Value {
    let map: serde_json::Map<_, _> = PERCENTILES
        .iter()
        .zip(values)
        .map(|((name, _), v)| {
            (
                (*name).to_owned(),
                serde_json::json!((v * 1e3).round() / 1e3),
            )
        })
        .collect();
    serde_json::Value::Object(map)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let samples = (1..=100).map(Duration::from_millis);
        assert_eq!(percentiles(samples), [50.0, 90.0, 99.0, 100.0]);
        assert!(percentiles(std::iter::empty())[0].is_nan());
        assert_eq!(
            percentiles_json(&[f64::NAN; 4])["p50"],
            serde_json::Value::Null
        );
    }
}
