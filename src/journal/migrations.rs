//! The migration journal: one row per migration, and one per verified copy. A copy is
//! recorded only after it was verified, and before its source may be deleted, so a
//! crash at any point leaves either a re-copy or a completed step, never a loss.

use std::collections::HashMap;

use rusqlite::{OptionalExtension, Transaction, TransactionBehavior, params};

use super::Journal;
use super::tiers::{TierRow, add_tier_row};
use crate::error::Result;

pub(super) const MIGRATIONS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS migrations (
    id INTEGER PRIMARY KEY,
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    scope TEXT NOT NULL,
    finished INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS migrated (
    source TEXT NOT NULL,
    target TEXT NOT NULL,
    key TEXT NOT NULL,
    migration INTEGER NOT NULL,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    source_deleted INTEGER NOT NULL DEFAULT 0,
    etag TEXT,
    racy INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (source, target, key)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS migrated_deleted ON migrated (migration, key) WHERE source_deleted = 1;
";

/// Which objects a migration covers. A new migration with the same scope continues
/// an unfinished one (same id), so `rollback(id)` covers every run of it.
#[derive(Debug, Clone)]
pub struct MigrationScope {
    pub source: String,
    pub target: String,
    /// Prefix and shard, e.g. `"images/ 0/1"`.
    pub scope: String,
}

/// A verified copy: the source's size, mtime and ETag when it was copied, and its
/// SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigratedRow {
    pub key: String,
    pub size: u64,
    pub mtime_ns: i64,
    pub sha256: String,
    /// `None` in rows from before ETags were kept.
    pub etag: Option<String>,
    /// The source's mtime was too recent when it was copied to tell a later rewrite
    /// (`ObjectInfo::racy_at`), so size, mtime and ETag cannot vouch for it.
    pub racy: bool,
}

impl Journal {
    /// The id of the unfinished migration of `scope`, or of a new one.
    pub async fn begin_migration(&self, scope: MigrationScope) -> Result<i64> {
        self.run(move |c| {
            // Immediate: shards starting together each read, then insert; a deferred
            // transaction would fail the second one's insert (its snapshot is stale)
            // rather than wait for the first to commit and then find its id.
            let tx = Transaction::new_unchecked(c, TransactionBehavior::Immediate)?;
            let open: Option<i64> = tx
                .query_row(
                    "SELECT id FROM migrations WHERE source = ?1 AND target = ?2 AND scope = ?3
                     AND finished = 0 ORDER BY id DESC LIMIT 1",
                    params![scope.source, scope.target, scope.scope],
                    |r| r.get(0),
                )
                .optional()?;
            let id = match open {
                Some(id) => id,
                None => {
                    tx.execute(
                        "INSERT INTO migrations (source, target, scope) VALUES (?1, ?2, ?3)",
                        params![scope.source, scope.target, scope.scope],
                    )?;
                    tx.last_insert_rowid()
                }
            };
            tx.commit()?;
            Ok(id)
        })
        .await
    }

    pub async fn finish_migration(&self, id: i64) -> Result<()> {
        self.run(move |c| {
            c.execute("UPDATE migrations SET finished = 1 WHERE id = ?1", [id])
                .map(drop)
        })
        .await
    }

    /// `(source, target)` store names of a migration.
    pub async fn migration_stores(&self, id: i64) -> Result<Option<(String, String)>> {
        self.run(move |c| {
            c.query_row(
                "SELECT source, target FROM migrations WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
        })
        .await
    }

    /// Verified copies from `source` to `target` with keys in `first..=last` (one page
    /// of a walk), by key.
    pub async fn migrated_between(
        &self,
        source: &str,
        target: &str,
        first: &str,
        last: &str,
    ) -> Result<HashMap<String, MigratedRow>> {
        let args = [source, target, first, last].map(str::to_owned);
        self.run(move |c| {
            c.prepare_cached(
                "SELECT key, size, mtime_ns, sha256, etag, racy FROM migrated
                 WHERE source = ?1 AND target = ?2 AND key >= ?3 AND key <= ?4",
            )?
            .query_map(params![args[0], args[1], args[2], args[3]], migrated_row)?
            .map(|row| row.map(|r| (r.key.clone(), r)))
            .collect()
        })
        .await
    }

    /// Records a verified copy and, for a copy into the hot tier, the object's age
    /// there (`tier`), in one transaction: a second commit per object cost a tenth of
    /// a migration's CPU.
    pub async fn record_migrated(
        &self,
        migration: i64,
        source: &str,
        target: &str,
        row: MigratedRow,
        tier: Option<TierRow>,
    ) -> Result<()> {
        let (source, target) = (source.to_owned(), target.to_owned());
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            tx.prepare_cached(
                "INSERT OR REPLACE INTO migrated
                 (source, target, key, migration, size, mtime_ns, sha256, etag, racy,
                  source_deleted)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, 0)",
            )?
            .execute(params![
                source,
                target,
                row.key,
                migration,
                row.size as i64,
                row.mtime_ns,
                row.sha256,
                row.etag,
                row.racy
            ])?;
            if let Some(tier) = &tier {
                add_tier_row(&tx, tier)?;
            }
            tx.commit()
        })
        .await
    }

    /// Marks the source of a verified copy as deleted by `migration` (which may be a
    /// later run than the one that copied it), or as restored with `None`.
    pub async fn set_source_deleted(
        &self,
        source: &str,
        target: &str,
        key: &str,
        migration: Option<i64>,
    ) -> Result<()> {
        let args = [source, target, key].map(str::to_owned);
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE migrated SET source_deleted = ?4 IS NOT NULL,
                                     migration = coalesce(?4, migration)
                 WHERE source = ?1 AND target = ?2 AND key = ?3",
            )?
            .execute(params![args[0], args[1], args[2], migration])
            .map(drop)
        })
        .await
    }

    /// Sources a migration deleted, in key order after `after`, at most `limit`.
    pub async fn deleted_by(
        &self,
        migration: i64,
        after: &str,
        limit: usize,
    ) -> Result<Vec<MigratedRow>> {
        let after = after.to_owned();
        self.run(move |c| {
            c.prepare_cached(
                "SELECT key, size, mtime_ns, sha256, etag, racy FROM migrated
                 WHERE migration = ?1 AND source_deleted = 1 AND key > ?2
                 ORDER BY key LIMIT ?3",
            )?
            .query_map(params![migration, after, limit as i64], migrated_row)?
            .collect()
        })
        .await
    }
}

