//! The counters of a running migration and the snapshot `job.progress()` returns.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Instant;

use super::State;

/// At most this many failures are kept with their message; the count is exact.
const FAILURES_KEPT: usize = 1000;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub key: String,
    pub code: &'static str,
    pub message: String,
}

#[derive(Debug)]
pub struct Counters {
    started: Instant,
    total: AtomicU64,
    bytes_total: AtomicU64,
    /// Set when the counting walk has seen every object in scope.
    total_known: AtomicBool,
    copied: AtomicU64,
    skipped: AtomicU64,
    /// Bytes of objects done without a copy (skipped or failed): no longer to come.
    uncopied_bytes: AtomicU64,
    failed: AtomicU64,
    bytes: AtomicU64,
    failures: Mutex<Vec<Failure>>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    pub total: u64,
    /// Objects finished: copied, skipped or failed.
    pub done: u64,
    pub copied: u64,
    pub skipped: u64,
    pub failed: u64,
    pub bytes: u64,
    pub bytes_total: u64,
    /// Bytes copied per second since the start.
    pub rate: f64,
    /// `None` until the total is known and something was copied.
    pub eta_seconds: Option<f64>,
    pub state: State,
    pub total_known: bool,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            started: Instant::now(),
            total: AtomicU64::new(0),
            bytes_total: AtomicU64::new(0),
            total_known: AtomicBool::new(false),
            copied: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            uncopied_bytes: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
            failures: Mutex::new(Vec::new()),
        }
    }
}

impl Counters {
    /// The counting walk found one more object in scope.
    pub fn counted(&self, bytes: u64) {
        self.total.fetch_add(1, Relaxed);
        self.bytes_total.fetch_add(bytes, Relaxed);
    }

    pub fn count_finished(&self) {
        self.total_known.store(true, Relaxed);
    }

    pub fn copied(&self, bytes: u64) {
        self.copied.fetch_add(1, Relaxed);
        self.bytes.fetch_add(bytes, Relaxed);
    }

    pub fn skipped(&self, bytes: u64) {
        self.skipped.fetch_add(1, Relaxed);
        self.uncopied_bytes.fetch_add(bytes, Relaxed);
    }

    pub fn failed(&self, failure: Failure, bytes: u64) {
        self.failed.fetch_add(1, Relaxed);
        self.uncopied_bytes.fetch_add(bytes, Relaxed);
        let mut kept = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        if kept.len() < FAILURES_KEPT {
            kept.push(failure);
        }
    }

    pub fn failures(&self) -> Vec<Failure> {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn seconds(&self) -> f64 {
        self.started.elapsed().as_secs_f64()
    }

    pub fn snapshot(&self, state: State) -> Snapshot {
        let (copied, skipped, failed) = (
            self.copied.load(Relaxed),
            self.skipped.load(Relaxed),
            self.failed.load(Relaxed),
        );
        let bytes = self.bytes.load(Relaxed);
        let bytes_total = self.bytes_total.load(Relaxed);
        let total_known = self.total_known.load(Relaxed);
        let rate = bytes as f64 / self.seconds().max(1e-3);
        let left = bytes_total.saturating_sub(bytes + self.uncopied_bytes.load(Relaxed));
        Snapshot {
            total: self.total.load(Relaxed),
            done: copied + skipped + failed,
            copied,
            skipped,
            failed,
            bytes,
            bytes_total,
            rate,
            eta_seconds: match state {
                State::Completed => Some(0.0),
                _ => (total_known && rate > 0.0).then(|| left as f64 / rate),
            },
            state,
            total_known,
        }
    }
}
