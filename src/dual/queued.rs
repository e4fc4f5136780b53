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

/// Without a journal nothing is ever queued.
#[derive(Debug)]
pub(super) struct Queued {
    journal: Option<Journal>,
    intents: OnceCell<Intents>,
}

impl Queued {
    pub fn new(journal: Option<Journal>) -> Queued {
        Queued {
            journal,
            intents: OnceCell::new(),
        }
    }

    /// The newest queued intent of `key`, if one is waiting for a repair.
    pub async fn intent(&self, key: &str) -> Result<Option<RepairOp>> {
        Ok(match self.loaded().await? {
            Some(intents) => lock(intents).get(key).cloned(),
            None => None,
        })
    }

    /// Whether `key` waits for a repair to delete it.
    pub async fn deleted(&self, key: &str) -> Result<bool> {
        Ok(self.intent(key).await? == Some(RepairOp::Delete))
    }

    /// A write or delete of `key` did not reach every side: `op` is its newest intent.
    pub async fn insert(&self, key: &str, op: RepairOp) -> Result<()> {
        if let Some(intents) = self.loaded().await? {
            lock(intents).insert(key.to_owned(), op);
        }
        Ok(())
    }

    /// Both sides of `key` hold its newest intent now.
    pub async fn remove(&self, key: &str) -> Result<()> {
        if let Some(intents) = self.loaded().await? {
            lock(intents).remove(key);
        }
        Ok(())
    }

    /// Changes wait for the load, so none is lost to a snapshot taken before it.
    async fn loaded(&self) -> Result<Option<&Intents>> {
        let Some(journal) = &self.journal else {
            return Ok(None);
        };
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
            .map(Some)
    }
}

fn lock(intents: &Intents) -> MutexGuard<'_, HashMap<String, RepairOp>> {
    intents.lock().unwrap_or_else(|e| e.into_inner())
}
