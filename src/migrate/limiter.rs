//! `bandwidthLimit`: one pacing clock shared by every worker. Each transfer reserves
//! its bytes on the clock, starts when the bytes reserved before it have had their
//! time, and holds its worker until its own bytes have had theirs: the job cannot end
//! before all its bytes had their time, so its average rate stays at or under the
//! limit. Pacing only the starts let the last transfers run unpaced: two 24 MiB files
//! at 4 MiB/s took 6 s, twice the limit.

use std::time::Duration;

use tokio::sync::Mutex;
use tokio::time::Instant;

#[derive(Debug)]
pub struct Limiter {
    bytes_per_second: f64,
    next_free: Mutex<Option<Instant>>,
}

impl Limiter {
    pub fn new(bytes_per_second: u64) -> Self {
        Limiter {
            bytes_per_second: bytes_per_second as f64,
            next_free: Mutex::new(None),
        }
    }

    /// Waits until `bytes` more may be sent; returns when their time is over, which
    /// the transfer then waits for too.
    pub async fn acquire(&self, bytes: u64) -> Instant {
        let (start, end) = {
            let mut next = self.next_free.lock().await;
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            let end = start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second);
            *next = Some(end);
            (start, end)
        };
        tokio::time::sleep_until(start).await;
        end
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reservations_are_paced_at_the_rate() {
        let limiter = Limiter::new(1000);
        let t0 = tokio::time::Instant::now();
        assert_eq!(limiter.acquire(500).await, t0 + Duration::from_millis(500));
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(
            limiter.acquire(1000).await,
            t0 + Duration::from_millis(1500)
        );
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
        limiter.acquire(1).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(1500));
    }
}
