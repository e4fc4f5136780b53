//! Hierarchical storage: objects untouched for `hotToWarmDays` move from the hot
//! store (the cloud side, or the local side without one) to `tiers.warm`, and after
//! `warmToColdDays` on to `tiers.cold`. Ages come from the journal's `tiers` table,
//! which writes, reads and migrations keep current.

mod cycle;
mod outdated;
mod service;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::dual::{Side, Storage};
use crate::error::{Error, Result};
use crate::journal::TierRow;
use crate::key::Key;
use crate::store::object::ObjectInfo;
use crate::store::options::StoreOptions;
use crate::store::{JournalSource, Store, parse_store_url};
pub use cycle::CycleReport;
pub use service::TierStats;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tier {
    Hot,
    Warm,
    Cold,
}

impl Tier {
    pub const ALL: [Tier; 3] = [Tier::Hot, Tier::Warm, Tier::Cold];

    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Hot => "hot",
            Tier::Warm => "warm",
            Tier::Cold => "cold",
        }
    }

    pub fn parse(s: &str) -> Result<Tier> {
        Tier::ALL
            .into_iter()
            .find(|t| t.as_str() == s)
            .ok_or_else(|| Error::config("tier", format!("{s:?} is not 'hot', 'warm' or 'cold'")))
    }

    /// Where `head().location` says an object of this tier was found.
    fn side(self, hot: Side) -> Side {
        match self {
            Tier::Hot => hot,
            Tier::Warm => Side::Warm,
            Tier::Cold => Side::Cold,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct TierPolicy {
    pub hot_to_warm_days: f64,
    pub warm_to_cold_days: f64,
    pub max_objects_per_cycle: Option<u64>,
    pub max_bytes_per_cycle: Option<u64>,
    /// Check the copy's size and SHA-256 before the move counts.
    pub verify: bool,
    /// Remove the object from the tier it left (not when both tiers are one bucket).
    pub delete_after_move: bool,
}

impl Default for TierPolicy {
    fn default() -> Self {
        TierPolicy {
            hot_to_warm_days: 30.0,
            warm_to_cold_days: 365.0,
            max_objects_per_cycle: None,
            max_bytes_per_cycle: None,
            verify: true,
            delete_after_move: true,
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct TierConfig {
    /// Store URLs; `?storageClass=STANDARD_IA` (S3) or `?storageClass=Cool` (Azure)
    /// gives every object written there that class.
    pub warm: Option<String>,
    pub cold: Option<String>,
    /// Credentials and endpoint of each tier; default: the cloud side's.
    pub warm_options: Option<StoreOptions>,
    pub cold_options: Option<StoreOptions>,
    pub policy: TierPolicy,
}

/// Reads between two flushes of last-access times; a read costs a map insert, not a
/// database write.
const TOUCHES_BUFFERED: usize = 4096;

#[derive(Debug)]
pub struct Tiers {
    warm: Option<Store>,
    cold: Option<Store>,
    policy: TierPolicy,
    touches: Mutex<HashMap<String, i64>>,
    service: Mutex<service::ServiceState>,
    /// Whether a move between two tiers rewrites its object in place, once known.
    same_places: Mutex<HashMap<(Tier, Tier), bool>>,
}

impl Tiers {
    pub fn open(config: &TierConfig, options: &StoreOptions) -> Result<Option<Tiers>> {
        if config.warm.is_none() && config.cold.is_none() {
            return Ok(None);
        }
        for (days, field) in [
            (config.policy.hot_to_warm_days, "tiers.policy.hotToWarmDays"),
            (
                config.policy.warm_to_cold_days,
                "tiers.policy.warmToColdDays",
            ),
        ] {
            if !(days.is_finite() && days >= 0.0) {
                return Err(Error::config(field, "must be a number of days, 0 or more"));
            }
        }
        let open = |url: &Option<String>, own: &Option<StoreOptions>, field: &str| {
            url.as_deref()
                .map(|u| open_tier_store(u, field, own.as_ref().unwrap_or(options)))
                .transpose()
        };
        Ok(Some(Tiers {
            warm: open(&config.warm, &config.warm_options, "tiers.warm")?,
            cold: open(&config.cold, &config.cold_options, "tiers.cold")?,
            policy: config.policy.clone(),
            touches: Mutex::default(),
            service: Mutex::default(),
            same_places: Mutex::default(),
        }))
    }

    /// See [`Store::attach_journal`].
    pub fn attach_journals(&mut self, journal: &JournalSource) -> Result<()> {
        for store in [&mut self.warm, &mut self.cold].into_iter().flatten() {
            store.attach_journal(journal)?;
        }
        Ok(())
    }

    /// The warm and cold stores that exist, for reads that fall through the sides.
    pub fn read_stores(&self) -> impl Iterator<Item = (Side, &Store)> {
        [(Side::Warm, &self.warm), (Side::Cold, &self.cold)]
            .into_iter()
            .filter_map(|(side, store)| store.as_ref().map(|s| (side, s)))
    }

    /// [`Store::is_same_place`] for a move between two tiers, asked once per pair.
    async fn is_same_place(&self, from: (Tier, &Store), to: (Tier, &Store)) -> Result<bool> {
        let pair = (from.0, to.0);
        if let Some(&known) = self.same_places.lock().unwrap().get(&pair) {
            return Ok(known);
        }
        let same = from.1.is_same_place(to.1).await?;
        self.same_places.lock().unwrap().insert(pair, same);
        Ok(same)
    }
}

/// A tier URL may carry `?storageClass=…`; the rest is an ordinary store URL opened
/// with the cloud side's credentials.
fn open_tier_store(url: &str, field: &str, options: &StoreOptions) -> Result<Store> {
    let mut parsed = parse_store_url(url, field)?;
    let mut class = None;
    for (name, value) in parsed.query_pairs() {
        // A misspelt `storageclass` would leave the tier in the hot tier's class.
        if name != "storageClass" {
            return Err(Error::config(
                field,
                format!("unknown setting ?{name}= (the one a tier URL takes is ?storageClass=)"),
            ));
        }
        class = Some(value.into_owned());
    }
    parsed.set_query(None);
    let options = StoreOptions {
        storage_class: class.or_else(|| options.storage_class.clone()),
        ..options.clone()
    };
    Store::open(parsed.as_str(), field, &options)
}

/// Milliseconds since the epoch, the unit of tier ages.
pub fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Storage {
    /// The store of the hot tier: where writes land for good (cloud, else local).
    fn hot(&self) -> Option<(Side, &Store)> {
        [Side::Cloud, Side::Local]
            .into_iter()
            .find_map(|s| self.store(s).map(|st| (s, st)))
    }

    fn tier_store(&self, tier: Tier) -> Option<&Store> {
        self.tier_side(tier).map(|(_, store)| store)
    }

    /// A tier's store with the side reads name it by.
    fn tier_side(&self, tier: Tier) -> Option<(Side, &Store)> {
        match tier {
            Tier::Hot => self.hot(),
            Tier::Warm => Some((Side::Warm, self.tiers()?.warm.as_ref()?)),
            Tier::Cold => Some((Side::Cold, self.tiers()?.cold.as_ref()?)),
        }
    }

    fn tiers_or_fail(&self) -> Result<&Tiers> {
        self.tiers()
            .ok_or_else(|| Error::config("tiers", "no warm or cold tier is configured"))
    }

    /// A write lands in the hot tier, last accessed at `at_ms`; a copy left in a colder
    /// tier is stale now: the one the journal had it in, and with `deleteAfterMove:
    /// false` any colder tier, since moves there left copies behind.
    pub(crate) async fn note_write(&self, key: &Key, size: u64, at_ms: i64) -> Result<()> {
        let (Some(tiers), Some(journal)) = (self.tiers(), self.journal()) else {
            return Ok(());
        };
        let before = journal.tier_row(key.as_str()).await?;
        journal
            .set_tier_row(TierRow {
                key: key.to_string(),
                tier: Tier::Hot.as_str().into(),
                size,
                last_access_ms: at_ms,
            })
            .await?;
        let recorded = before.and_then(|r| Tier::parse(&r.tier).ok());
        for tier in [Tier::Warm, Tier::Cold] {
            if recorded == Some(tier) || !tiers.policy.delete_after_move {
                self.delete_stale(tiers, key, tier).await?;
            }
        }
        Ok(())
    }

    /// Deletes the copy of `key` in a colder tier, unless that tier is the hot store's
    /// own bucket in another class: there the copy is the object just written.
    async fn delete_stale(&self, tiers: &Tiers, key: &Key, tier: Tier) -> Result<()> {
        let (Some((_, hot)), Some((side, colder))) = (self.hot(), self.tier_side(tier)) else {
            return Ok(());
        };
        if tiers
            .is_same_place((Tier::Hot, hot), (tier, colder))
            .await?
        {
            return Ok(());
        }
        match colder.delete(key).await {
            Err(_) if self.note_outdated(key, side).await => Ok(()),
            deleted => deleted,
        }
    }

    /// A copy or rename landed `to` in the hot tier, as a write does. A rename keeps its
    /// source's last access: moving a name is not using the object.
    pub(crate) async fn note_relocated(
        &self,
        from: &Key,
        to: &Key,
        size: u64,
        moves: bool,
    ) -> Result<()> {
        let (Some(_), Some(journal)) = (self.tiers(), self.journal()) else {
            return Ok(());
        };
        let mut accessed = None;
        if moves {
            accessed = journal
                .tier_row(from.as_str())
                .await?
                .map(|r| r.last_access_ms);
            journal.forget_tier(from.as_str()).await?;
        }
        self.note_write(to, size, accessed.unwrap_or_else(now_ms))
            .await
    }

    /// Brings `key` back to the hot tier when the journal has it in a colder one, as a
    /// copy or rename of it needs; the caller holds the key's lock.
    pub(crate) async fn bring_hot(&self, key: &Key) -> Result<()> {
        let (Some(tiers), Some(journal)) = (self.tiers(), self.journal()) else {
            return Ok(());
        };
        let Some(row) = journal.tier_row(key.as_str()).await? else {
            return Ok(());
        };
        match Tier::parse(&row.tier)? {
            Tier::Hot => Ok(()),
            colder if self.settle_rewrite(tiers, key, colder).await? => Ok(()),
            colder => self
                .move_locked(tiers, &row, colder, Tier::Hot)
                .await
                .map(drop),
        }
    }

    /// The hot store's copy of `key`, when the journal has the key in the colder tier
    /// `recorded` but the hot store holds other bytes under it: written there past
    /// stowage's tier record (a presigned upload, a manager without tiers). Reads
    /// serve that copy, so the colder one is stale. A copy with the colder one's bytes
    /// is what a move with `deleteAfterMove: false` left behind, not a rewrite.
    async fn rewritten_hot(
        &self,
        tiers: &Tiers,
        key: &Key,
        recorded: Tier,
    ) -> Result<Option<ObjectInfo>> {
        let (Some((_, hot)), Some(colder)) = (self.hot(), self.tier_store(recorded)) else {
            return Ok(None);
        };
        if recorded == Tier::Hot
            || tiers
                .is_same_place((Tier::Hot, hot), (recorded, colder))
                .await?
        {
            return Ok(None);
        }
        let hot_copy = match hot.head(key).await {
            Ok(info) => info,
            Err(Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let same_bytes = match colder.head(key).await {
            Ok(c) => c.size == hot_copy.size && c.sha256.is_some() && c.sha256 == hot_copy.sha256,
            Err(Error::NotFound { .. }) => false,
            Err(e) => return Err(e),
        };
        Ok((!same_bytes).then_some(hot_copy))
    }

    /// Records a rewrite [`Storage::rewritten_hot`] finds as the write it was (the key
    /// hot again, its colder copies deleted), so that no move carries the stale copy
    /// back over it. Whether there was one; the caller holds the key's lock.
    async fn settle_rewrite(&self, tiers: &Tiers, key: &Key, recorded: Tier) -> Result<bool> {
        let Some(info) = self.rewritten_hot(tiers, key, recorded).await? else {
            return Ok(false);
        };
        let written_ms = info
            .last_modified
            .duration_since(UNIX_EPOCH)
            .map_or_else(|_| now_ms(), |d| d.as_millis() as i64);
        self.note_write(key, info.size, written_ms).await?;
        Ok(true)
    }

    /// Records a read; flushed to the journal in batches.
    pub(crate) async fn note_read(&self, key: &Key) {
        let (Some(tiers), Some(journal)) = (self.tiers(), self.journal()) else {
            return;
        };
        let full = {
            let mut touches = tiers.touches.lock().unwrap_or_else(|e| e.into_inner());
            touches.insert(key.to_string(), now_ms());
            touches.len() >= TOUCHES_BUFFERED
        };
        if full {
            let _ = flush_touches(tiers, journal).await;
        }
    }

    pub(crate) async fn note_delete(&self, key: &Key) -> Result<()> {
        match (self.tiers(), self.journal()) {
            (Some(_), Some(journal)) => journal.forget_tier(key.as_str()).await,
            _ => Ok(()),
        }
    }

    /// The tier row of an object migrated to `to`: it enters the hot tier aged by its
    /// source's mtime, so files that sat untouched for years can go straight on to a
    /// colder tier. Kept whether or not this manager has tiers: a migration is often
    /// run on its own (the `stowage migrate` command has no tier options), before
    /// tiers are set up. `None` when `to` is not the hot tier.
    pub(crate) fn migrated_tier_row(
        &self,
        info: &ObjectInfo,
        to: Side,
        at_ms: i64,
    ) -> Option<TierRow> {
        (self.hot().map(|(s, _)| s) == Some(to)).then(|| TierRow {
            key: info.key.to_string(),
            tier: Tier::Hot.as_str().into(),
            size: info.size,
            last_access_ms: at_ms,
        })
    }

    /// The tier holding `key`: the journal's record (hot when the hot store holds a
    /// rewrite, as reads find), else the first store holding it.
    pub async fn tier_of(&self, key: &Key) -> Result<Tier> {
        let journal = self
            .journal()
            .ok_or_else(|| Error::config("journal", "missing"))?;
        let tiers = self.tiers_or_fail()?;
        if let Some(row) = journal.tier_row(key.as_str()).await? {
            let recorded = Tier::parse(&row.tier)?;
            return match self.rewritten_hot(tiers, key, recorded).await {
                Ok(Some(_)) => Ok(Tier::Hot),
                Ok(None) => Ok(recorded),
                // A store that is down shows no rewrite: the record stands.
                Err(e) if e.is_outage() => Ok(recorded),
                Err(e) => Err(e),
            };
        }
        for tier in Tier::ALL {
            if let Some((side, store)) = self.tier_side(tier)
                && !self.outdated(key, side).await?
                && store.exists(key).await?
            {
                return Ok(tier);
            }
        }
        Err(Error::NotFound {
            key: key.to_string(),
        })
    }

    /// Moves `key` to `tier` now, whatever its age.
    pub async fn set_tier(&self, key: &Key, tier: Tier) -> Result<()> {
        let tiers = self.tiers_or_fail()?;
        let journal = self.journal().expect("tiers need the journal");
        if self.tier_store(tier).is_none() {
            return Err(Error::config(
                "tier",
                format!("no {} tier is configured", tier.as_str()),
            ));
        }
        // Locked before the tier is read: a write or move meanwhile would make the
        // move start from where the object no longer is.
        let _lock = self.lock_key(key.as_str()).await?;
        let recorded = journal.tier_row(key.as_str()).await?;
        let current = match recorded.map(|r| Tier::parse(&r.tier)).transpose()? {
            Some(t) if self.settle_rewrite(tiers, key, t).await? => Tier::Hot,
            Some(t) => t,
            None => self.tier_of(key).await?,
        };
        if current == tier {
            return Ok(());
        }
        let row = match journal.tier_row(key.as_str()).await? {
            Some(row) => row,
            None => TierRow {
                key: key.to_string(),
                tier: current.as_str().into(),
                size: 0,
                last_access_ms: now_ms(),
            },
        };
        self.move_locked(tiers, &row, current, tier).await.map(drop)
    }
}

async fn flush_touches(tiers: &Tiers, journal: &crate::journal::Journal) -> Result<()> {
    let touches: Vec<(String, i64)> =
        std::mem::take(&mut *tiers.touches.lock().unwrap_or_else(|e| e.into_inner()))
            .into_iter()
            .collect();
    if touches.is_empty() {
        return Ok(());
    }
    journal.touch_tiers(touches).await
}
