//! Outdated copies in the colder tiers (`journal::outdated`): a write or delete that
//! cannot remove one marks it, reads skip it, and tier cycles and repairs delete it
//! once its tier answers.

use super::Tier;
use crate::dual::{Side, Storage};
use crate::error::Result;
use crate::key::Key;

/// Marked copies looked at per journal query.
const BATCH: usize = 256;

impl Storage {
    /// `side`'s copy of `key` could not be deleted though a write or delete made it
    /// outdated: a colder tier's is marked, for reads to skip and a later pass to
    /// delete. Whether it was marked (the write sides' own failures are the dual
    /// journal's to repair).
    pub(crate) async fn note_outdated(&self, key: &Key, side: Side) -> bool {
        match (side, self.journal()) {
            (Side::Warm | Side::Cold, Some(journal)) => journal
                .mark_outdated(key.as_str(), side.as_str())
                .await
                .is_ok(),
            _ => false,
        }
    }

    /// Deletes the marked copies whose tier answers now, each under its key's lock;
    /// one whose tier the journal records the object in again is current (a move
    /// wrote it) and only loses its mark. A tier still down keeps its marks.
    pub async fn clear_outdated_copies(&self) -> Result<()> {
        let Some(journal) = self.journal() else {
            return Ok(());
        };
        let mut after = None;
        loop {
            let marked = journal.outdated_copies(after.clone(), BATCH).await?;
            let Some(last) = marked.last() else {
                return Ok(());
            };
            after = Some(last.clone());
            for (key, tier) in marked {
                let _ = self.clear_outdated(&key, &tier).await;
            }
        }
    }

    async fn clear_outdated(&self, key: &str, tier: &str) -> Result<()> {
        let journal = self.journal().expect("marks come from the journal");
        let key = Key::parse(key)?;
        let _lock = self.lock_key(key.as_str()).await?;
        if journal.is_outdated(key.as_str(), tier).await?
            && let Some(store) = self.tier_store(Tier::parse(tier)?)
        {
            store.delete(&key).await?;
        }
        journal.clear_outdated(key.as_str(), tier).await
    }
}
