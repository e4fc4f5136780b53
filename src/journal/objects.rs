//! Headers and SHA-256 of objects kept as plain files.

use std::collections::{BTreeMap, HashMap};

use rusqlite::{OptionalExtension, params};

use super::Journal;
use crate::error::Result;

/// The index row of one file. `size`, `mtime_ns` and `etag` tell whether the file is
/// still the one that was indexed: a file rewritten behind stowage's back loses its row.
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectRecord {
    pub size: u64,
    pub mtime_ns: i64,
    /// The file store's ETag of the file (inode, mtime, size). Size and mtime alone
    /// do not tell files apart: the kernel stamps mtimes from a clock that ticks every
    /// few milliseconds, so two writes of one size in one tick look the same. `None`
    /// in rows written before it was kept.
    pub etag: Option<String>,
    pub sha256: String,
    pub content_type: String,
    pub cache_control: String,
    pub metadata: BTreeMap<String, String>,
}

impl Journal {
    pub async fn put_object(&self, store: &str, key: &str, record: ObjectRecord) -> Result<()> {
        let (store, key) = (store.to_owned(), key.to_owned());
        let metadata = serde_json::to_string(&record.metadata).expect("string map serializes");
        self.run(move |c| {
            c.prepare_cached(
                "INSERT OR REPLACE INTO objects (store, key, size, mtime_ns, sha256,
                 content_type, cache_control, metadata, etag)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                store,
                key,
                record.size as i64,
                record.mtime_ns,
                record.sha256,
                record.content_type,
                record.cache_control,
                metadata,
                record.etag
            ])
            .map(drop)
        })
        .await
    }

    pub async fn get_object(&self, store: &str, key: &str) -> Result<Option<ObjectRecord>> {
        let (store, key) = (store.to_owned(), key.to_owned());
        self.run(move |c| {
            c.prepare_cached(
                "SELECT size, mtime_ns, sha256, content_type, cache_control, metadata, etag
                 FROM objects WHERE store = ?1 AND key = ?2",
            )?
            .query_row(params![store, key], object_record)
            .optional()
        })
        .await
    }

    /// The rows of `store` with keys in `first..=last` (one page of a listing), by key.
    pub async fn objects_between(
        &self,
        store: &str,
        first: &str,
        last: &str,
    ) -> Result<HashMap<String, ObjectRecord>> {
        let args = [store, first, last].map(str::to_owned);
        self.run(move |c| {
            c.prepare_cached(
                "SELECT size, mtime_ns, sha256, content_type, cache_control, metadata, etag, key
                 FROM objects WHERE store = ?1 AND key >= ?2 AND key <= ?3",
            )?
            .query_map(params![args[0], args[1], args[2]], |row| {
                Ok((row.get(7)?, object_record(row)?))
            })?
            .collect()
        })
        .await
    }

    pub async fn delete_object(&self, store: &str, key: &str) -> Result<()> {
        let (store, key) = (store.to_owned(), key.to_owned());
        self.run(move |c| {
            c.prepare_cached("DELETE FROM objects WHERE store = ?1 AND key = ?2")?
                .execute(params![store, key])
                .map(drop)
        })
        .await
    }
}

fn object_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<ObjectRecord> {
    let metadata: String = row.get(5)?;
    Ok(ObjectRecord {
        size: row.get::<_, i64>(0)? as u64,
        mtime_ns: row.get(1)?,
        sha256: row.get(2)?,
        content_type: row.get(3)?,
        cache_control: row.get(4)?,
        metadata: serde_json::from_str(&metadata).unwrap_or_default(),
        etag: row.get(6)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(size: u64) -> ObjectRecord {
        ObjectRecord {
            size,
            mtime_ns: 42,
            sha256: "ab".repeat(32),
            content_type: "image/png".into(),
            cache_control: "public, max-age=86400".into(),
            metadata: [("a".to_string(), "b".to_string())].into(),
            etag: Some("1f-2a-4".into()),
        }
    }

    #[tokio::test]
    async fn rows_round_trip_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".stowage/journal.db");
        let j = Journal::open(&path).unwrap();
        j.put_object("file:///x", "a/b.png", record(7))
            .await
            .unwrap();
        j.put_object("file:///y", "a/b.png", record(9))
            .await
            .unwrap();
        drop(j);
        let j = Journal::open(&path).unwrap();
        assert_eq!(
            j.get_object("file:///x", "a/b.png").await.unwrap(),
            Some(record(7))
        );
        j.delete_object("file:///x", "a/b.png").await.unwrap();
        assert_eq!(j.get_object("file:///x", "a/b.png").await.unwrap(), None);
        assert_eq!(
            j.get_object("file:///y", "a/b.png").await.unwrap(),
            Some(record(9))
        );
        j.put_object("file:///y", "a/c.png", record(3))
            .await
            .unwrap();
        j.put_object("file:///y", "b.png", record(4)).await.unwrap();
        let page = j.objects_between("file:///y", "a/", "a/z").await.unwrap();
        assert_eq!(page.len(), 2);
        assert_eq!(page["a/c.png"], record(3));
    }

    #[tokio::test]
    async fn a_journal_from_before_etags_gains_the_column_and_keeps_its_rows() {
        let (_dir, path) = super::super::made_by_older_version(
            "CREATE TABLE objects (store TEXT NOT NULL, key TEXT NOT NULL,
             size INTEGER NOT NULL, mtime_ns INTEGER NOT NULL, sha256 TEXT NOT NULL,
             content_type TEXT NOT NULL, cache_control TEXT NOT NULL, metadata TEXT NOT NULL,
             PRIMARY KEY (store, key)) WITHOUT ROWID;
             INSERT INTO objects VALUES ('s', 'k', 7, 42, 'ab', 'image/png', 'no-cache', '{}');",
        );
        let j = Journal::open(&path).unwrap();
        let row = j.get_object("s", "k").await.unwrap().unwrap();
        assert_eq!((row.size, row.sha256.as_str(), row.etag), (7, "ab", None));
        j.put_object("s", "n", record(5)).await.unwrap();
        assert_eq!(j.get_object("s", "n").await.unwrap(), Some(record(5)));
        drop(j);
        Journal::open(&path).unwrap(); // the column is added once
    }
}