fn migrated_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<MigratedRow> {
    Ok(MigratedRow {
        key: r.get(0)?,
        size: r.get::<_, i64>(1)? as u64,
        mtime_ns: r.get(2)?,
        sha256: r.get(3)?,
        etag: r.get(4)?,
        racy: r.get(5)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str) -> MigratedRow {
        MigratedRow {
            key: key.into(),
            size: 3,
            mtime_ns: 7,
            sha256: "ab".repeat(32),
            etag: Some(format!("{}-7-3", key.len())),
            racy: key.ends_with('2'),
        }
    }

    #[tokio::test]
    async fn unfinished_migrations_continue_and_deletions_are_listed() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        let scope = MigrationScope {
            source: "file:///a/".into(),
            target: "s3://b/".into(),
            scope: " 0/1".into(),
        };
        let id = j.begin_migration(scope.clone()).await.unwrap();
        assert_eq!(j.begin_migration(scope.clone()).await.unwrap(), id);
        for key in ["x/1", "x/2", "y"] {
            j.record_migrated(id, &scope.source, &scope.target, row(key), None)
                .await
                .unwrap();
        }
        j.set_source_deleted(&scope.source, &scope.target, "x/2", Some(id))
            .await
            .unwrap();
        j.set_source_deleted(&scope.source, &scope.target, "y", Some(id))
            .await
            .unwrap();
        let page = j
            .migrated_between(&scope.source, &scope.target, "x/", "x/z")
            .await
            .unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page["x/1"], row("x/1"));
        let deleted = j.deleted_by(id, "", 10).await.unwrap();
        assert_eq!(deleted, vec![row("x/2"), row("y")]);
        assert_eq!(j.deleted_by(id, "x/2", 10).await.unwrap(), vec![row("y")]);
        j.set_source_deleted(&scope.source, &scope.target, "y", None)
            .await
            .unwrap();
        assert_eq!(j.deleted_by(id, "", 10).await.unwrap(), vec![row("x/2")]);
        j.finish_migration(id).await.unwrap();
        assert_ne!(j.begin_migration(scope).await.unwrap(), id);
    }

    #[tokio::test]
    async fn rows_from_before_etags_match_by_size_and_mtime() {
        let (_dir, path) = super::super::made_by_older_version(
            "CREATE TABLE migrated (source TEXT NOT NULL, target TEXT NOT NULL,
             key TEXT NOT NULL, migration INTEGER NOT NULL, size INTEGER NOT NULL,
             mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
             source_deleted INTEGER NOT NULL DEFAULT 0,
             PRIMARY KEY (source, target, key)) WITHOUT ROWID;
             INSERT INTO migrated VALUES ('a', 'b', 'k', 1, 3, 7, 'ab', 0);",
        );
        let j = Journal::open(&path).unwrap();
        let page = j.migrated_between("a", "b", "k", "k").await.unwrap();
        let expected = MigratedRow {
            etag: None,
            racy: false,
            sha256: "ab".into(),
            ..row("k")
        };
        assert_eq!(page["k"], expected);
    }
}
