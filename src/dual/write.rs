//! Writes and deletes. With one write side they go straight to it. In dual mode an
//! intent is committed to the journal first, both sides run concurrently, and the
//! intent is settled only when both succeeded; a side that failed leaves it queued
//! for `repair()`, and a crash anywhere leaves it there too.

use std::path::Path;

use bytes::Bytes;
use futures::future::join_all;

use super::Storage;
use super::events::{Event, EventKind};
use super::locks::KeyGuard;
use super::outcome::{self, Outcome, PutResult, Side};
use super::running::Running;
use crate::config::Mode;
use crate::error::{Error, Result};
use crate::journal::{Journal, RepairOp};
use crate::key::Key;
use crate::store::Store;
use crate::store::headers::{check_header_value, validate_metadata};
use crate::store::object::{PutOptions, Written};
use crate::store::progress::{Progress, ProgressFn, SharedProgress};

impl Storage {
    async fn put_options(&self, key: &Key, mut opts: PutOptions) -> Result<PutOptions> {
        validate_metadata(&opts.metadata)?;
        if let Some(content_type) = &opts.content_type {
            check_header_value("contentType", content_type)?;
        }
        if let Some(cache_control) = &opts.cache_control {
            check_header_value("cacheControl", cache_control)?;
        }
        self.check_names(key).await?;
        if opts.cache_control.is_none() {
            opts.cache_control = self.cache_control_override(key);
        }
        Ok(opts)
    }

    /// The app's `cacheControl` for the key's extension, if it set one.
    pub(super) fn cache_control_override(&self, key: &Key) -> Option<String> {
        key.extension()
            .and_then(|ext| self.cache_control.get(&ext).cloned())
    }

    /// A name one side cannot be written under is refused before any side runs or
    /// the journal takes an intent: a local folder's (staged as `name#n`, or held by
    /// a folder, or under a file), or one too long after a bucket's prefix. The other
    /// side would take the object and this one fail, for a repair that could never
    /// succeed. A single local side checks its name itself as it writes.
    pub(super) async fn check_names(&self, key: &Key) -> Result<()> {
        let sides = self.write_sides();
        for (_, store) in &sides {
            match store.local_path() {
                Some(_) if sides.len() > 1 => match store.guard_write(key).await {
                    // The name is fine; the side is down, and its write will be queued.
                    Err(e) if e.is_outage() => {}
                    checked => checked?,
                },
                Some(_) => {}
                None => store.check_length(key)?,
            }
        }
        Ok(())
    }

