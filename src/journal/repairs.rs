//! The dual-write journal. An intent row is committed before a dual write touches
//! either side and deleted once both sides hold the bytes, so a row that outlives
//! its write (a side failed, or the process died mid-write) is exactly what
//! `repair()` must replay. Several rows for one key collapse to the newest.

use rusqlite::{OptionalExtension, params};

use super::Journal;
use crate::error::Result;

/// What both sides must agree on once a key is repaired.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RepairOp {
    /// Both sides hold the object; the intended bytes have this SHA-256.
    Put { sha256: String },
    /// Neither side holds the object.
    Delete,
    /// The key is being renamed to `to`, its bytes hashing to `sha256`. Once `to`
    /// holds them on a side, the move took place and neither side holds the key; if
    /// no side does, it never did, and both hold the key as a `Put` of them would.
    Renamed { to: String, sha256: String },
    /// A rename of the key to a name now holding the bytes of `sha256` took place on
    /// one write side and missed the other, `missed` (`local` or `cloud`). Neither
    /// side holds the key: the side that missed the move holds a stale copy, whatever
    /// its bytes; on the side that moved, other bytes under the key were written since
    /// (by the app, behind stowage's back) and stay.
    Moved { sha256: String, missed: String },
}

/// The newest intent for one key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepairRow {
    pub id: i64,
    pub key: String,
    pub op: RepairOp,
    pub attempts: i64,
}

pub const REPAIRS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS repairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    op TEXT NOT NULL,
    sha256 TEXT,
    target TEXT,
    side TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS repairs_key ON repairs (key, id);
";

impl Journal {
    /// Records the intent of a dual write before any side is touched.
    pub async fn begin_write(&self, key: &str, op: RepairOp) -> Result<i64> {
        let key = key.to_owned();
        self.run(move |c| {
            let (op, sha256, target, side) = match op {
                RepairOp::Put { sha256 } => ("put", Some(sha256), None, None),
                RepairOp::Delete => ("delete", None, None, None),
                RepairOp::Renamed { to, sha256 } => ("renamed", Some(sha256), Some(to), None),
                RepairOp::Moved { sha256, missed } => ("moved", Some(sha256), None, Some(missed)),
            };
            c.prepare_cached(
                "INSERT INTO repairs (key, op, sha256, target, side) VALUES (?1, ?2, ?3, ?4, ?5)",
            )?
            .execute(params![key, op, sha256, target, side])?;
            Ok(c.last_insert_rowid())
        })
        .await
    }

    /// Both sides hold what the intent `id` (and every older one of its key) asked for.
    pub async fn settle(&self, key: &str, id: i64) -> Result<()> {
        let key = key.to_owned();
        self.run(move |c| {
            c.prepare_cached("DELETE FROM repairs WHERE key = ?1 AND id <= ?2")?
                .execute(params![key, id])
                .map(drop)
        })
        .await
    }

    /// A side failed (or a repair attempt did): the row stays, with the reason.
    pub async fn note_failure(&self, id: i64, error: &str) -> Result<()> {
        let error = error.to_owned();
        self.run(move |c| {
            c.prepare_cached(
                "UPDATE repairs SET attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
            )?
            .execute(params![id, error])
            .map(drop)
        })
        .await
    }

