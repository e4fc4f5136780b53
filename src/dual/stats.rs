//! Counts and bytes per side, for `storage.stats()`. Relaxed atomics: these are
//! metrics, not synchronisation.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::Side;

#[derive(Debug, Default)]
struct SideCounters {
    writes: AtomicU64,
    bytes_written: AtomicU64,
    reads: AtomicU64,
    bytes_read: AtomicU64,
    deletes: AtomicU64,
    failures: AtomicU64,
}

#[derive(Debug, Default)]
pub struct Stats {
    sides: [SideCounters; 4],
    repaired: AtomicU64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SideStats {
    pub writes: u64,
    pub bytes_written: u64,
    pub reads: u64,
    pub bytes_read: u64,
    pub deletes: u64,
    pub failures: u64,
}

impl Stats {
    fn side(&self, side: Side) -> &SideCounters {
        &self.sides[side as usize]
    }

    pub fn wrote(&self, side: Side, bytes: u64) {
        self.side(side).writes.fetch_add(1, Relaxed);
        self.side(side).bytes_written.fetch_add(bytes, Relaxed);
    }

    pub fn read(&self, side: Side, bytes: u64) {
        self.side(side).reads.fetch_add(1, Relaxed);
        self.read_bytes(side, bytes);
    }

    /// Bytes of a read counted already, as a stream hands them on.
    pub fn read_bytes(&self, side: Side, bytes: u64) {
        self.side(side).bytes_read.fetch_add(bytes, Relaxed);
    }

    pub fn deleted(&self, side: Side) {
        self.side(side).deletes.fetch_add(1, Relaxed);
    }

    pub fn failed(&self, side: Side) {
        self.side(side).failures.fetch_add(1, Relaxed);
    }

    pub fn repaired(&self) {
        self.repaired.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self, side: Side) -> SideStats {
        let c = self.side(side);
        SideStats {
            writes: c.writes.load(Relaxed),
            bytes_written: c.bytes_written.load(Relaxed),
            reads: c.reads.load(Relaxed),
            bytes_read: c.bytes_read.load(Relaxed),
            deletes: c.deletes.load(Relaxed),
            failures: c.failures.load(Relaxed),
        }
    }

    pub fn repaired_total(&self) -> u64 {
        self.repaired.load(Relaxed)
    }
}
