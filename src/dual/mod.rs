//! The storage manager: routes writes to the sides the mode names (both at once in
//! dual mode) and reads to the preferred side, falling back to the other one on
//! `NOT_FOUND`, an outage or a copy that fails its SHA-256.

mod events;
mod listing;
mod locks;
mod moves;
mod outage;
mod outcome;
mod presign;
mod queued;
mod repair;
mod running;
mod stats;
#[cfg(test)]
mod tests;
mod write;

use std::collections::BTreeMap;
use std::path::Path;

use bytes::Bytes;
use futures::TryStreamExt;
use futures::stream::{BoxStream, StreamExt};

use crate::config::{Config, Mode, ReadPreference};
use crate::error::{Error, Result};
use crate::journal::{Journal, RepairOp};
use crate::key::{Key, STATE_DIR};
use crate::store::object::ObjectInfo;
use crate::store::options::StoreOptions;
use crate::store::progress::ProgressFn;
use crate::store::{JournalSource, Store, TransferConfig};
use crate::tier::Tiers;
pub use events::{Event, EventKind, EventSink};
pub use listing::Listing;
pub use outcome::{Location, Outcome, PutResult, Side, SideError};
pub use presign::{PresignOptions, PresignSettings};
pub use repair::{RepairProgress, RepairReport, digest};
pub use stats::SideStats;

#[derive(Debug)]
pub struct Storage {
    local: Option<Store>,
    cloud: Option<Store>,
    mode: Mode,
    read: ReadPreference,
    transfer: TransferConfig,
    cache_control: BTreeMap<String, String>,
    journal: Option<Journal>,
    presign: PresignSettings,
    tiers: Option<Tiers>,
    events: events::Events,
    /// Shared with read streams, which count their bytes as they flow.
    stats: std::sync::Arc<stats::Stats>,
    locks: locks::KeyLocks,
    in_flight: running::InFlight,
    queued: queued::Queued,
    cloud_gate: outage::OutageGate,
    /// Set once `close()` was called, for the work that outlives calls (migrations).
    closing: tokio::sync::watch::Sender<bool>,
}

/// `path` with the symlinks of its deepest existing folder resolved, as store folders
/// are.
fn resolved(path: &std::path::Path) -> std::path::PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    absolute
        .ancestors()
        .find_map(|folder| {
            let rest = absolute.strip_prefix(folder).ok()?;
            Some(std::fs::canonicalize(folder).ok()?.join(rest))
        })
        .unwrap_or(absolute)
}

/// The stores a configuration names.
struct Stores {
    local: Option<Store>,
    cloud: Option<Store>,
    tiers: Option<Tiers>,
}

impl Stores {
    fn open(config: &Config) -> Result<Stores> {
        let local = match &config.local {
            Some(url) if url.starts_with("file://") || !url.contains("://") => {
                Some(Store::open(url, "local", &StoreOptions::default())?)
            }
            Some(_) => return Err(Error::config("local", "must be a path or a file:// URL")),
            None => None,
        };
        let cloud = config
            .cloud
            .as_deref()
            .map(|url| Store::open(url, "cloud", &config.cloud_options))
            .transpose()?;
        let tiers = Tiers::open(&config.tiers, &config.cloud_options)?;
        Ok(Stores {
            local,
            cloud,
            tiers,
        })
    }

    fn attach_journals(&mut self, journal: &JournalSource) -> Result<()> {
        for store in [&mut self.local, &mut self.cloud].into_iter().flatten() {
            store.attach_journal(journal)?;
        }
        match &mut self.tiers {
            Some(tiers) => tiers.attach_journals(journal),
            None => Ok(()),
        }
    }

    /// Each store with the option that names it.
    fn fields(&self) -> Vec<(&'static str, &Store)> {
        let tiers = self.tiers.iter().flat_map(Tiers::read_stores);
        [(Side::Local, &self.local), (Side::Cloud, &self.cloud)]
            .into_iter()
            .filter_map(|(side, store)| store.as_ref().map(|s| (side, s)))
            .chain(tiers)
            .map(|(side, s)| (side.field(), s))
            .collect()
    }

