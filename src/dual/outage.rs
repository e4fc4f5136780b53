//! Remembers that the cloud is down, so that dual mode's calls stop waiting on it:
//! a hung endpoint held every upload and every cloud-first read for the whole request
//! timeout (60 s by default) before the local side took over. While the cloud is
//! marked down, those calls get its outage error at once: writes are queued for
//! repair and reads are served by the local side, as they were after the wait.
//! Once the cooldown is over, one call tries the cloud again; its success ends the
//! outage, its failure starts another cooldown.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::Error;

#[derive(Debug)]
pub struct OutageGate {
    cooldown: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    Up,
    Down {
        since: Instant,
        /// When the next call may try the cloud.
        retry_at: Instant,
        code: &'static str,
    },
}

/// A change the caller reports as an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Change {
    WentDown,
    CameBack,
}

impl OutageGate {
    /// A zero cooldown never marks the cloud down.
    pub fn new(cooldown: Duration) -> Self {
        OutageGate {
            cooldown,
            state: Mutex::new(State::Up),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Ok` when a call may go to the cloud now. The first call after a cooldown
    /// goes and holds the others off for another cooldown, so that a cloud still
    /// hanging costs one waiting call per cooldown, not one per request.
    pub fn admit(&self, now: Instant) -> Result<(), Error> {
        let mut state = self.state();
        match *state {
            State::Up => Ok(()),
            State::Down {
                since,
                retry_at,
                code,
            } if now < retry_at => Err(Error::Unavailable(format!(
                "cloud: not tried; it has been down for {} ms ({code}), next try in {} ms",
                now.duration_since(since).as_millis(),
                retry_at.duration_since(now).as_millis().max(1),
            ))),
            State::Down { since, code, .. } => {
                *state = State::Down {
                    since,
                    retry_at: now + self.cooldown,
                    code,
                };
                Ok(())
            }
        }
    }

    /// Takes in what a call that went to the cloud got back.
    pub fn observe<T>(&self, result: &Result<T, Error>, now: Instant) -> Option<Change> {
        let mut state = self.state();
        match (result, *state) {
            (Err(e), before) if e.is_outage() && !self.cooldown.is_zero() => {
                let since = match before {
                    State::Down { since, .. } => since,
                    State::Up => now,
                };
                *state = State::Down {
                    since,
                    retry_at: now + self.cooldown,
                    code: e.code(),
                };
                matches!(before, State::Up).then_some(Change::WentDown)
            }
            // An answer, even a refusal, means the cloud is reachable; errors a call
            // can raise before any request (a bad destination path) say nothing.
            (_, State::Down { .. }) if result.as_ref().err().is_none_or(answered) => {
                *state = State::Up;
                Some(Change::CameBack)
            }
            _ => None,
        }
    }
}

/// Errors only a store's answer gives.
fn answered(e: &Error) -> bool {
    matches!(
        e,
        Error::NotFound { .. }
            | Error::AlreadyExists { .. }
            | Error::AccessDenied(_)
            | Error::NoSuchBucket(_)
            | Error::PreconditionFailed(_)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const COOLDOWN: Duration = Duration::from_secs(5);

    fn outage() -> Result<(), Error> {
        Err(Error::Timeout("cloud: timed out".into()))
    }

    #[test]
    fn an_outage_holds_calls_off_for_the_cooldown_then_lets_one_try() {
        let gate = OutageGate::new(COOLDOWN);
        let t0 = Instant::now();
        assert!(gate.admit(t0).is_ok());
        assert_eq!(gate.observe(&outage(), t0), Some(Change::WentDown));
        let held = gate.admit(t0 + Duration::from_secs(1)).unwrap_err();
        assert_eq!(held.code(), "UNAVAILABLE");
        assert!(held.to_string().contains("down for 1000 ms (TIMEOUT)"));
        assert!(held.to_string().contains("next try in 4000 ms"));
        // After the cooldown one call goes; the next ones wait for its answer.
        let later = t0 + COOLDOWN;
        assert!(gate.admit(later).is_ok());
        assert!(gate.admit(later).is_err());
        assert_eq!(gate.observe(&outage(), later), None);
        assert!(gate.admit(later + Duration::from_secs(1)).is_err());
    }

    #[test]
    fn any_answer_ends_the_outage() {
        let gate = OutageGate::new(COOLDOWN);
        let t0 = Instant::now();
        gate.observe(&outage(), t0);
        let before_asking: Result<(), Error> = Err(Error::config("path", "no such folder"));
        assert_eq!(gate.observe(&before_asking, t0), None);
        let refused: Result<(), Error> = Err(Error::NotFound { key: "k".into() });
        assert_eq!(gate.observe(&refused, t0), Some(Change::CameBack));
        assert!(gate.admit(t0).is_ok());
        assert_eq!(gate.observe(&Ok(()), t0), None);
    }

    #[test]
    fn a_zero_cooldown_never_holds_a_call() {
        let gate = OutageGate::new(Duration::ZERO);
        let t0 = Instant::now();
        assert_eq!(gate.observe(&outage(), t0), None);
        assert!(gate.admit(t0).is_ok());
    }
}
