//! The storage manager: routes writes to the sides the mode names (both at once in
//! dual mode) and reads to the preferred side, falling back to the other one on
//! `NOT_FOUND` or an outage.

mod outcome;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use futures::stream::BoxStream;

use crate::config::{Config, Mode, ReadPreference};
use crate::error::{Error, Result};
use crate::journal::Journal;
use crate::key::Key;
use crate::store::headers::validate_metadata;
use crate::store::object::{ObjectInfo, Page, PutOptions};
use crate::store::options::StoreOptions;
use crate::store::progress::ProgressFn;
use crate::store::{JournalSource, STATE_DIR, Store, TransferConfig};
pub use outcome::{Outcome, PutResult, Side, SideError};

#[derive(Debug, Clone)]
pub struct Storage {
    local: Option<Store>,
    cloud: Option<Store>,
    mode: Mode,
    read: ReadPreference,
    transfer: TransferConfig,
    cache_control: BTreeMap<String, String>,
    journal: Option<Journal>,
}

impl Storage {
    /// Opens both sides. File stores create their folder; nothing goes over the network.
    pub fn open(config: &Config) -> Result<Storage> {
        config.validate()?;
        let journal = match (&config.journal, &config.local) {
            (Some(path), _) => Some(Journal::open(path)?),
            (None, Some(local)) => {
                let root = crate::store::parse_store_url(local, "local")?
                    .to_file_path()
                    .map_err(|_| Error::config("local", "must be a path or a file:// URL"))?;
                Some(Journal::open(&root.join(STATE_DIR).join("journal.db"))?)
            }
            (None, None) => None,
        };
        let local_root = config
            .local
            .as_deref()
            .map(|l| crate::store::parse_store_url(l, "local"))
            .transpose()?;
        let source = JournalSource {
            shared: journal
                .clone()
                .zip(local_root.and_then(|u| u.to_file_path().ok()))
                .map(|(j, root)| (root, j)),
        };
        let local =
            match &config.local {
                Some(url) if url.starts_with("file://") || !url.contains("://") => Some(
                    Store::open(url, "local", &StoreOptions::default(), &source)?,
                ),
                Some(_) => return Err(Error::config("local", "must be a path or a file:// URL")),
                None => None,
            };
        let cloud = config
            .cloud
            .as_deref()
            .map(|url| Store::open(url, "cloud", &config.cloud_options, &source))
            .transpose()?;
        Ok(Storage {
            local,
            cloud,
            mode: config.mode()?,
            read: config.read_preference()?,
            transfer: config.transfer()?,
            cache_control: config
                .cache_control
                .iter()
                .map(|(ext, v)| (ext.trim_start_matches('.').to_ascii_lowercase(), v.clone()))
                .collect(),
            journal,
        })
    }

    pub fn mode(&self) -> Mode {
        self.mode
    }

    pub fn journal(&self) -> Option<&Journal> {
        self.journal.as_ref()
    }

    pub fn store(&self, side: Side) -> Option<&Store> {
        match side {
            Side::Local => self.local.as_ref(),
            Side::Cloud => self.cloud.as_ref(),
        }
    }

    /// The sides a write goes to.
    fn write_sides(&self) -> Vec<(Side, &Store)> {
        let sides: &[Side] = match self.mode {
            Mode::Local => &[Side::Local],
            Mode::Cloud => &[Side::Cloud],
            Mode::Dual => &[Side::Local, Side::Cloud],
        };
        sides
            .iter()
            .filter_map(|&s| self.store(s).map(|st| (s, st)))
            .collect()
    }

    /// Every configured side, preferred read side first.
    fn read_sides(&self) -> Vec<(Side, &Store)> {
        let order = match (self.mode, self.read) {
            (Mode::Local, _) | (_, ReadPreference::LocalFirst) => [Side::Local, Side::Cloud],
            _ => [Side::Cloud, Side::Local],
        };
        order
            .iter()
            .filter_map(|&s| self.store(s).map(|st| (s, st)))
            .collect()
    }

    fn put_options(&self, key: &Key, mut opts: PutOptions) -> Result<PutOptions> {
        validate_metadata(&opts.metadata)?;
        if opts.cache_control.is_none() {
            opts.cache_control = key
                .extension()
                .and_then(|ext| self.cache_control.get(&ext).cloned());
        }
        Ok(opts)
    }

    pub async fn put(&self, key: &Key, data: Bytes, opts: PutOptions) -> Result<PutResult> {
        let opts = self.put_options(key, opts)?;
        let sha256 = crate::store::hash::sha256_hex(&data);
        let cfg = self.transfer;
        self.write_each(key, |_, store| {
            let (data, opts, sha256) = (data.clone(), opts.clone(), sha256.clone());
            async move { store.put_bytes(key, data, &opts, Some(sha256), &cfg).await }
        })
        .await
    }

