//! Copies one object between two stores with its headers, hashing the bytes it moves,
//! so that repairs, migrations and tier moves share one careful path.

use std::path::Path;
use std::time::{Duration, SystemTime};

use object_store::{ObjectMeta, ObjectStoreExt};

use super::file_writer::Next;
use super::hash::sha256_hex;
use super::object::{ObjectInfo, PutOptions, Written, same_etag};
use super::transfer::hash_file_blocking;
use super::{Store, TransferConfig, hash_bytes, hash_file};
use crate::error::{Error, Result};

impl Store {
    /// Copies the object `info` describes from this store to `to`. The copy carries the
    /// source's content type, cache control and metadata. Fails with `INTEGRITY` when
    /// the bytes read disagree with the source's recorded size or SHA-256, or when a
    /// source file changed while it was copied; the caller must then not trust `to`.
    /// A source file modified too recently for its mtime to tell (see
    /// [`ObjectInfo::racy_at`]) is hashed again after the copy.
    /// `temp_dir` holds downloads of large objects from non-file stores.
    pub async fn copy_to(
        &self,
        to: &Store,
        info: &ObjectInfo,
        cfg: &TransferConfig,
        temp_dir: &Path,
    ) -> Result<Written> {
        self.copy_to_with(to, info, Existing::Replace, cfg, temp_dir)
            .await
    }

    /// As [`Store::copy_to`]; with [`Existing::Refuse`] the copy fails with
    /// `ALREADY_EXISTS` rather than replace an object at its key in `to` (under the
    /// conditions `ifNotExists` has).
    pub async fn copy_to_with(
        &self,
        to: &Store,
        info: &ObjectInfo,
        existing: Existing,
        cfg: &TransferConfig,
        temp_dir: &Path,
    ) -> Result<Written> {
        // S3 and Azure listings carry no headers, metadata or SHA-256: an object
        // described by one is asked for them, or the copy would lose them.
        let headed;
        let info = match self.local_path().is_none() && info.sha256.is_none() {
            true => {
                headed = self.head(&info.key).await?;
                &headed
            }
            false => info,
        };
        let key = &info.key;
        let started = SystemTime::now();
        let opts = PutOptions {
            content_type: Some(info.content_type.clone()),
            cache_control: Some(info.cache_control.clone()),
            metadata: info.metadata.clone(),
            if_not_exists: existing == Existing::Refuse,
        };
        // Larger objects stream in parts, so memory per copy stays bounded by
        // `partSize × concurrency`.
        let written = if info.size <= cfg.copy_in_memory.min(cfg.multipart_threshold) {
            let data = self.get(key).await?;
            let sha256 = hash_bytes(&data).await?;
            check_read(info, data.len() as u64, &sha256)?;
            to.put_bytes(key, data, &opts, Some(sha256), cfg).await?
        } else if let Some(root) = self.local_path() {
            let file = root.join(key.as_str());
            let expected = hash_file(file.clone()).await?;
            check_read(info, expected.0, &expected.1)?;
            to.put_file(key, &file, &expected, &opts, cfg, None).await?
        } else {
            self.copy_through_file(to, info, &opts, cfg, temp_dir)
                .await?
        };
        // A copy onto the same object (another storage class) rewrote the source itself.
        if !self.may_share_objects(to) {
            self.check_unchanged(info, started, &written.sha256).await?;
        }
        Ok(written)
    }

    async fn copy_through_file(
        &self,
        to: &Store,
        info: &ObjectInfo,
        opts: &PutOptions,
        cfg: &TransferConfig,
        temp_dir: &Path,
    ) -> Result<Written> {
        let key = &info.key;
        tokio::fs::create_dir_all(temp_dir)
            .await
            .map_err(|e| Error::from_file_io(e, &temp_dir.display().to_string()))?;
        let temp = temp_dir.join(format!(
            "{TEMP_PREFIX}{}-{}",
            std::process::id(),
            sha256_hex(key.as_str().as_bytes())
        ));
        let result = async {
            // The download checks the bytes against the recorded SHA-256 as it writes.
            let (_, expected) = self.download(key, &temp, None, Next::ReadBack).await?;
            check_read(info, expected.0, &expected.1)?;
            to.put_file(key, &temp, &expected, opts, cfg, None).await
        }
        .await;
        let _ = tokio::fs::remove_file(&temp).await;
        result
    }

