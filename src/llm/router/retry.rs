//! The retry policy shared by the router and the embeddings client: how many
//! attempts, the exponential backoff with full jitter, and when a provider's
//! `retry-after` is honoured. Retries themselves run in backon's retry loop;
//! the sleeps are on the injectable clock.

use std::time::Duration;

use backon::ExponentialBuilder;

use crate::config::RetryConfig;

/// The backoff for `tries` attempts (the first included): base_delay doubled
/// per retry, capped at max_delay, without jitter (drawn by [`delay`]).
pub fn backoff(config: &RetryConfig, tries: u32) -> ExponentialBuilder {
    ExponentialBuilder::new()
        .with_min_delay(config.base_delay)
        .with_max_delay(config.max_delay)
        .with_factor(2.0)
        .with_max_times(tries.saturating_sub(1) as usize)
}

/// The wait before the next retry: the provider's `retry-after` when it asks
/// for one no longer than max_delay, `None` (do not retry here) when it asks
/// for longer, else a uniform draw from zero to the `exponential` delay ("full
/// jitter"; backon's own jitter only adds to the delay).
pub fn delay(
    config: &RetryConfig,
    exponential: Duration,
    retry_after: Option<Duration>,
) -> Option<Duration> {
    match retry_after {
        Some(after) if after > config.max_delay => None,
        Some(after) => Some(after),
        None => Some(exponential.mul_f64(fastrand::f64())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_stays_below_the_delay_and_retry_after_wins_when_it_fits() {
        let config = RetryConfig::default();
        for _ in 0..1000 {
            let drawn = delay(&config, Duration::from_millis(800), None).unwrap();
            assert!(drawn <= Duration::from_millis(800), "{drawn:?}");
        }
        let asked = Some(Duration::from_secs(3));
        assert_eq!(delay(&config, Duration::ZERO, asked), asked);
        assert_eq!(
            delay(&config, Duration::ZERO, Some(Duration::from_secs(60))),
            None
        );
    }
}
