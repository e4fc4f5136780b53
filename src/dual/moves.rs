//! `copy` and `rename`. In dual mode they are writes like any other: the target's
//! intent is journalled before either side is touched, a side that fails is queued
//! for `repair()` and the call succeeds when one side did it, as a dual `put` does.
//! A rename that landed on one side only also journals the deletion of its source,
//! so the repair finishes the move on the other side.
//!
//! The source's deletion is journalled after the sides ran, never before: replayed
//! after a crash that came before the move, it would delete the only copy. A crash
//! in between can leave the old name on one side; no bytes are lost either way.

use futures::future::join_all;

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
        // A local copy is staged as a `put` is; a local rename stages nothing.
        if !moves {
            self.check_local_name(to)?;
        }
        // Both keys are written, so both are locked, as `put` locks its key.
        let _locks = self.locks.lock_all([from.as_str(), to.as_str()]).await;
        // Writes land in the hot tier, so a source in a colder one comes back first.
        self.bring_hot(from).await?;
        let sides = self.write_sides();
        // Onto itself nothing moves.
        let journalled = self.journal.is_some() && sides.len() > 1 && from != to;
        let copy = match journalled {
            true => {
                let (_, source) = self.head(from).await?;
                let sha256 = source.sha256.unwrap_or_default();
                Some(self.record(to, RepairOp::Put { sha256 }).await?)
            }
            false => None,
        };
        let results = join_all(sides.iter().map(|(_, store)| op(store))).await;
        let sides = sides.into_iter().map(|(side, _)| side);
        let moved = self.fold(from, to, moves, copy, sides.zip(results)).await?;
        // The tier record is bookkeeping: the bytes are safely moved either way.
        let _ = self.note_relocated(from, to, moved.1.size, moves).await;
        Ok(moved)
    }

    /// The call's outcome from each side's, with the target's intent (`copy`, when
    /// journalled) settled or queued, and a rename's source deletion queued too where
    /// a side missed the move.
    async fn fold(
        &self,
        from: &Key,
        to: &Key,
        moves: bool,
        copy: Option<Intent>,
        results: impl Iterator<Item = (Side, Result<ObjectInfo>)>,
    ) -> Result<(Side, ObjectInfo)> {
        let mut done = None;
        let mut missed = Vec::new();
        for (side, result) in results {
            match result {
                Ok(info) => {
                    done.get_or_insert((side, info));
                }
                // This side never had the source: the other side's result is the
                // move, and the journal brings this side level.
                Err(Error::NotFound { key }) => missed.push(Error::NotFound { key }),
                Err(e) => {
                    self.failed(to, side, &e);
                    missed.push(e);
                }
            }
        }
        let Some(copy) = copy else {
            return outcome(from, done, missed);
        };
        match (&done, missed.first()) {
            (Some(_), None) => self.settle(copy).await?,
            (Some(_), Some(first)) => {
                self.queue(copy, first).await;
                if moves {
                    let delete = self.record(from, RepairOp::Delete).await?;
                    self.queue(delete, first).await;
                }
            }
            // Nothing moved, but an older queued intent of `to` may still need replaying.
            (None, Some(first)) => self.queue(copy, first).await,
            (None, None) => unreachable!("a write side ran"),
        }
        match done {
            Some(done) => Ok(done),
            None => outcome(from, None, missed),
        }
    }
}

/// Without a journal: the first side's success, else its first real error, else
/// `NOT_FOUND`.
fn outcome(
    from: &Key,
    done: Option<(Side, ObjectInfo)>,
    missed: Vec<Error>,
) -> Result<(Side, ObjectInfo)> {
    let failure = missed
        .into_iter()
        .find(|e| !matches!(e, Error::NotFound { .. }));
    match (failure, done) {
        (Some(e), _) => Err(e),
        (None, Some(done)) => Ok(done),
        (None, None) => Err(Error::NotFound {
            key: from.to_string(),
        }),
    }
}