    pub async fn put_file(
        &self,
        key: &Key,
        file: &Path,
        opts: PutOptions,
        progress: Option<ProgressFn>,
    ) -> Result<PutResult> {
        let opts = self.put_options(key, opts)?;
        let cfg = self.transfer;
        let sides = self.write_sides().len();
        // Each side reports its own bytes; the caller sees their sum over the sum of totals.
        let done = std::sync::Arc::new(std::sync::Mutex::new(vec![0u64; sides]));
        self.write_each(key, |i, store| {
            let opts = opts.clone();
            let progress = progress.clone().map(|report| -> ProgressFn {
                let done = done.clone();
                std::sync::Arc::new(move |bytes, total| {
                    let mut done = done.lock().unwrap_or_else(|e| e.into_inner());
                    done[i] = bytes;
                    report(done.iter().sum(), total * sides as u64);
                })
            });
            async move { store.put_file(key, file, &opts, &cfg, progress).await }
        })
        .await
    }

    /// Runs one write per side concurrently and folds the outcomes.
    async fn write_each<'a, F, Fut>(&'a self, key: &Key, write: F) -> Result<PutResult>
    where
        F: Fn(usize, &'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<crate::store::object::Written>>,
    {
        let sides = self.write_sides();
        let results = futures::future::join_all(
            sides
                .iter()
                .enumerate()
                .map(|(i, (_, store))| write(i, store)),
        )
        .await;
        outcome::fold(key, sides.iter().map(|(s, _)| *s).zip(results).collect())
    }

    /// Tries each read side in order; moves on only when the object is missing there or
    /// that side is down, so real errors (bad credentials) are not masked.
    async fn read<'a, T, F, Fut>(&'a self, read: F) -> Result<(Side, T)>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut first_error = None;
        for (side, store) in self.read_sides() {
            match read(store).await {
                Ok(v) => return Ok((side, v)),
                Err(e) if matches!(e, Error::NotFound { .. }) || e.is_outage() => {
                    first_error.get_or_insert(e);
                }
                Err(e) => return Err(e),
            }
        }
        Err(first_error.unwrap_or_else(|| Error::config("cloud", "no store configured")))
    }

    pub async fn get(&self, key: &Key) -> Result<Bytes> {
        self.read(|s| s.get(key)).await.map(|(_, b)| b)
    }

    pub async fn get_range(&self, key: &Key, start: u64, end: u64) -> Result<Bytes> {
        self.read(|s| s.get_range(key, start, end))
            .await
            .map(|(_, b)| b)
    }

    pub async fn head(&self, key: &Key) -> Result<(Side, ObjectInfo)> {
        self.read(|s| s.head(key)).await
    }

    pub async fn exists(&self, key: &Key) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    pub async fn get_to_file(
        &self,
        key: &Key,
        dest: &Path,
        progress: Option<ProgressFn>,
    ) -> Result<(Side, ObjectInfo)> {
        self.read(|s| s.get_to_file(key, dest, progress.clone()))
            .await
    }

    pub async fn stream(
        &self,
        key: &Key,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<BoxStream<'static, Result<Bytes>>> {
        self.read(|s| s.stream(key, range.clone()))
            .await
            .map(|(_, s)| s)
    }

    /// Deletes from every configured side, so a fallback read cannot resurrect it.
    pub async fn delete(&self, key: &Key) -> Result<()> {
        let sides = self.read_sides();
        let results = futures::future::join_all(sides.iter().map(|(_, s)| s.delete(key))).await;
        results.into_iter().collect::<Result<Vec<()>>>().map(drop)
    }

    pub async fn copy(&self, from: &Key, to: &Key) -> Result<(Side, ObjectInfo)> {
        self.transform(from, |s| s.copy(from, to)).await
    }

    pub async fn rename(&self, from: &Key, to: &Key) -> Result<(Side, ObjectInfo)> {
        self.transform(from, |s| s.rename(from, to)).await
    }

    /// Copy or rename on each write side that holds the source.
    async fn transform<'a, F, Fut>(&'a self, from: &Key, op: F) -> Result<(Side, ObjectInfo)>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<ObjectInfo>>,
    {
        let sides = self.write_sides();
        let results = futures::future::join_all(sides.iter().map(|(_, s)| op(s))).await;
        let mut found = None;
        let mut error = None;
        for ((side, _), result) in sides.into_iter().zip(results) {
            match result {
                Ok(info) => {
                    found.get_or_insert((side, info));
                }
                Err(Error::NotFound { .. }) => {}
                Err(e) => {
                    error.get_or_insert(e);
                }
            }
        }
        match (error, found) {
            (Some(e), _) => Err(e),
            (None, Some(found)) => Ok(found),
            (None, None) => Err(Error::NotFound {
                key: from.to_string(),
            }),
        }
    }

    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<(Side, Page)> {
        self.read(|s| s.list(prefix, start_after, limit)).await
    }
}
