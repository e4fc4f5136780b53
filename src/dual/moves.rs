//! `copy` and `rename`. In dual mode they are writes like any other: the target's
//! intent is journalled before either side is touched, a side that fails is queued
//! for `repair()` and the call succeeds when one side did it, as a dual `put` does.
//! A rename also journals its source as `Renamed` before the sides run: replayed after
//! a crash mid-move, it deletes the old name where it still holds the moved bytes once
//! the new name holds them on a side, and keeps it where no side moved. Until then
//! reads miss the old name wherever the new one holds its bytes. A rename that landed
//! on one side only knows it took place, and queues that instead (`Moved`).

use futures::future::join_all;

use super::events::{Event, EventKind};
use super::repair::digest;
use super::write::Intent;
use super::{Side, Storage};
use crate::error::{Error, Result};
use crate::journal::RepairOp;
use crate::key::Key;
use crate::store::Store;
use crate::store::object::ObjectInfo;

impl Storage {
    pub async fn copy(&self, from: &Key, to: &Key) -> Result<(Side, ObjectInfo)> {
        self.relocate(from, to, false, |s| s.copy(from, to)).await
    }

    pub async fn rename(&self, from: &Key, to: &Key) -> Result<(Side, ObjectInfo)> {
        self.relocate(from, to, true, |s| s.rename(from, to)).await
    }