    /// A journal among a store's files would be listed, read and deleted as its keys
    /// (its `-wal`, `-shm` and `-locks` beside it too): only that store's `.stowage`
    /// folder, whose keys are refused, may hold it.
    fn refuse_journal_inside(&self, journal: &std::path::Path) -> Result<()> {
        let journal = resolved(journal);
        for (field, store) in self.fields() {
            let Some(root) = store.folder() else {
                continue;
            };
            let state = root.join(STATE_DIR);
            if journal.starts_with(root) && !(journal.starts_with(&state) && journal != state) {
                return Err(Error::config(
                    "journal",
                    format!(
                        "is among {field}'s files, which would list and delete it as keys: put it outside {field}, or in its {STATE_DIR} folder"
                    ),
                ));
            }
        }
        Ok(())
    }

    /// A store inside another, or in the same folder, would have its objects listed,
    /// migrated and deleted as the other one's keys.
    fn refuse_nested(&self) -> Result<()> {
        let stores = self.fields();
        for (outer_field, outer) in &stores {
            let inner = stores
                .iter()
                .find(|(field, inner)| field != outer_field && outer.holds(inner));
            if let Some((field, inner)) = inner {
                let place = match inner.may_share_objects(outer) {
                    true => "is the same folder as",
                    false => "is inside",
                };
                return Err(Error::config(
                    *field,
                    format!("{place} {outer_field}: its objects would be {outer_field}'s keys"),
                ));
            }
        }
        Ok(())
    }
}

impl Storage {
    /// Opens both sides. File stores create their folder; nothing goes over the network.
    pub fn open(config: &Config, events: Option<EventSink>) -> Result<Storage> {
        config.validate()?;
        let journal_path = match (&config.journal, &config.local) {
            (Some(path), _) => Some(path.clone()),
            (None, Some(local)) => {
                let root = crate::store::parse_store_url(local, "local")?
                    .to_file_path()
                    .map_err(|_| Error::config("local", "must be a path or a file:// URL"))?;
                crate::store::ensure_folder(&root, "local")?;
                Some(root.join(STATE_DIR).join("journal.db"))
            }
            (None, None) => None,
        };
        // Checked before any journal is made: a store refused as nested had already made
        // its `.stowage/journal.db` inside the outer one, which then listed it as a key.
        let mut stores = Stores::open(config)?;
        stores.refuse_nested()?;
        if let Some(path) = &journal_path {
            stores.refuse_journal_inside(path)?;
        }
        let journal = journal_path.as_deref().map(Journal::open).transpose()?;
        // Processes that share a journal share the local side too: their writes of a
        // key take turns as one process's do. The lock files' folder is named after the
        // journal, as SQLite names its `-wal` and `-shm` files.
        let locks = match &journal_path {
            Some(path) => {
                let mut dir = path.clone().into_os_string();
                dir.push("-locks");
                locks::KeyLocks::shared(std::path::Path::new(&dir))?
            }
            None => locks::KeyLocks::in_process(),
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
        stores.attach_journals(&source)?;
        let Stores {
            local,
            cloud,
            tiers,
        } = stores;
        let storage = Storage {
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
            presign: config.presign.clone(),
            tiers,
            events: events::Events::new(events),
            stats: Default::default(),
            locks,
            in_flight: Default::default(),
            queued: queued::Queued::new(journal.clone()),
            cloud_gate: outage::OutageGate::new(std::time::Duration::from_millis(
                config
                    .outage_cooldown_ms
                    .unwrap_or(crate::config::OUTAGE_COOLDOWN_MS)
                    .into(),
            )),
            journal,
            closing: tokio::sync::watch::Sender::new(false),
        };
        crate::store::sweep_abandoned(&storage.temp_dir());
        Ok(storage)
    }

    /// `close()` was called: no new calls come, and what runs should end.
    pub fn begin_close(&self) {
        self.closing.send_replace(true);
    }

    /// Resolves once `close()` was called.
    pub async fn closing(&self) {
        let _ = self.closing.subscribe().wait_for(|closing| *closing).await;
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
            Side::Warm | Side::Cold => self
                .tiers
                .as_ref()?
                .read_stores()
                .find(|(s, _)| *s == side)
                .map(|(_, store)| store),
        }
    }