    /// The newest intent of each key with one, oldest first, after row `after_id`,
    /// leaving out keys whose newest intent is a write still running (`in_flight`).
    pub async fn repairs(
        &self,
        after_id: i64,
        limit: usize,
        in_flight: Vec<i64>,
    ) -> Result<Vec<RepairRow>> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT r.id, r.key, r.op, r.sha256, r.attempts, r.target, r.side FROM repairs r
                 WHERE r.id > ?1 AND r.id = (SELECT MAX(id) FROM repairs WHERE key = r.key)
                 ORDER BY r.id LIMIT ?2",
            )?;
            let rows = stmt.query_map(params![after_id, limit as i64], repair_row)?;
            let rows: Vec<RepairRow> = rows.collect::<rusqlite::Result<_>>()?;
            Ok(rows
                .into_iter()
                .filter(|r| !in_flight.contains(&r.id))
                .collect())
        })
        .await
    }

    /// The newest intent of `key`, if it has one.
    pub async fn newest_intent(&self, key: &str) -> Result<Option<RepairRow>> {
        let key = key.to_owned();
        self.run(move |c| {
            c.prepare_cached(
                "SELECT id, key, op, sha256, attempts, target, side FROM repairs WHERE key = ?1
                 ORDER BY id DESC LIMIT 1",
            )?
            .query_row([key], repair_row)
            .optional()
        })
        .await
    }

    /// Keys left to repair, not counting writes still running.
    pub async fn pending_repairs(&self, in_flight: Vec<i64>) -> Result<u64> {
        self.run(move |c| {
            let mut stmt = c.prepare_cached("SELECT key, MAX(id) FROM repairs GROUP BY key")?;
            let ids = stmt.query_map([], |r| r.get::<_, i64>(1))?;
            let mut pending = 0;
            for id in ids {
                if !in_flight.contains(&id?) {
                    pending += 1;
                }
            }
            Ok(pending)
        })
        .await
    }
}

fn repair_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RepairRow> {
    let op: String = r.get(2)?;
    let (sha256, target, side): (Option<String>, Option<String>, Option<String>) =
        (r.get(3)?, r.get(5)?, r.get(6)?);
    let op = match (op.as_str(), sha256, target, side) {
        ("put", Some(sha256), _, _) => RepairOp::Put { sha256 },
        ("delete", _, _, _) => RepairOp::Delete,
        ("renamed", Some(sha256), Some(to), _) => RepairOp::Renamed { to, sha256 },
        ("moved", Some(sha256), _, Some(missed)) => RepairOp::Moved { sha256, missed },
        // Replaying an intent misread as a delete would remove the only copy.
        _ => {
            return Err(rusqlite::Error::FromSqlConversionFailure(
                2,
                rusqlite::types::Type::Text,
                format!("repair intent {op:?} with missing fields").into(),
            ));
        }
    };
    Ok(RepairRow {
        id: r.get(0)?,
        key: r.get(1)?,
        op,
        attempts: r.get(4)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn newest_intent_per_key_survives_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("journal.db");
        let j = Journal::open(&path).unwrap();
        let a1 = j
            .begin_write("a", RepairOp::Put { sha256: "1".into() })
            .await
            .unwrap();
        let b1 = j.begin_write("b", RepairOp::Delete).await.unwrap();
        let a2 = j
            .begin_write("a", RepairOp::Put { sha256: "2".into() })
            .await
            .unwrap();
        j.note_failure(a2, "UNAVAILABLE").await.unwrap();
        drop(j);

        let j = Journal::open(&path).unwrap();
        let rows = j.repairs(0, 10, vec![]).await.unwrap();
        assert_eq!(rows.iter().map(|r| r.id).collect::<Vec<_>>(), [b1, a2]);
        assert_eq!(rows[1].op, RepairOp::Put { sha256: "2".into() });
        assert_eq!(rows[1].attempts, 1);
        assert_eq!(j.pending_repairs(vec![]).await.unwrap(), 2);
        assert_eq!(j.pending_repairs(vec![b1]).await.unwrap(), 1);
        assert!(
            j.repairs(0, 10, vec![a2])
                .await
                .unwrap()
                .iter()
                .all(|r| r.key == "b")
        );

        assert_eq!(j.newest_intent("a").await.unwrap(), Some(rows[1].clone()));
        let renamed = RepairOp::Renamed {
            to: "d".into(),
            sha256: "4".into(),
        };
        let moved = RepairOp::Moved {
            sha256: "4".into(),
            missed: "cloud".into(),
        };
        for op in [renamed, moved] {
            let c1 = j.begin_write("c", op.clone()).await.unwrap();
            assert_eq!(j.newest_intent("c").await.unwrap().unwrap().op, op);
            j.settle("c", c1).await.unwrap();
            assert_eq!(j.newest_intent("c").await.unwrap(), None);
        }
        j.settle("a", a2).await.unwrap();
        assert_eq!(j.repairs(0, 10, vec![]).await.unwrap().len(), 1);
        assert!(a1 < a2);
        j.settle("b", b1).await.unwrap();
        assert_eq!(j.pending_repairs(vec![]).await.unwrap(), 0);
    }
}
