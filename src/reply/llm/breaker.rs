//! The circuit breaker: after a permanent error (bad key, no quota, unknown
//! model) the engine refuses calls until a cool-down has passed, instead of
//! failing every message against the same wall.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::LlmError;
use crate::llm_usage::BreakerState;

/// The longest cool-down: a longer one from the config is this one.
pub const LONGEST_COOLDOWN: Duration = Duration::from_secs(365 * 86_400);

#[derive(Debug)]
struct Open {
    reason: String,
    /// When it tripped: the time left is measured from here, never added to
    /// it (a cool-down of any length from the config cannot overflow an `Instant`).
    since: Instant,
}

impl Open {
    /// Time left of `cooldown`, `None` once it is over.
    fn left(&self, cooldown: Duration) -> Option<Duration> {
        let gone = Instant::now().saturating_duration_since(self.since);
        cooldown.checked_sub(gone).filter(|d| !d.is_zero())
    }
}

/// The breaker of one engine (one configuration: a new configuration makes a
/// new engine, and so a closed breaker).
#[derive(Debug)]
pub struct Breaker {
    id: String,
    /// What it switches off, for the log ("the language model").
    what: &'static str,
    cooldown: Duration,
    open: Mutex<Option<Open>>,
}

impl Breaker {
    /// A closed breaker that stays open `cooldown` (at most [`LONGEST_COOLDOWN`]) once tripped.
    pub fn new(cooldown: Duration) -> Self {
        Self::named(cooldown, "the language model")
    }

    /// [`Self::new`] for another endpoint, named `what` in the log ("transcription").
    pub fn named(cooldown: Duration, what: &'static str) -> Self {
        Self {
            id: new_id(),
            what,
            // Bounded so that the time left, shown and written to Redis as
            // milliseconds since 1970, stays far from any integer's limit.
            cooldown: cooldown.min(LONGEST_COOLDOWN),
            open: Mutex::new(None),
        }
    }

    /// Whose breaker this is: unique per engine, across processes and hosts,
    /// so each worker's state has its own entry in Redis.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Ok when calls may go out; closes the breaker once its time is over.
    pub fn check(&self) -> Result<(), LlmError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let left = open.as_ref().map(|o| (o, o.left(self.cooldown)));
        match left {
            Some((o, Some(retry_in))) => Err(LlmError::BreakerOpen {
                reason: o.reason.clone(),
                retry_in,
            }),
            Some((_, None)) => {
                *open = None;
                tracing::info!("{}: the cool-down is over, trying it again", self.what);
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Opens the breaker for the cool-down, because of `reason`.
    pub fn trip(&self, reason: &str) {
        tracing::error!(
            "{} is off for {:?} after a permanent error: {reason}",
            self.what,
            self.cooldown
        );
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open = Some(Open {
            reason: reason.to_owned(),
            since: Instant::now(),
        });
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        match open
            .as_ref()
            .and_then(|o| Some((o, o.left(self.cooldown)?)))
        {
            Some((o, retry_in)) => BreakerState {
                reason: Some(o.reason.clone()),
                retry_in: Some(retry_in),
            },
            None => BreakerState::default(),
        }
    }
}

/// A fresh engine id: the process id and a random number (std's hasher keys
/// are random per process; the counter tells two engines of one apart).
fn new_id() -> String {
    use std::hash::{BuildHasher, Hasher};
    use std::sync::atomic::{AtomicU64, Ordering};
    static ENGINES: AtomicU64 = AtomicU64::new(0);
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u64(ENGINES.fetch_add(1, Ordering::Relaxed));
    format!("{}-{:016x}", std::process::id(), h.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tripped_breaker_refuses_until_its_cool_down_is_over() {
        let b = Breaker::new(Duration::from_millis(50));
        assert!(b.check().is_ok());
        b.trip("401 invalid key");
        let err = b.check().expect_err("open");
        assert!(matches!(err, LlmError::BreakerOpen { .. }), "{err}");
        assert_eq!(b.state().reason.as_deref(), Some("401 invalid key"));
        std::thread::sleep(Duration::from_millis(60));
        assert!(b.check().is_ok());
        assert_eq!(b.state(), BreakerState::default());
    }

    #[test]
    fn a_cool_down_too_long_for_an_instant_keeps_it_open_without_a_panic() {
        let b = Breaker::new(Duration::MAX);
        b.trip("401 invalid key");
        let err = b.check().expect_err("open");
        assert!(matches!(err, LlmError::BreakerOpen { .. }), "{err}");
        let left = b.state().retry_in.expect("open");
        assert!(
            left <= LONGEST_COOLDOWN && left > LONGEST_COOLDOWN - Duration::from_secs(60),
            "{left:?}"
        );
    }

    #[test]
    fn each_breaker_has_its_own_id() {
        let (a, b) = (Breaker::new(Duration::ZERO), Breaker::new(Duration::ZERO));
        assert_ne!(a.id(), b.id());
        assert!(a.id().starts_with(&format!("{}-", std::process::id())));
    }
}