    /// A source may be rewritten behind stowage's back while it is copied (by another
    /// process, or another app server on the same bucket): afterwards it must still be
    /// the object the copy started from, or a deletion of the source would lose the
    /// newer bytes. An object must keep its size and ETag; a file its mtime and inode
    /// too, and a file whose mtime was too recent at `started` to show a rewrite must
    /// still hash to `sha256`.
    pub(crate) async fn check_unchanged(
        &self,
        info: &ObjectInfo,
        started: SystemTime,
        sha256: &str,
    ) -> Result<()> {
        let unchanged = match self.local_path() {
            Some(root) => {
                let file = root.join(info.key.as_str());
                let (judged, sha256) = racy_check(info, started, sha256);
                tokio::task::spawn_blocking(move || {
                    let meta = std::fs::metadata(&file)
                        .map_err(|e| Error::from_io(e, judged.key.as_str()))?;
                    file_still_is(&judged, &file, &meta, sha256.as_deref())
                })
                .await
                .map_err(|e| Error::task_failed("file-system", e))??
            }
            None => match self.inner.head(&Self::path(&info.key)).await {
                Ok(now) => still_is(info, &now, false),
                Err(e) => return Err(self.fail(e, &info.key).await),
            },
        };
        match unchanged {
            true => Ok(()),
            false => Err(changed(info)),
        }
    }

    /// Deletes the source of a verified copy, only while it is still the object the
    /// copy read (as [`Store::check_unchanged`] tells). A file is judged after it is taken
    /// from its name, so the window for a write to slip in between the check and the
    /// deletion is one of a write into an already open file, between two system calls;
    /// an object's check can only come just before its DELETE request.
    pub(crate) async fn delete_unchanged(
        &self,
        info: &ObjectInfo,
        started: SystemTime,
        sha256: &str,
    ) -> Result<()> {
        let Some(local) = &self.local else {
            self.check_unchanged(info, started, sha256).await?;
            return self.delete(&info.key).await;
        };
        match self.guard(&info.key).await {
            Err(Error::NotFound { .. }) => return Ok(()),
            guarded => guarded?,
        }
        let (judged, sha256) = racy_check(info, started, sha256);
        let unchanged = move |file: &Path, meta: &std::fs::Metadata| {
            file_still_is(&judged, file, meta, sha256.as_deref())
        };
        if !local.remove_if(&info.key, unchanged).await? {
            return Err(changed(info));
        }
        self.forget(&info.key).await
    }
}

fn changed(info: &ObjectInfo) -> Error {
    Error::Integrity(format!("{} changed while it was copied", info.key))
}

/// Whether `now`, the object's metadata read again, is still the object `info`
/// described: the same size and ETag, and for a file the same mtime (its ETag holds
/// its inode).
fn still_is(info: &ObjectInfo, now: &ObjectMeta, file: bool) -> bool {
    let replaced = matches!((&now.e_tag, &info.etag), (Some(a), Some(b)) if !same_etag(a, b));
    now.size == info.size && !replaced && (!file || super::mtime_ns(now) == info.mtime_ns())
}

/// Whether the file at `file`, whose metadata is `meta`, is still the file `info`
/// described ([`still_is`]), and, when its mtime was too recent to show a rewrite
/// (`sha256` given), still holds those bytes. For a blocking thread.
fn file_still_is(
    info: &ObjectInfo,
    file: &Path,
    meta: &std::fs::Metadata,
    sha256: Option<&str>,
) -> Result<bool> {
    let now = super::file_meta(&info.key, meta);
    Ok(still_is(info, &now, true)
        && match sha256 {
            Some(sha256) => hash_file_blocking(file)? == (info.size, sha256.to_owned()),
            None => true,
        })
}

/// What a file check on a blocking thread needs: `info`, and `sha256` when the file's
/// mtime was too recent at `started` to show a rewrite.
fn racy_check(
    info: &ObjectInfo,
    started: SystemTime,
    sha256: &str,
) -> (ObjectInfo, Option<String>) {
    (
        info.clone(),
        info.racy_at(started).then(|| sha256.to_owned()),
    )
}

/// What a copy does with an object that stands at its key in the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Existing {
    Replace,
    Refuse,
}

/// Names of the files copies pass through (and of their downloads' own temporary
/// files, which add a leading `.`).
const TEMP_PREFIX: &str = "stowage-copy-";

/// How long a temporary file goes untouched before it counts as abandoned: a live
/// copy writes its file, then reads it back for the upload, well within this.
const ABANDONED_AFTER: Duration = Duration::from_secs(2 * 86_400);

/// Removes the temporary files copies through `temp_dir` abandoned: a process killed
/// mid-copy leaves its file, as large as the object, and nothing else removes it.
pub fn sweep_abandoned(temp_dir: &Path) {
    let Ok(entries) = std::fs::read_dir(temp_dir) else {
        return;
    };
    let Some(cutoff) = SystemTime::now().checked_sub(ABANDONED_AFTER) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let ours = name
            .to_str()
            .is_some_and(|n| n.trim_start_matches('.').starts_with(TEMP_PREFIX));
        if ours
            && entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < cutoff)
        {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

fn check_read(info: &ObjectInfo, size: u64, sha256: &str) -> Result<()> {
    if size != info.size {
        return Err(Error::Integrity(format!(
            "{} changed while it was copied ({size} bytes read, {} listed)",
            info.key, info.size
        )));
    }
    match &info.sha256 {
        Some(recorded) if recorded != sha256 => Err(Error::Integrity(format!(
            "{}: bytes read hash to {sha256}, the store recorded {recorded}",
            info.key
        ))),
        _ => Ok(()),
    }
}
