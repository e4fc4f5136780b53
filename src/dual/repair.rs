//! `repair()`: replays the dual-write journal until both sides hold the same bytes,
//! checked by SHA-256. Safe to run while the app writes: each key is repaired under
//! the same per-key lock the writes take, and always towards its newest intent.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use super::events::{Event, EventKind};
use super::{Side, Storage};
use crate::error::{Error, Result};
use crate::journal::{Journal, RepairOp};
use crate::key::Key;
use crate::store::Store;
use crate::store::hash::StreamHasher;

/// Receives `(keys_done, keys_total)`.
pub type RepairProgress = Arc<dyn Fn(u64, u64) + Send + Sync>;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RepairReport {
    pub repaired: u64,
    pub failed: u64,
    /// Keys still pending afterwards (failures, and writes that arrived meanwhile).
    pub remaining: u64,
}

const BATCH: usize = 256;

/// What a replay found under the key's lock.
enum Replayed {
    Intent,
    /// No intent left: a write, or another manager's repair, settled it meanwhile.
    Nothing,
}

impl Storage {
    fn in_flight(&self) -> Vec<i64> {
        self.in_flight.ids()
    }

    /// Keys whose sides may differ, not counting writes still running.
    pub async fn pending_repairs(&self) -> Result<u64> {
        match &self.journal {
            Some(j) => j.pending_repairs(self.in_flight()).await,
            None => Ok(0),
        }
    }

    /// One pass over the journal, then over the colder tiers' outdated copies (the
    /// same outage left them, in any mode).
    pub async fn repair(&self, progress: Option<RepairProgress>) -> Result<RepairReport> {
        let mut report = self.replay_intents(progress).await?;
        if self.tiers().is_some() {
            self.clear_outdated_copies().await?;
        }
        report.remaining = self.pending_repairs().await?;
        Ok(report)
    }

    /// Keys are repaired `concurrency` at a time; a key that cannot be repaired now
    /// (its side is still down) stays for the next pass.
    async fn replay_intents(&self, progress: Option<RepairProgress>) -> Result<RepairReport> {
        let (Some(journal), Some(_), Some(_)) = (&self.journal, &self.local, &self.cloud) else {
            return Ok(RepairReport::default());
        };
        let total = self.pending_repairs().await?;
        let mut report = RepairReport::default();
        let (mut after, mut handled) = (0, 0);
        loop {
            let rows = journal.repairs(after, BATCH, self.in_flight()).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            // Outcomes are counted as they come, so progress moves with each key.
            let mut outcomes = futures::stream::iter(rows)
                .map(|row| async move {
                    let outcome = self.repair_key(journal, &row.key).await;
                    (row, outcome)
                })
                .buffer_unordered(self.transfer.concurrency);
            while let Some((row, outcome)) = outcomes.next().await {
                match outcome {
                    Ok(Replayed::Intent) => report.repaired += 1,
                    // Another manager on the journal got there first: its report counts it.
                    Ok(Replayed::Nothing) => {}
                    Err(e) => {
                        report.failed += 1;
                        let _ = journal.note_failure(row.id, e.code()).await;
                        self.events.emit(|| {
                            Event::new(EventKind::RepairFailed, row.key.as_str()).error(&e)
                        });
                    }
                }
                handled += 1;
                if let Some(p) = &progress {
                    p(handled, total.max(handled));
                }
            }
        }
        Ok(report)
    }

    /// Repairs every `interval` while anything is pending, until the task is dropped.
    pub async fn repair_forever(self: Arc<Self>, interval: Duration) {
        loop {
            tokio::time::sleep(interval).await;
            if self.pending_repairs().await.unwrap_or(0) > 0 {
                let _ = self.repair(None).await;
            }
        }
    }

    /// Replays `key`'s newest intent, read under its lock: the pass read its row
    /// before, and a write since then settled it (nothing left to do) or queued a
    /// newer intent, which replaying the old one would undo.
    async fn repair_key(&self, journal: &Journal, key: &str) -> Result<Replayed> {
        let key = Key::parse(key)?;
        let _lock = self.locks.lock(key.as_str()).await?;
        self.replay(journal, &key).await
    }

