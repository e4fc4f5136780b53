//! `rollback(id)`: puts back every source a migration deleted, copied from its
//! verified copy and checked against the SHA-256 recorded when it was migrated. A
//! source written again since is left as it is.

use futures::StreamExt;

use super::Failure;
use crate::dual::{Storage, digest};
use crate::error::{Error, Result};
use crate::journal::{Journal, MigratedRow};
use crate::key::Key;
use crate::store::{Existing, Store};

#[derive(Debug, Clone, Default)]
pub struct RollbackReport {
    pub restored: u64,
    pub failed: Vec<Failure>,
}

const BATCH: usize = 256;

impl Storage {
    pub async fn rollback(&self, id: i64) -> Result<RollbackReport> {
        let journal = self
            .journal()
            .ok_or_else(|| Error::config("journal", "a rollback needs the journal"))?;
        let (source, target) =
            journal
                .migration_stores(id)
                .await?
                .ok_or_else(|| Error::NotFound {
                    key: format!("migration {id}"),
                })?;
        let (source, target) = (self.store_named(&source)?, self.store_named(&target)?);
        let mut report = RollbackReport::default();
        let mut after = String::new();
        loop {
            let rows = journal.deleted_by(id, &after, BATCH).await?;
            let Some(last) = rows.last() else { break };
            after = last.key.clone();
            let results: Vec<_> = futures::stream::iter(rows)
                .map(|row| async move {
                    let r = self.restore(journal, source, target, &row).await;
                    (row, r)
                })
                .buffer_unordered(self.transfer().concurrency)
                .collect()
                .await;
            for (row, result) in results {
                match result {
                    Ok(()) => report.restored += 1,
                    Err(e) => report.failed.push(Failure {
                        key: row.key,
                        code: e.code(),
                        message: e.to_string(),
                    }),
                }
            }
        }
        Ok(report)
    }

    async fn restore(
        &self,
        journal: &Journal,
        source: &Store,
        target: &Store,
        row: &MigratedRow,
    ) -> Result<()> {
        let key = Key::parse(&row.key)?;
        let _lock = self.lock_key(key.as_str()).await?;
        match digest(source, &key).await? {
            // The bytes the migration recorded: a rollback interrupted before it cleared
            // this mark restored them, or the migration stopped between marking the
            // deletion and doing it. Only the mark is left to clear.
            Some(sha256) if sha256 == row.sha256 => {}
            // Written again since the migration deleted it: the newer bytes stay.
            Some(_) => {
                return Err(Error::AlreadyExists {
                    key: row.key.clone(),
                });
            }
            None => {
                let mut copy = target.head(&key).await?;
                let recorded = copy.sha256.as_deref().unwrap_or(&row.sha256);
                if copy.size != row.size || recorded != row.sha256 {
                    return Err(Error::Integrity(format!(
                        "{key}: the copy now holds SHA-256 {recorded} ({} bytes), the \
                         migration recorded {} ({} bytes)",
                        copy.size, row.sha256, row.size
                    )));
                }
                // The bytes read are checked against it before anything is written,
                // and a file the app puts at the key meanwhile is not replaced.
                copy.sha256 = Some(row.sha256.clone());
                let (cfg, temp_dir) = (self.transfer(), self.temp_dir());
                target
                    .copy_to_with(source, &copy, Existing::Refuse, &cfg, &temp_dir)
                    .await?;
            }
        }
        journal
            .set_source_deleted(source.name(), target.name(), key.as_str(), None)
            .await
    }
}
