//! The journal rows of dual writes still running in this process, which repairs
//! leave alone. A row leaves the set when its [`Running`] mark is dropped: when the
//! write has settled or queued its intent, and also when the write's future is
//! dropped half-way (an ingest whose sibling write failed drops the others). Such
//! a row is then what a crash leaves, for repair to finish; kept in the set, it was
//! hidden from this process's `repair()` and `pendingRepairs()` for good.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

#[derive(Debug, Default)]
pub struct InFlight(Arc<Mutex<HashSet<i64>>>);

/// Row `id` is a write still running, until this is dropped.
#[derive(Debug)]
pub struct Running {
    set: Arc<Mutex<HashSet<i64>>>,
    id: i64,
}

impl InFlight {
    pub fn start(&self, id: i64) -> Running {
        lock(&self.0).insert(id);
        Running {
            set: self.0.clone(),
            id,
        }
    }

    pub fn ids(&self) -> Vec<i64> {
        lock(&self.0).iter().copied().collect()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        lock(&self.set).remove(&self.id);
    }
}

fn lock(set: &Mutex<HashSet<i64>>) -> MutexGuard<'_, HashSet<i64>> {
    set.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_row_is_running_until_its_mark_is_dropped() {
        let in_flight = InFlight::default();
        let (a, b) = (in_flight.start(1), in_flight.start(2));
        let mut ids = in_flight.ids();
        ids.sort();
        assert_eq!(ids, [1, 2]);
        drop(a);
        assert_eq!(in_flight.ids(), [2]);
        // A write's future dropped half-way drops its mark with it.
        let cancelled = async move {
            let _b = b;
            std::future::pending::<()>().await
        };
        drop(cancelled);
        assert!(in_flight.ids().is_empty());
    }
}
