//! `bandwidthLimit`: one pacing clock shared by every worker. Each transfer reserves
//! its bytes on the clock and starts when the bytes reserved before it have had their
//! time, so the average rate over the job stays at or under the limit.

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

    /// Waits until `bytes` more may be sent.
    pub async fn acquire(&self, bytes: u64) {
        let start = {
            let mut next = self.next_free.lock().await;
            let now = Instant::now();
            let start = next.map_or(now, |n| n.max(now));
            *next = Some(start + Duration::from_secs_f64(bytes as f64 / self.bytes_per_second));
            start
        };
        tokio::time::sleep_until(start).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn reservations_are_paced_at_the_rate() {
        let limiter = Limiter::new(1000);
        let t0 = tokio::time::Instant::now();
        limiter.acquire(500).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        limiter.acquire(1000).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(500));
        limiter.acquire(1).await;
        assert_eq!(t0.elapsed(), Duration::from_millis(1500));
    }
}