    /// An exclusive write (`ifNotExists`) of a key whose earlier write or delete waits
    /// for a repair first finishes that repair, under the lock the write holds: until
    /// then a side may still hold bytes that reads skip, and refuse the write.
    pub(super) async fn level_queued(&self, key: &Key) -> Result<()> {
        match (self.queued_journal(key).await?, &self.local, &self.cloud) {
            (Some(journal), Some(_), Some(_)) => self.replay(journal, key).await.map(drop),
            _ => Ok(()),
        }
    }

    /// A write that journals no intent (one write side, or `ifNotExists`) replaces
    /// what a queued intent of `key` asked for. Left queued, a delete that the local
    /// fallback missed (or a dual-mode manager's on the same journal) hid the new
    /// bytes from reads, and its repair deleted them. The caller holds the key's lock.
    pub(super) async fn supersede_queued(&self, key: &Key) -> Result<()> {
        let Some(journal) = self.queued_journal(key).await? else {
            return Ok(());
        };
        match journal.newest_intent(key.as_str()).await? {
            Some(row) => self.queued.settle(key.as_str(), row.id).await,
            None => self.queued.remove(key.as_str()).await,
        }
    }

    /// The journal, when it holds a queued intent of `key`.
    async fn queued_journal(&self, key: &Key) -> Result<Option<&Journal>> {
        match &self.journal {
            Some(journal) if self.queued.intent(key.as_str()).await?.is_some() => Ok(Some(journal)),
            _ => Ok(None),
        }
    }

    /// Replays `key`'s newest intent; the caller holds the key's lock.
    async fn replay(&self, journal: &Journal, key: &Key) -> Result<Replayed> {
        let Some(row) = journal.newest_intent(key.as_str()).await? else {
            self.queued.remove(key.as_str()).await?;
            return Ok(Replayed::Nothing);
        };
        let (local, cloud) = (
            self.local.as_ref().expect("checked"),
            self.cloud.as_ref().expect("checked"),
        );
        match &row.op {
            // From the colder tiers too, as the delete itself: one down then kept its
            // copy, which reads found again once the repair settled the delete.
            RepairOp::Delete => {
                for (_, store) in self.read_sides() {
                    store.delete(key).await?;
                }
                // A delete that failed kept the key's tier record, which `tierOf`
                // and `tierStats` still counted after the repair.
                self.note_delete(key).await?;
            }
            RepairOp::Put { sha256 } => self.converge(key, sha256, local, cloud).await?,
            RepairOp::Renamed { to, sha256 } => {
                self.finish_rename(key, to, sha256, local, cloud).await?
            }
            RepairOp::Moved { sha256, missed } => self.finish_move(key, sha256, missed).await?,
        }
        self.queued.settle(key.as_str(), row.id).await?;
        // Repairs always try the cloud; one that reached it ends an outage that held
        // dual mode's calls off it.
        self.note_cloud_answer(key.as_str(), &Ok(()));
        self.stats.repaired();
        self.events
            .emit(|| Event::new(EventKind::Repaired, key.as_str()));
        Ok(Replayed::Intent)
    }

    /// Ends a rename of `key` to `to` that a crash interrupted: `to` holding the moved
    /// bytes on a side means the move took place there, so the old name goes from
    /// every side where it still holds them (other bytes there were written since,
    /// by the app behind stowage's back); otherwise it never did, and `key` is
    /// levelled as a write of its bytes.
    async fn finish_rename(
        &self,
        key: &Key,
        to: &str,
        sha256: &str,
        local: &Store,
        cloud: &Store,
    ) -> Result<()> {
        let to = Key::parse(to)?;
        let (l, c) = futures::try_join!(digest(local, &to), digest(cloud, &to))?;
        if ![l, c].iter().flatten().any(|held| held == sha256) {
            return self.converge(key, sha256, local, cloud).await;
        }
        for store in [local, cloud] {
            if digest(store, key).await?.as_deref() == Some(sha256) {
                store.delete(key).await?;
            }
        }
        Ok(())
    }