    /// Runs `op` on each write side that holds `from`; `moves` when it removes `from`.
    async fn relocate<'a, F, Fut>(
        &'a self,
        from: &Key,
        to: &Key,
        moves: bool,
        op: F,
    ) -> Result<(Side, ObjectInfo)>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<ObjectInfo>>,
    {
        // Onto itself nothing moves, as with POSIX `rename`: the object as reads find it.
        if from == to {
            return self.head(from).await;
        }
        // The target must be a name the local side can hold: where its source is
        // missing, the repair stages a write of it there.
        self.check_names(to).await?;
        // Both keys are written, so both are locked, as `put` locks its key.
        let _locks = self.locks.lock_all([from.as_str(), to.as_str()]).await?;
        self.level_source(from).await?;
        // Writes land in the hot tier, so a source in a colder one comes back first.
        self.bring_hot(from).await?;
        self.bring_to_write_side(from).await?;
        let sides = self.write_sides();
        let journalled = self.journal.is_some() && sides.len() > 1;
        let (target, source) = match journalled {
            true => self.record_move(from, to, moves).await?,
            false => (None, None),
        };
        let results = join_all(sides.iter().map(|(_, store)| op(store))).await;
        self.count_moved(&sides, &results, moves);
        let sides = sides.into_iter().map(|(side, _)| side);
        let moved = self
            .fold(from, to, target, source, sides.zip(results))
            .await?;
        if !journalled {
            self.supersede_queued(to).await?;
        }
        self.drop_superseded_fallback(to).await;
        self.events
            .emit(|| Event::new(EventKind::Put, to.as_str()).size(moved.1.size));
        if moves {
            self.events
                .emit(|| Event::new(EventKind::Delete, from.as_str()));
            self.forget_other_copies(from).await;
        }
        // The tier record is bookkeeping: the bytes are safely moved either way.
        let _ = self.note_relocated(from, to, moved.1.size, moves).await;
        Ok(moved)
    }

    /// A source whose write waits for a repair is repaired first: its stale side would
    /// move the bytes that write replaced, and with both sides reporting the move done
    /// nothing would be queued to level the new name. A side still down is left to
    /// the move, which queues it as it queues any side that fails.
    async fn level_source(&self, from: &Key) -> Result<()> {
        match self.level_queued(from).await {
            Err(e) if !e.is_outage() => Err(e),
            _ => Ok(()),
        }
    }

    /// With one write side (local or cloud mode), a source that only the other side
    /// holds (a legacy file in the local fallback of cloud mode) is first copied to
    /// the write side, verified, as a migration would: reads and listings show it,
    /// and a copy or rename of it failed `NOT_FOUND`.
    async fn bring_to_write_side(&self, from: &Key) -> Result<()> {
        let [(_, write)] = self.write_sides()[..] else {
            return Ok(());
        };
        if write.exists(from).await? {
            return Ok(());
        }
        // Colder tiers are `bring_hot`'s.
        for (other, store) in self.unwritten_sides() {
            if !matches!(other, Side::Local | Side::Cloud) {
                continue;
            }
            let info = match store.head(from).await {
                Ok(info) => info,
                Err(Error::NotFound { .. }) => continue,
                Err(e) => return Err(e),
            };
            store
                .copy_to(write, &info, &self.transfer(), &self.temp_dir())
                .await?;
            return Ok(());
        }
        Ok(())
    }

    /// A renamed source is gone from every side reads look at, as a delete removes it
    /// from all of them: a colder tier kept a copy with `deleteAfterMove: false`, the
    /// fallback side kept a source brought over from it, and reads found the old name
    /// again. The move took place, so a side that fails is reported, not thrown.
    async fn forget_other_copies(&self, from: &Key) {
        for (side, store) in self.unwritten_sides() {
            if let Err(e) = store.delete(from).await {
                self.failed(from, side, &e);
                self.note_outdated(from, side).await;
            }
        }
    }

    /// Each side that made the copy wrote its target, and for a rename deleted its source.
    fn count_moved(&self, sides: &[(Side, &Store)], results: &[Result<ObjectInfo>], moves: bool) {
        for ((side, _), result) in sides.iter().zip(results) {
            if let Ok(info) = result {
                self.stats.wrote(*side, info.size);
                if moves {
                    self.stats.deleted(*side);
                }
            }
        }
    }

    /// Journals the target's intent and, for a rename, the source's. Both carry the
    /// source's SHA-256, hashed from its bytes when no side recorded one (files from
    /// before stowage), so a replay can tell whether the move took place.
    async fn record_move(
        &self,
        from: &Key,
        to: &Key,
        moves: bool,
    ) -> Result<(Option<Intent>, Option<Intent>)> {
        let (side, source) = self.head(from).await?;
        let sha256 = match source.sha256 {
            Some(sha256) => sha256,
            None => {
                let store = self.store(side).expect("the side read from");
                digest(store, from).await?.unwrap_or_default()
            }
        };
        let put = RepairOp::Put {
            sha256: sha256.clone(),
        };
        let target = self.record(to, put).await?;
        if !moves {
            return Ok((Some(target), None));
        }
        let to = to.to_string();
        match self.record(from, RepairOp::Renamed { to, sha256 }).await {
            Ok(source) => Ok((Some(target), Some(source))),
            Err(e) => {
                // Nothing moved: the target's row stays for repair to level it.
                self.queue(target, &e).await;
                Err(e)
            }
        }
    }

    /// The call's outcome from each side's, with the journalled intents (`target`, and
    /// `source` for a rename) settled, or queued where a side missed the move.
    async fn fold(
        &self,
        from: &Key,
        to: &Key,
        target: Option<Intent>,
        source: Option<Intent>,
        results: impl Iterator<Item = (Side, Result<ObjectInfo>)>,
    ) -> Result<(Side, ObjectInfo)> {
        let mut done = None;
        let mut missed = Vec::new();
        let intended = target.as_ref().and_then(Intent::put_sha256);
        for (side, result) in results {
            match result {
                // A side back from an outage between the source's repair and the move
                // moved the bytes the source's queued write replaced.
                Ok(info) if stale(intended, &info) => {
                    let e = Error::Integrity(format!(
                        "{to}: the {} side moved bytes an earlier write replaced",
                        side.as_str()
                    ));
                    self.failed(to, side, &e);
                    missed.push((side, e));
                }
                Ok(info) => {
                    done.get_or_insert((side, info));
                }
                // This side never had the source: the other side's result is the
                // move, and the journal brings this side level.
                Err(e @ Error::NotFound { .. }) => missed.push((side, e)),
                Err(e) => {
                    self.failed(to, side, &e);
                    missed.push((side, e));
                }
            }
        }
        let Some(target) = target else {
            return outcome(from, done, missed);
        };
        match (&done, missed.first()) {
            (Some(_), None) => {
                self.settle(target).await?;
                if let Some(source) = source {
                    self.settle(source).await?;
                }
            }
            (Some(_), Some((side, first))) => {
                self.queue(target, first).await;
                if let Some(source) = source {
                    self.queue_moved(from, source, *side, first).await;
                }
            }
            // Nothing moved, but older queued intents of either key may still need
            // replaying.
            (None, Some((_, first))) => {
                self.queue(target, first).await;
                if let Some(source) = source {
                    self.queue(source, first).await;
                }
            }
            (None, None) => unreachable!("a write side ran"),
        }
        match done {
            Some(done) => Ok(done),
            None => outcome(from, None, missed),
        }
    }

    /// A rename that took place on one side and missed the other (`missed`): its
    /// source's intent becomes `Moved`, which tells the repair the move happened.
    /// Left a `Renamed`, the replay judged that from the new name, which by then may
    /// have been renamed, deleted or rewritten, and brought the old name back; and it
    /// kept the missed side's copy when a queued write had left other bytes there.
    /// Should the journal refuse the row, the `Renamed` one still stands.
    async fn queue_moved(&self, from: &Key, source: Intent, missed: Side, error: &Error) {
        let Some(sha256) = source.moved_sha256().map(str::to_owned) else {
            return self.queue(source, error).await;
        };
        let missed = missed.as_str().to_owned();
        let moved = self.record(from, RepairOp::Moved { sha256, missed }).await;
        self.queue(source, error).await;
        if let Ok(moved) = moved {
            self.queue(moved, error).await;
        }
    }
}

fn stale(intended: Option<&str>, moved: &ObjectInfo) -> bool {
    matches!((intended, &moved.sha256), (Some(intended), Some(held)) if held != intended)
}

/// Without a journal: the first side's success, else its first real error, else
/// `NOT_FOUND`.
fn outcome(
    from: &Key,
    done: Option<(Side, ObjectInfo)>,
    missed: Vec<(Side, Error)>,
) -> Result<(Side, ObjectInfo)> {
    let failure = missed
        .into_iter()
        .map(|(_, e)| e)
        .find(|e| !matches!(e, Error::NotFound { .. }));
    match (failure, done) {
        (Some(e), _) => Err(e),
        (None, Some(done)) => Ok(done),
        (None, None) => Err(Error::NotFound {
            key: from.to_string(),
        }),
    }
}
