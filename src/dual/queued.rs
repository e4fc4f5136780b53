//! Keys that a failed dual write or delete left different on the two sides, each with
//! its newest intent, so reads can skip the stale side until `repair()` levels it:
//! without this, a read preferring the cloud would serve the bytes a queued write
//! replaced, or an object a queued delete removed from the local side.
//!
//! Loaded from the journal on first use (rows an earlier process left count too), then
//! kept current by this process's writes and repairs. Other processes on the journal
//! (an app's other workers) commit their intents there too: when the journal changed
//! under another connection, the next read at least `RECHECK` after the last check
//! loads it again.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{OnceCell, RwLock};

use crate::error::Result;
use crate::journal::{Journal, RepairOp};

/// Rows read per journal query while loading.
const PAGE: usize = 1024;

/// How stale another process's queued intents may be to this one's reads.
const RECHECK: Duration = Duration::from_millis(50);

type Intents = Mutex<HashMap<String, RepairOp>>;

/// Without a journal nothing is ever queued.
#[derive(Debug)]
pub(super) struct Queued {
    journal: Option<Journal>,
    intents: OnceCell<Intents>,
    /// Held shared while this process changes an intent (journal first, then the map)
    /// and alone while the map is loaded, so a load never brings back a row that was
    /// settled between its query and its use.
    changes: RwLock<()>,
    /// When the journal was last checked, and its `data_version` then.
    checked: Mutex<(Instant, i64)>,
}

impl Queued {
    pub fn new(journal: Option<Journal>) -> Queued {
        Queued {
            journal,
            intents: OnceCell::new(),
            changes: RwLock::new(()),
            checked: Mutex::new((Instant::now(), 0)),
        }
    }

    /// The newest queued intent of `key`, if one is waiting for a repair.
    pub async fn intent(&self, key: &str) -> Result<Option<RepairOp>> {
        Ok(match self.current().await? {
            Some(intents) => lock(intents).get(key).cloned(),
            None => None,
        })
    }

    /// Whether `key` waits for a repair as far as this process knows now, without
    /// waiting: the intents it has loaded, or none before its first read or write.
    pub fn known(&self, key: &str) -> bool {
        self.intents
            .get()
            .is_some_and(|intents| lock(intents).contains_key(key))
    }

    /// Leaves out the items whose `key` waits for a repair to delete it, and returns
    /// the keys among the rest whose write waits for one, which a side may list with
    /// its stale bytes: one look at the intents for a whole page of a listing.
    pub async fn sift<T>(
        &self,
        items: &mut Vec<T>,
        key: impl Fn(&T) -> &str,
    ) -> Result<Vec<String>> {
        let Some(intents) = self.current().await? else {
            return Ok(Vec::new());
        };
        let intents = lock(intents);
        items.retain(|item| intents.get(key(item)) != Some(&RepairOp::Delete));
        Ok(items
            .iter()
            .map(key)
            .filter(|k| intents.contains_key(*k))
            .map(str::to_owned)
            .collect())
    }

    /// The intents, reloaded first if another process changed them.
    async fn current(&self) -> Result<Option<&Intents>> {
        let Some(intents) = self.loaded().await? else {
            return Ok(None);
        };
        self.reload_if_changed(intents).await?;
        Ok(Some(intents))
    }

    /// A write or delete of `key` did not reach every side: its intent `id` (`op`)
    /// stays in the journal for `repair()`, with the failure's `code`. A journal
    /// failure here is not fatal, the row exists already.
    pub async fn queue(&self, key: &str, id: i64, op: RepairOp, code: &str) -> Result<()> {
        let (Some(journal), Some(intents)) = (&self.journal, self.loaded().await?) else {
            return Ok(());
        };
        let _change = self.changes.read().await;
        let _ = journal.note_failure(id, code).await;
        lock(intents).insert(key.to_owned(), op);
        Ok(())
    }

    /// Both sides of `key` hold what its intent `id` (and every older one) asked for.
    pub async fn settle(&self, key: &str, id: i64) -> Result<()> {
        let (Some(journal), Some(intents)) = (&self.journal, self.loaded().await?) else {
            return Ok(());
        };
        let _change = self.changes.read().await;
        journal.settle(key, id).await?;
        lock(intents).remove(key);
        Ok(())
    }

    /// `key` has no intent left in the journal.
    pub async fn remove(&self, key: &str) -> Result<()> {
        if let Some(intents) = self.loaded().await? {
            let _change = self.changes.read().await;
            lock(intents).remove(key);
        }
        Ok(())
    }

    async fn loaded(&self) -> Result<Option<&Intents>> {
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
        self.intents
            .get_or_try_init(|| async {
                let _alone = self.changes.write().await;
                Ok(Mutex::new(self.load(journal).await?))
            })
            .await
            .map(Some)
    }

    /// Loads the map again if another connection committed to the journal since the
    /// last check, unless this process is changing an intent right now (next time).
    async fn reload_if_changed(&self, intents: &Intents) -> Result<()> {
        let journal = self.journal.as_ref().expect("loaded");
        {
            let mut checked = lock(&self.checked);
            if checked.0.elapsed() < RECHECK {
                return Ok(());
            }
            checked.0 = Instant::now();
        }
        let Ok(_alone) = self.changes.try_write() else {
            return Ok(());
        };
        if journal.data_version().await? == lock(&self.checked).1 {
            return Ok(());
        }
        *lock(intents) = self.load(journal).await?;
        Ok(())
    }

    /// Every key's newest intent, noting the journal's version first: a commit made
    /// during the query shows at the next check.
    async fn load(&self, journal: &Journal) -> Result<HashMap<String, RepairOp>> {
        lock(&self.checked).1 = journal.data_version().await?;
        let mut intents = HashMap::new();
        let mut after = 0;
        loop {
            let rows = journal.repairs(after, PAGE, Vec::new()).await?;
            let Some(last) = rows.last() else { break };
            after = last.id;
            intents.extend(rows.into_iter().map(|row| (row.key, row.op)));
        }
        Ok(intents)
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}
