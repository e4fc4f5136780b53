//! Byte-progress reporting that stays off the hot path: a callback at most every
//! 100 ms, and always once at the end.

use std::sync::{Arc, Mutex};
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
        let due = self.done == self.total || self.last.is_none_or(|(t, _)| t.elapsed() >= INTERVAL);
        if let Some(report) = &self.report
            && due
        {
            self.last = Some((Instant::now(), self.done));
            report(self.done, self.total);
        }
    }

    /// Advances to `done` bytes in all; a total that does not grow is no step.
    pub fn advance_to(&mut self, done: u64) {
        if done > self.done {
            self.advance(done - self.done);
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

/// One progress fed by several transfers of the same bytes (a dual write's sides):
/// reports the bytes that every part has carried (their mean), throttled as one.
pub struct SharedProgress {
    parts: Mutex<(Vec<u64>, Progress)>,
}

impl SharedProgress {
    pub fn new(report: ProgressFn, total: u64, parts: usize) -> Arc<SharedProgress> {
        Arc::new(SharedProgress {
            parts: Mutex::new((vec![0; parts], Progress::new(Some(report), total))),
        })
    }

    /// The callback of part `i`, which reports its own bytes.
    pub fn part(self: &Arc<Self>, i: usize) -> ProgressFn {
        let shared = self.clone();
        Arc::new(move |bytes, _| {
            let mut parts = shared.parts.lock().unwrap_or_else(|e| e.into_inner());
            let (done, progress) = &mut *parts;
            done[i] = bytes;
            let all = done.iter().sum::<u64>() / done.len() as u64;
            progress.advance_to(all);
        })
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
    fn parts_report_as_one_the_bytes_all_have_carried() {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let sink = seen.clone();
        let shared = SharedProgress::new(
            Arc::new(move |d, t| sink.lock().unwrap().push((d, t))),
            1000,
            2,
        );
        let (local, cloud) = (shared.part(0), shared.part(1));
        for bytes in 1..=1000 {
            local(bytes, 1000);
            cloud(bytes, 1000);
        }
        let seen = seen.lock().unwrap();
        // Each part's reports were passed on: twice one transfer's, and more.
        assert!(seen.len() <= 3, "{} reports for a fast loop", seen.len());
        assert_eq!(seen.first(), Some(&(1, 1000)));
        assert_eq!(seen.last(), Some(&(1000, 1000)));
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