    pub async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let opts = self.put_options(key, opts).await?;
        let sha256 = crate::store::hash_bytes(&data).await?;
        let cfg = self.transfer;
        let intent = RepairOp::Put {
            sha256: sha256.clone(),
        };
        self.write_each(key, intent, opts.if_not_exists, |_, store| {
            let (data, opts, sha256) = (data.clone(), opts.clone(), sha256.clone());
            async move { store.put_bytes(key, data, &opts, Some(sha256), &cfg).await }
        })
        .await
    }

    /// [`Self::put`], reporting its progress: a buffer goes out whole, so its one
    /// report is its end.
    pub async fn put_reporting(
        &self,
        key: &Key,
        data: Bytes,
        opts: PutOptions,
        progress: Option<ProgressFn>,
    ) -> Result<PutResult> {
        let size = data.len() as u64;
        let result = self.put(key, data, opts).await?;
        let mut progress = Progress::new(progress, size);
        progress.advance(size);
        progress.finish();
        Ok(result)
    }

    /// Small files are read once and written as buffers. Large files are hashed first
    /// (the journal needs the SHA-256 before either side is touched) and then streamed
    /// to each side, which checks the bytes it sent against that hash.
    pub async fn put_file(
        &self,
        key: &Key,
        file: &Path,
        opts: PutOptions,
        progress: Option<ProgressFn>,
    ) -> Result<PutResult> {
        let opts = self.put_options(key, opts).await?;
        let shown = file.display().to_string();
        let meta = tokio::fs::metadata(file)
            .await
            .map_err(|e| Error::from_file_io(e, &shown))?;
        // A FIFO would block the read until a writer came, a device like /dev/zero
        // would never end, and a directory cannot be read at all.
        if !meta.is_file() {
            return Err(Error::config(
                "path",
                format!("{shown} is not a regular file"),
            ));
        }
        let size = meta.len();
        if size <= self.transfer.multipart_threshold {
            let data = Bytes::from(
                tokio::fs::read(file)
                    .await
                    .map_err(|e| Error::from_file_io(e, &shown))?,
            );
            return self.put_reporting(key, data, opts, progress).await;
        }
        let (size, sha256) = crate::store::hash_file(file.to_owned()).await?;
        let cfg = self.transfer;
        let sides = self.write_sides().len();
        // Each side reports its own bytes; the caller sees the file's bytes that have
        // reached every side, as a share of the file's size (not of twice it), at the
        // pace of one side's reports, not of each side's.
        let shared = progress.map(|report| SharedProgress::new(report, size, sides));
        let intent = RepairOp::Put {
            sha256: sha256.clone(),
        };
        self.write_each(key, intent, opts.if_not_exists, |i, store| {
            let opts = opts.clone();
            let expected = (size, sha256.clone());
            let progress = shared.as_ref().map(|shared| shared.part(i));
            async move {
                store
                    .put_file(key, file, &expected, &opts, &cfg, progress)
                    .await
            }
        })
        .await
    }

    /// Runs one write per side concurrently and folds the outcomes. An `exclusive`
    /// write (`ifNotExists`) is one that no side refused: see [`Self::undo_exclusive`].
    async fn write_each<'a, F, Fut>(
        &'a self,
        key: &Key,
        intent: RepairOp,
        exclusive: bool,
        write: F,
    ) -> Result<PutResult>
    where
        F: Fn(usize, &'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<Written>>,
    {
        let sides = self.write_sides();
        // An exclusive write journals nothing: its repair would overwrite whatever a
        // side that refused it holds. A side that fails undoes the others instead.
        let journalled = if exclusive { 0 } else { sides.len() };
        let (_lock, guard) = self.begin(key, intent, journalled).await?;
        if exclusive {
            self.level_queued(key).await?;
            self.check_absent_elsewhere(key).await?;
        }
        let results = join_all(
            sides
                .iter()
                .enumerate()
                .map(|(i, (side, store))| self.through_gate(*side, key.as_str(), write(i, store))),
        )
        .await;
        let outcomes: Vec<(Side, Result<Written>)> =
            sides.iter().map(|(s, _)| *s).zip(results).collect();
        for (side, result) in &outcomes {
            match result {
                Ok(w) => self.stats.wrote(*side, w.size),
                // A refused exclusive write is its answer, not a failure to alert on.
                Err(Error::AlreadyExists { .. }) if exclusive => {}
                Err(e) => self.failed(key, *side, e),
            }
        }
        if exclusive && outcomes.iter().any(|(_, r)| r.is_err()) {
            return Err(self.undo_exclusive(key, outcomes).await);
        }
        let mut folded = outcome::fold(key, outcomes);
        let journalled = guard.is_some();
        if let Some(intent) = guard {
            match &mut folded {
                Ok(result) if result.errors.is_empty() => self.settle(intent).await?,
                Ok(result) => {
                    self.queue(intent, &result.errors[0].error).await;
                    for i in 0..result.errors.len() {
                        let side = result.errors[i].side;
                        *result.outcome_mut(side) = Outcome::Queued;
                    }
                }
                // Neither side took the new bytes, but an older queued intent of this
                // key may still need replaying, so the row stays for repair to decide.
                Err(e) => self.queue(intent, e).await,
            }
        }
        let result = folded?;
        if !journalled {
            self.supersede_queued(key).await?;
        }
        self.drop_superseded_fallback(key).await;
        // The tier record is bookkeeping: the bytes are safely written either way.
        let _ = self
            .note_write(key, result.written.size, crate::tier::now_ms())
            .await;
        self.events
            .emit(|| Event::new(EventKind::Put, key.as_str()).size(result.written.size));
        Ok(result)
    }

    /// In cloud mode the local side is only a read fallback: a write of `key`
    /// supersedes its local copy there, which a cloud outage would otherwise serve in
    /// place of the newer bytes. The write itself succeeded, so a failure here is
    /// reported, not thrown.
    pub(super) async fn drop_superseded_fallback(&self, key: &Key) {
        if self.mode != Mode::Cloud {
            return;
        }
        let Some(local) = self.store(Side::Local) else {
            return;
        };
        // Most keys have no local copy: a stat, not a journal write, tells.
        let removed = match local.exists(key).await {
            Ok(false) => Ok(()),
            _ => local.delete(key).await,
        };
        if let Err(e) = removed {
            self.failed(key, Side::Local, &e);
        }
    }

    /// `ifNotExists` means what `exists()` says: a key that a read finds on a side this
    /// write does not touch (the local fallback in cloud mode, a colder tier) is taken.
    async fn check_absent_elsewhere(&self, key: &Key) -> Result<()> {
        for (side, store) in self.unwritten_sides() {
            if !self.outdated(key, side).await? && store.exists(key).await? {
                return Err(Error::AlreadyExists {
                    key: key.to_string(),
                });
            }
        }
        Ok(())
    }

    /// An exclusive write that a side refused (the key was there) or could not answer
    /// (it may be there) must not stand anywhere: the sides that took it delete it
    /// again, under the key's lock, and the call fails with `ALREADY_EXISTS` when a
    /// side refused, else with the first side's error. A side that cannot delete it
    /// keeps the bytes and reports a write failure event.
    async fn undo_exclusive(&self, key: &Key, outcomes: Vec<(Side, Result<Written>)>) -> Error {
        let mut errors = Vec::new();
        for (side, result) in outcomes {
            match result {
                Ok(_) => {
                    let store = self.store(side).expect("a write side");
                    if let Err(e) = store.delete(key).await {
                        self.failed(key, side, &e);
                    }
                }
                Err(e) => errors.push(e),
            }
        }
        let taken = errors
            .iter()
            .position(|e| matches!(e, Error::AlreadyExists { .. }))
            .unwrap_or(0);
        errors.swap_remove(taken)
    }

    /// Deletes from every configured side, so a fallback read cannot resurrect it. With
    /// two sides the delete is journalled like a dual write; a side that fails is
    /// retried by `repair()`, and the call succeeds when a side that takes writes did
    /// (in cloud mode the local fallback alone is not enough: the cloud still serves
    /// the object to every other reader).
    pub async fn delete(&self, key: &Key) -> Result<()> {
        let sides = self.read_sides();
        let journalled = sides
            .iter()
            .filter(|(s, _)| matches!(s, Side::Local | Side::Cloud))
            .count();
        // Too long for a bucket's prefix, the key names nothing there, and the journal
        // would keep an intent that no repair could carry out.
        for (_, store) in &sides {
            store.check_length(key)?;
        }
        let written = self.written_sides();
        let (_lock, guard) = self.begin(key, RepairOp::Delete, journalled).await?;
        let results = join_all(
            sides
                .iter()
                .map(|(side, s)| self.through_gate(*side, key.as_str(), s.delete(key))),
        )
        .await;
        let (mut first_error, mut taken) = (None, false);
        for ((side, _), result) in sides.iter().zip(results) {
            match result {
                Ok(()) => {
                    self.stats.deleted(*side);
                    taken |= written.contains(side);
                }
                Err(e) => {
                    self.failed(key, *side, &e);
                    // A colder tier's copy, once marked, is deleted by the next repair
                    // or tier cycle, and reads skip it until then.
                    if !self.note_outdated(key, *side).await {
                        first_error.get_or_insert(e);
                    }
                }
            }
        }
        let journalled = guard.is_some();
        match (&first_error, guard) {
            (None, Some(intent)) => self.settle(intent).await?,
            (Some(e), Some(intent)) => self.queue(intent, e).await,
            _ => {}
        }
        if let Some(e) = first_error.filter(|_| !taken || !journalled) {
            return Err(e);
        }
        let _ = self.note_delete(key).await;
        self.events
            .emit(|| Event::new(EventKind::Delete, key.as_str()));
        Ok(())
    }

    pub(super) fn failed(&self, key: &Key, side: Side, error: &Error) {
        self.stats.failed(side);
        self.events.emit(|| {
            Event::new(EventKind::write_failed(side), key.as_str())
                .side(side)
                .error(error)
        });
    }
}

