//! `pause()`, `resume()` and `abort()`: a state every worker reads before it starts
//! the next object. Abort also cancels the copies in flight (their copies are not
//! recorded, so the next run redoes them).

use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Running,
    Paused,
    Aborted,
    Completed,
    Failed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Running => "running",
            State::Paused => "paused",
            State::Aborted => "aborted",
            State::Completed => "completed",
            State::Failed => "failed",
        }
    }

    fn is_final(self) -> bool {
        matches!(self, State::Aborted | State::Completed | State::Failed)
    }
}

#[derive(Debug)]
pub struct Control(watch::Sender<State>);

impl Default for Control {
    fn default() -> Self {
        Control(watch::Sender::new(State::Running))
    }
}

impl Control {
    pub fn state(&self) -> State {
        *self.0.borrow()
    }

    /// Moves to `to` unless the job has already ended.
    pub fn set(&self, to: State) {
        self.0.send_if_modified(|s| {
            let change = !s.is_final() && *s != to;
            if change {
                *s = to;
            }
            change
        });
    }

    /// Returns `false` once the job is aborted; waits while it is paused.
    pub async fn proceed(&self) -> bool {
        let mut rx = self.0.subscribe();
        match rx.wait_for(|s| *s != State::Paused).await {
            Ok(s) => *s == State::Running,
            Err(_) => false,
        }
    }

    /// Aborts the job when it is paused, now or later, unless it ended first.
    pub async fn abort_when_paused(&self) {
        let mut rx = self.0.subscribe();
        if let Ok(s) = rx.wait_for(|s| *s == State::Paused || s.is_final()).await
            && *s == State::Paused
        {
            drop(s);
            self.set(State::Aborted);
        }
    }

    pub async fn aborted(&self) {
        let mut rx = self.0.subscribe();
        let _ = rx.wait_for(|s| *s == State::Aborted).await;
    }
}