    /// The configured store whose name (URL without credentials) is `name`.
    pub(crate) fn store_named(&self, name: &str) -> Result<&Store> {
        [Side::Local, Side::Cloud, Side::Warm, Side::Cold]
            .into_iter()
            .filter_map(|s| self.store(s))
            .find(|s| s.name() == name)
            .ok_or_else(|| Error::config("stores", format!("{name} is not configured here")))
    }

    pub(crate) fn tiers(&self) -> Option<&Tiers> {
        self.tiers.as_ref()
    }

    pub(crate) fn transfer(&self) -> TransferConfig {
        self.transfer
    }

    pub(crate) fn emit(&self, event: impl FnOnce() -> Event) {
        self.events.emit(event);
    }

    /// Orders work on one key in this process (writes, repairs, migrations, moves).
    pub(crate) async fn lock_key(&self, key: &str) -> Result<locks::KeyGuard<'_>> {
        self.locks.lock(key).await
    }

    /// Where large objects from non-file stores wait between download and upload:
    /// inside the local root's state folder when there is one (same disk as the data).
    pub(crate) fn temp_dir(&self) -> std::path::PathBuf {
        match self.local.as_ref().and_then(Store::local_path) {
            Some(root) => root.join(STATE_DIR).join("tmp"),
            None => std::env::temp_dir(),
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

    fn written_sides(&self) -> Vec<Side> {
        self.write_sides().iter().map(|(s, _)| *s).collect()
    }

    /// The sides reads look at that writes do not touch: the other side in local or
    /// cloud mode (its fallback), and the colder tiers.
    fn unwritten_sides(&self) -> Vec<(Side, &Store)> {
        let written = self.written_sides();
        self.read_sides()
            .into_iter()
            .filter(|(side, _)| !written.contains(side))
            .collect()
    }

    /// Every configured side, preferred read side first, then the colder tiers.
    fn read_sides(&self) -> Vec<(Side, &Store)> {
        // `read` picks between two sides that both take writes; with one, that one
        // holds the newest bytes, and the other is the fallback.
        let order = match (self.mode, self.read) {
            (Mode::Local, _) | (Mode::Dual, ReadPreference::LocalFirst) => {
                [Side::Local, Side::Cloud]
            }
            (Mode::Cloud, _) | (Mode::Dual, ReadPreference::CloudFirst) => {
                [Side::Cloud, Side::Local]
            }
        };
        order
            .iter()
            .filter_map(|&s| self.store(s).map(|st| (s, st)))
            .chain(self.tiers.iter().flat_map(Tiers::read_stores))
            .collect()
    }

    /// Reads `key` from the first side that has it, and records the access for the
    /// tier policy.
    async fn read<'a, T, F, Fut>(&'a self, key: &Key, read: F) -> Result<(Side, T)>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let sides = self.current_sides(key).await?;
        let found = self
            .first_side(
                key,
                sides,
                read,
                // A damaged copy is reported, and the next side serves the object.
                |side, e| self.emit(|| integrity_failed(key, side, e)),
            )
            .await?;
        self.note_read(key).await;
        Ok(found)
    }

    /// Whether `side` holds a copy of `key` that reads skip: one in a colder tier that
    /// a write or delete made outdated but could not remove. Asked only of the sides
    /// a read falls back to, so reads of the hot tier cost no query.
    pub(crate) async fn outdated(&self, key: &Key, side: Side) -> Result<bool> {
        match (side, &self.journal) {
            (Side::Warm | Side::Cold, Some(journal)) => {
                journal.is_outdated(key.as_str(), side.as_str()).await
            }
            _ => Ok(false),
        }
    }

    /// The read sides, less those a queued write or delete of `key` left stale until
    /// its repair: a queued delete leaves none, a queued write the side that holds its
    /// bytes (all of them, local first, if none does: the write never completed
    /// anywhere), a rename that took place only what was written under the old name
    /// since.
    async fn current_sides(&self, key: &Key) -> Result<Vec<(Side, &Store)>> {
        let sides = self.read_sides();
        let missing = || Error::NotFound {
            key: key.to_string(),
        };
        match self.queued.intent(key.as_str()).await? {
            None => Ok(sides),
            Some(RepairOp::Delete) => Err(missing()),
            Some(RepairOp::Renamed { to, sha256 })
                if self.holder(&Key::parse(&to)?, &sha256).await?.is_some() =>
            {
                self.written_since_move(key, &sha256, &[Side::Local, Side::Cloud])
                    .await
            }
            Some(RepairOp::Moved { sha256, missed }) => {
                let moved: Vec<_> = [Side::Local, Side::Cloud]
                    .into_iter()
                    .filter(|side| side.as_str() != missed)
                    .collect();
                self.written_since_move(key, &sha256, &moved).await
            }
            // A write, or a rename that may not have taken place (a crash mid-way):
            // the key reads as it stands where its bytes are.
            Some(RepairOp::Put { sha256 } | RepairOp::Renamed { sha256, .. }) => {
                if let Some(holder) = self.holder(key, &sha256).await? {
                    return Ok(vec![holder]);
                }
                // Neither side holds them: repair will copy the local side's object
                // over the cloud's (the cloud's if local has none), so reads serve
                // that one meanwhile, whatever `read` says.
                let mut sides = sides;
                sides.sort_by_key(|(side, _)| *side != Side::Local);
                Ok(sides)
            }
        }
    }

    /// The old name of a rename that took place on `moved`: the repair deletes it
    /// where it still holds the moved bytes `sha256`, and keeps other bytes there
    /// (the app's, written behind stowage's back), so reads serve only those.
    async fn written_since_move(
        &self,
        key: &Key,
        sha256: &str,
        moved: &[Side],
    ) -> Result<Vec<(Side, &Store)>> {
        let mut since = Vec::new();
        for &side in moved {
            if let Some(store) = self.store(side)
                && digest(store, key)
                    .await
                    .is_ok_and(|d| d.is_some_and(|d| d != sha256))
            {
                since.push((side, store));
            }
        }
        match since.is_empty() {
            true => Err(Error::NotFound {
                key: key.to_string(),
            }),
            false => Ok(since),
        }
    }

    /// The side whose `key` holds the bytes of `sha256`, local first: its head costs no
    /// request. An object with no recorded SHA-256 (a copy of a file from before
    /// stowage) is hashed. A side that cannot answer is that outage's error: it may
    /// hold the write, and the other side's copy would be a guess (the old bytes). So
    /// the cloud is asked even while marked down.
    async fn holder(&self, key: &Key, sha256: &str) -> Result<Option<(Side, &Store)>> {
        for side in [Side::Local, Side::Cloud] {
            let Some(store) = self.store(side) else {
                continue;
            };
            match self
                .asking_anyway(side, key.as_str(), digest(store, key))
                .await
            {
                Ok(Some(held)) if held == sha256 => return Ok(Some((side, store))),
                Err(e) if e.is_outage() => return Err(e),
                _ => {}
            }
        }
        Ok(None)
    }

    /// Runs `call` on `side` for `key` (a listing's prefix). In dual mode a cloud found
    /// down is not waited on (the local side holds every object, and repair levels the
    /// cloud): see [`outage`].
    pub(super) async fn through_gate<T>(
        &self,
        side: Side,
        key: &str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        if self.gated(side) {
            self.cloud_gate.admit(std::time::Instant::now())?;
        }
        self.asking_anyway(side, key, call).await
    }

    /// Runs `call` on `side` even while the cloud is marked down, and takes in its
    /// answer: for calls whose result no other side can stand in for.
    async fn asking_anyway<T>(
        &self,
        side: Side,
        key: &str,
        call: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let result = call.await;
        if self.gated(side) {
            self.note_cloud_answer(key, &result);
        }
        result
    }

    fn gated(&self, side: Side) -> bool {
        side == Side::Cloud && self.mode == Mode::Dual
    }

    /// Marks the cloud down or back up after a call to it on `key`.
    pub(super) fn note_cloud_answer<T>(&self, key: &str, result: &Result<T>) {
        let Some(change) = self.cloud_gate.observe(result, std::time::Instant::now()) else {
            return;
        };
        self.emit(|| {
            let event = Event::new(EventKind::CloudUp, key).side(Side::Cloud);
            match (change, result) {
                (outage::Change::WentDown, Err(e)) => Event {
                    kind: EventKind::CloudDown,
                    ..event.error(e)
                },
                _ => event,
            }
        });
    }

    /// Reads `key` from each of `sides` in order, skipping outdated copies; moves on
    /// only when the object is missing there, that side is down, or its bytes failed
    /// their SHA-256 (after `on_damaged`), so real errors (bad credentials) are not
    /// masked. With no side left, a missing object on one side and an outage on
    /// another is the outage.
    async fn first_side<'a, T, F, Fut>(
        &'a self,
        key: &Key,
        sides: Vec<(Side, &'a Store)>,
        read: F,
        on_damaged: impl Fn(Side, &Error),
    ) -> Result<(Side, T)>
    where
        F: Fn(&'a Store) -> Fut,
        Fut: std::future::Future<Output = Result<T>>,
    {
        let mut first_error = None;
        for (side, store) in sides {
            let found = match self.outdated(key, side).await {
                Ok(true) => Err(Error::NotFound {
                    key: key.to_string(),
                }),
                Ok(false) => self.through_gate(side, key.as_str(), read(store)).await,
                Err(e) => Err(e),
            };
            let e = match found {
                Ok(v) => return Ok((side, v)),
                Err(e @ Error::Integrity(_)) => {
                    on_damaged(side, &e);
                    e
                }
                Err(e) if moves_past(&e) => e,
                Err(e) => return Err(e),
            };
            // A side that is down may hold the object, and a damaged copy is one:
            // `NOT_FOUND` from another side would be a guess, or wrong.
            let replaces = match &first_error {
                None => true,
                Some(Error::NotFound { .. }) => !matches!(e, Error::NotFound { .. }),
                Some(_) => false,
            };
            if replaces {
                first_error = Some(e);
            }
        }
        Err(first_error.unwrap_or_else(no_side))
    }

    pub async fn get(&self, key: &Key) -> Result<Bytes> {
        let (side, bytes) = self.read(key, |s| s.get(key)).await?;
        self.stats.read(side, bytes.len() as u64);
        Ok(bytes)
    }

    pub async fn get_range(&self, key: &Key, start: u64, end: u64) -> Result<Bytes> {
        let (side, bytes) = self.read(key, |s| s.get_range(key, start, end)).await?;
        self.stats.read(side, bytes.len() as u64);
        Ok(bytes)
    }

    pub async fn head(&self, key: &Key) -> Result<(Side, ObjectInfo)> {
        self.read(key, |s| s.head(key)).await
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
        let (side, info) = self
            .read(key, |s| s.get_to_file(key, dest, progress.clone()))
            .await?;
        self.stats.read(side, info.size);
        Ok((side, info))
    }

    /// The object's chunks, with the side they come from and the version they are.
    pub async fn stream(
        &self,
        key: &Key,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<(Side, ObjectInfo, BoxStream<'static, Result<Bytes>>)> {
        let (side, (info, chunks)) = self.read(key, |s| s.stream(key, range.clone())).await?;
        let stats = self.stats.clone();
        stats.read(side, 0);
        // A whole object's stream learns that its bytes are damaged only at its end,
        // after handing them on: too late for the other side, not too late to report.
        let (events, key) = (self.events.clone(), key.clone());
        let chunks = chunks
            .inspect_ok(move |chunk| stats.read_bytes(side, chunk.len() as u64))
            .inspect_err(move |e| {
                if matches!(e, Error::Integrity(_)) {
                    events.emit(|| integrity_failed(&key, side, e));
                }
            })
            .boxed();
        Ok((side, info, chunks))
    }

    /// Counts and bytes per side since the manager was created.
    pub fn stats(&self, side: Side) -> SideStats {
        self.stats.snapshot(side)
    }

    pub fn repaired_total(&self) -> u64 {
        self.stats.repaired_total()
    }
}

/// Whether a read goes on to the next side after this failure: the object is missing
/// there, or the side is down. Other errors (bad credentials) are not masked.
fn moves_past(err: &Error) -> bool {
    matches!(err, Error::NotFound { .. }) || err.is_outage()
}

/// The error of a read that had no side to try.
fn no_side() -> Error {
    Error::config("cloud", "no store configured")
}

fn integrity_failed(key: &Key, side: Side, err: &Error) -> Event {
    Event::new(EventKind::IntegrityFailed, key.as_str())
        .side(side)
        .error(err)
}