/// A journalled dual write in progress: its row in the journal, and what it asked for.
pub(super) struct Intent {
    pub id: i64,
    key: String,
    op: RepairOp,
    /// Dropped after the row is settled or queued, or with the write's future.
    running: Running,
}

impl Intent {
    /// The SHA-256 of the bytes a put intends.
    pub(super) fn put_sha256(&self) -> Option<&str> {
        match &self.op {
            RepairOp::Put { sha256 } if !sha256.is_empty() => Some(sha256),
            _ => None,
        }
    }

    /// The SHA-256 of the bytes a rename moves.
    pub(super) fn moved_sha256(&self) -> Option<&str> {
        match &self.op {
            RepairOp::Renamed { sha256, .. } => Some(sha256),
            _ => None,
        }
    }
}

impl Storage {
    /// Takes the key's lock, held by the caller until its write is settled or queued
    /// and its tier noted, so no repair, migration or tier move of the key interleaves
    /// with it (a migration's or tier move's deletion of a source it copied before the
    /// write would delete the written bytes). Journals the intent when the write
    /// touches two sides; single-side writes need none.
    async fn begin(
        &self,
        key: &Key,
        op: RepairOp,
        sides: usize,
    ) -> Result<(KeyGuard<'_>, Option<Intent>)> {
        let lock = self.locks.lock(key.as_str()).await?;
        if self.journal.is_none() || sides < 2 {
            return Ok((lock, None));
        }
        Ok((lock, Some(self.record(key, op).await?)))
    }

    /// Where intents go: only a manager with a journal records them.
    fn intents_journal(&self) -> &Journal {
        self.journal
            .as_ref()
            .expect("intents exist only with a journal")
    }

    /// Journals `op` for `key`, whose lock the caller holds.
    pub(super) async fn record(&self, key: &Key, op: RepairOp) -> Result<Intent> {
        let id = self
            .intents_journal()
            .begin_write(key.as_str(), op.clone())
            .await?;
        Ok(Intent {
            id,
            key: key.to_string(),
            op,
            running: self.in_flight.start(id),
        })
    }

    /// Both sides did what the intent asked.
    pub(super) async fn settle(&self, intent: Intent) -> Result<()> {
        self.queued.settle(&intent.key, intent.id).await
    }

    /// A side failed: the row stays for `repair()`, and reads skip that side meanwhile.
    pub(super) async fn queue(&self, intent: Intent, error: &Error) {
        let Intent {
            id,
            key,
            op,
            running,
        } = intent;
        let _ = self.queued.queue(&key, id, op, error.code()).await;
        drop(running);
    }
}
