//! Bounded, jittered exponential backoff for races and transient refusals.

use std::time::Duration;

/// Backoff state of one operation.
#[derive(Debug)]
pub(crate) struct Backoff {
    attempt: u32,
    max_attempts: u32,
}

const BASE: Duration = Duration::from_millis(4);
const CAP: Duration = Duration::from_millis(250);

impl Backoff {
    pub fn new(max_attempts: u32) -> Self {
        Backoff {
            attempt: 0,
            max_attempts,
        }
    }

    /// Attempts made so far.
    pub fn attempts(&self) -> u32 {
        self.attempt
    }

    /// Counts an attempt; `false` once the budget is spent.
    pub fn next_attempt(&mut self) -> bool {
        if self.attempt >= self.max_attempts {
            return false;
        }
        self.attempt += 1;
        true
    }

    /// Waits before the next attempt: a random time up to `BASE * 2^attempt`,
    /// capped ("full jitter", so racing writers spread out).
    pub async fn wait(&self) {
        metrics::counter!(RETRIES_TOTAL).increment(1);
        let ceiling = BASE
            .saturating_mul(1u32 << self.attempt.min(16))
            .min(CAP)
            .as_micros();
        let ceiling = u64::try_from(ceiling).unwrap_or(u64::MAX).max(1);
        let jitter = random_u64() % ceiling;
        tokio::time::sleep(Duration::from_micros(jitter)).await;
    }
}

/// Waits before retries (transaction conflicts, throttling, counter races,
/// torn reads), counted through the `metrics` facade.
pub const RETRIES_TOTAL: &str = "vss_dynamodb_retries_total";

/// Registers the help text of [`RETRIES_TOTAL`] with the recorder installed now.
pub fn describe_metrics() {
    metrics::describe_counter!(
        RETRIES_TOTAL,
        "DynamoDB calls retried after a transaction conflict, throttling, a counter race or a torn read."
    );
}

/// A random number, or a fixed one if the system has no randomness to give
/// (jitter only spreads retries out; it needs no strength).
fn random_u64() -> u64 {
    getrandom::u64().unwrap_or(0x5eed)
}

/// A fresh random identifier of 128 bits, as 32 lowercase hex digits.
pub(crate) fn random_id() -> Result<String, getrandom::Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_fresh_hex() {
        let a = random_id().unwrap();
        let b = random_id().unwrap();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }

    #[test]
    fn budget_is_bounded() {
        let mut backoff = Backoff::new(3);
        assert!(backoff.next_attempt());
        assert!(backoff.next_attempt());
        assert!(backoff.next_attempt());
        assert!(!backoff.next_attempt());
        assert_eq!(backoff.attempts(), 3);
    }
}
