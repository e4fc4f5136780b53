//! Keys that a failed dual write or delete left different on the two sides, each with
//! its newest intent, so reads can skip the stale side until `repair()` levels it:
//! without this, a read preferring the cloud would serve the bytes a queued write
//! replaced, or an object a queued delete removed from the local side.
//!
//! Loaded from the journal on first use (rows an earlier process left count too), then
//! kept current by this process's writes and repairs. Writes another process queues
//! while this one runs are not seen until it reopens the journal.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use tokio::sync::OnceCell;

use crate::error::Result;
use crate::journal::{Journal, RepairOp};

/// Rows read per journal query while loading.
const PAGE: usize = 1024;

type Intents = Mutex<HashMap<String, RepairOp>>;

#[derive(Debug, Default)]
pub(super) struct Queued {
    intents: OnceCell<Intents>,
}

impl Queued {
    /// The newest queued intent of `key`, if one is waiting for a repair.
    pub async fn intent(&self, journal: &Journal, key: &str) -> Result<Option<RepairOp>> {
        Ok(lock(self.loaded(journal).await?).get(key).cloned())
    }

    /// Whether `key` waits for a repair to delete it.
    pub async fn deleted(&self, journal: &Journal, key: &str) -> Result<bool> {
        Ok(self.intent(journal, key).await? == Some(RepairOp::Delete))
    }

    /// A write or delete of `key` did not reach every side: `op` is its newest intent.
    pub async fn insert(&self, journal: &Journal, key: &str, op: RepairOp) -> Result<()> {
        lock(self.loaded(journal).await?).insert(key.to_owned(), op);
        Ok(())
    }

    /// Both sides of `key` hold its newest intent now.
    pub async fn remove(&self, journal: &Journal, key: &str) -> Result<()> {
        lock(self.loaded(journal).await?).remove(key);
        Ok(())
    }

    /// Changes wait for the load, so none is lost to a snapshot taken before it.
    async fn loaded(&self, journal: &Journal) -> Result<&Intents> {
        self.intents
            .get_or_try_init(|| async {
                let mut intents = HashMap::new();
                let mut after = 0;
                loop {
                    let rows = journal.repairs(after, PAGE, Vec::new()).await?;
                    let Some(last) = rows.last() else { break };
                    after = last.id;
                    intents.extend(rows.into_iter().map(|row| (row.key, row.op)));
                }
                Ok(Mutex::new(intents))
            })
            .await
    }
}

fn lock(intents: &Intents) -> MutexGuard<'_, HashMap<String, RepairOp>> {
    intents.lock().unwrap_or_else(|e| e.into_inner())
}