    /// Ends a rename that took place on one write side and missed the other,
    /// `missed`: the old name goes from every side but the one that moved (the missed
    /// side's copy is stale, whatever its bytes, and so is a colder tier's), and from
    /// that one where it still holds the moved bytes.
    async fn finish_move(&self, key: &Key, sha256: &str, missed: &str) -> Result<()> {
        for (side, store) in self.read_sides() {
            let moved_here = matches!(side, Side::Local | Side::Cloud) && side.as_str() != missed;
            if !moved_here || digest(store, key).await?.as_deref() == Some(sha256) {
                store.delete(key).await?;
            }
        }
        Ok(())
    }

    /// Makes both sides hold the same object: the side holding the intended bytes wins;
    /// if neither does (the write never completed), the local side wins, so the two
    /// still agree.
    async fn converge(
        &self,
        key: &Key,
        intended: &str,
        local: &Store,
        cloud: &Store,
    ) -> Result<()> {
        let (l, mut c) = futures::try_join!(held(local, key), held(cloud, key))?;
        let holds_intended = |h: &Option<Held>| h.as_ref().is_some_and(|h| h.sha256 == intended);
        // Both claiming the intended object is the one case no copy checks afterwards.
        // A server killed mid-upload (s3s-fs) can record the new hash over old bytes
        // of the same size, so the cloud's bytes are read before a write that failed
        // is taken as landed there.
        if l == c && holds_intended(&c) && !bytes_match_record(cloud, key).await? {
            c = None;
        }
        if l == c {
            return Ok(());
        }
        let from_local = holds_intended(&l) || (!holds_intended(&c) && l.is_some());
        let (from, to, expected, side) = if from_local {
            (local, cloud, l, Side::Cloud)
        } else {
            (cloud, local, c, Side::Local)
        };
        let expected = expected.expect("the source side holds the object").sha256;
        let info = from.head(key).await?;
        let written = from
            .copy_to(to, &info, &self.transfer, &self.temp_dir())
            .await?
            .sha256;
        if written != expected {
            let err = Error::Integrity(format!(
                "{key}: copied bytes hash to {written}, the source holds {expected}"
            ));
            self.events.emit(|| {
                Event::new(EventKind::IntegrityFailed, key.as_str())
                    .side(side)
                    .error(&err)
            });
            return Err(err);
        }
        Ok(())
    }
}

/// What a side holds for a key. The size backs the recorded SHA-256 up: a server
/// killed while completing an upload (s3s-fs) can leave the new hash on the old bytes,
/// which a repair then took for a copy already made.
#[derive(Debug, PartialEq, Eq)]
struct Held {
    sha256: String,
    size: u64,
}

async fn held(store: &Store, key: &Key) -> Result<Option<Held>> {
    match store.head(key).await {
        Ok(info) => Ok(Some(Held {
            sha256: match info.sha256 {
                Some(sha256) => sha256,
                None => hash_of(store, key).await?,
            },
            size: info.size,
        })),
        Err(Error::NotFound { .. }) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The SHA-256 a side holds for `key` (`None` when absent), hashing the bytes when the
/// store has no recorded hash (files written before stowage).
pub async fn digest(store: &Store, key: &Key) -> Result<Option<String>> {
    Ok(held(store, key).await?.map(|h| h.sha256))
}

/// Whether `key`'s bytes hash to the SHA-256 recorded with them (a read checks that).
async fn bytes_match_record(store: &Store, key: &Key) -> Result<bool> {
    match hash_of(store, key).await {
        Ok(_) => Ok(true),
        Err(Error::Integrity(_)) => Ok(false),
        Err(e) => Err(e),
    }
}

async fn hash_of(store: &Store, key: &Key) -> Result<String> {
    let mut hasher = StreamHasher::default();
    let (_, mut stream) = store.stream(key, None).await?;
    while let Some(chunk) = stream.next().await {
        hasher.update(&chunk?);
    }
    Ok(hasher.finish())
}
