//! The circuit breaker: after a permanent error (bad key, no quota, unknown
//! model) the engine refuses calls until a cool-down has passed, instead of
//! failing every message against the same wall.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::error::LlmError;

/// What the control room shows.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BreakerState {
    /// Why it is open; `None` when closed.
    pub reason: Option<String>,
    /// Time left before it closes again.
    pub retry_in: Option<Duration>,
}

#[derive(Debug)]
struct Open {
    reason: String,
    until: Instant,
}

/// The breaker of one engine (one configuration: a new configuration makes a
/// new engine, and so a closed breaker).
#[derive(Debug)]
pub struct Breaker {
    cooldown: Duration,
    open: Mutex<Option<Open>>,
}

impl Breaker {
    /// A closed breaker that stays open `cooldown` once tripped.
    pub fn new(cooldown: Duration) -> Self {
        Self {
            cooldown,
            open: Mutex::new(None),
        }
    }

    /// Ok when calls may go out; closes the breaker once its time is over.
    pub fn check(&self) -> Result<(), LlmError> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match open.as_ref() {
            Some(o) if o.until > now => Err(LlmError::BreakerOpen {
                reason: o.reason.clone(),
                retry_in: o.until - now,
            }),
            Some(_) => {
                *open = None;
                tracing::info!("the language model's cool-down is over: trying it again");
                Ok(())
            }
            None => Ok(()),
        }
    }

    /// Opens the breaker for the cool-down, because of `reason`.
    pub fn trip(&self, reason: &str) {
        tracing::error!(
            "the language model is off for {:?} after a permanent error: {reason}",
            self.cooldown
        );
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        *open = Some(Open {
            reason: reason.to_owned(),
            until: Instant::now() + self.cooldown,
        });
    }

    /// The state now.
    pub fn state(&self) -> BreakerState {
        let open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        match open.as_ref() {
            Some(o) if o.until > now => BreakerState {
                reason: Some(o.reason.clone()),
                retry_in: Some(o.until - now),
            },
            _ => BreakerState::default(),
        }
    }
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
}
