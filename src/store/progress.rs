//! Byte-progress reporting that stays off the hot path: a callback at most every
//! 100 ms, and always once at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Receives `(bytes_done, bytes_total)`.
pub type ProgressFn = Arc<dyn Fn(u64, u64) + Send + Sync>;

const INTERVAL: Duration = Duration::from_millis(100);

pub struct Progress {
    report: Option<ProgressFn>,
    total: u64,
    done: u64,
    /// When the last report went out, and with how many bytes.
    last: Option<(Instant, u64)>,
}

impl Progress {
    pub fn new(report: Option<ProgressFn>, total: u64) -> Self {
        Progress {
            report,
            total,
            done: 0,
            last: None,
        }
    }

    pub fn advance(&mut self, bytes: u64) {
        self.done += bytes;
        if let Some(report) = &self.report
            && self.last.is_none_or(|(t, _)| t.elapsed() >= INTERVAL)
        {
            self.last = Some((Instant::now(), self.done));
            report(self.done, self.total);
        }
    }

    /// The last report, unless the last `advance` made it already.
    pub fn finish(self) {
        if let Some(report) = &self.report
            && self.last.is_none_or(|(_, reported)| reported != self.done)
        {
            report(self.done, self.total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    type Reports = Arc<Mutex<Vec<(u64, u64)>>>;

    /// A progress of `total` bytes, and the reports it made.
    fn recorded(total: u64) -> (Progress, Reports) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let report: ProgressFn = Arc::new(move |d, t| sink.lock().unwrap().push((d, t)));
        (Progress::new(Some(report), total), seen)
    }

    #[test]
    fn throttles_and_always_reports_the_end() {
        let (mut p, seen) = recorded(1000);
        for _ in 0..1000 {
            p.advance(1);
        }
        p.finish();
        let seen = seen.lock().unwrap();
        assert_eq!(seen.first(), Some(&(1, 1000)));
        assert_eq!(seen.last(), Some(&(1000, 1000)));
        assert!(seen.len() <= 3, "{} reports for a fast loop", seen.len());
    }

    #[test]
    fn one_step_to_the_end_is_reported_once() {
        let (mut p, seen) = recorded(50);
        p.advance(50);
        p.finish();
        assert_eq!(*seen.lock().unwrap(), [(50, 50)]);
    }
}
