//! The tier of each tracked object and when it was last read or written, which is
//! what the tier policy ages objects by.

use rusqlite::{Connection, OptionalExtension, params};

use super::Journal;
use crate::error::Result;

pub(super) const TIERS_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS tiers (
    key TEXT PRIMARY KEY,
    tier TEXT NOT NULL,
    size INTEGER NOT NULL,
    last_access_ms INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS tiers_by_age ON tiers (tier, last_access_ms);
";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TierRow {
    pub key: String,
    pub tier: String,
    pub size: u64,
    pub last_access_ms: i64,
}

impl Journal {
    pub async fn set_tier_row(&self, row: TierRow) -> Result<()> {
        self.run(move |c| insert_tier_row(c, "INSERT OR REPLACE", &row))
            .await
    }

    pub async fn tier_row(&self, key: &str) -> Result<Option<TierRow>> {
        let key = key.to_owned();
        self.run(move |c| {
            c.prepare_cached("SELECT key, tier, size, last_access_ms FROM tiers WHERE key = ?1")?
                .query_row([key], tier_row)
                .optional()
        })
        .await
    }

    pub async fn forget_tier(&self, key: &str) -> Result<()> {
        let key = key.to_owned();
        self.run(move |c| {
            c.prepare_cached("DELETE FROM tiers WHERE key = ?1")?
                .execute([key])
                .map(drop)
        })
        .await
    }

    /// Moves last-access times forward (never back), in one transaction.
    pub async fn touch_tiers(&self, touches: Vec<(String, i64)>) -> Result<()> {
        self.run(move |c| {
            let tx = c.unchecked_transaction()?;
            {
                let mut update = tx.prepare_cached(
                    "UPDATE tiers SET last_access_ms = max(last_access_ms, ?2) WHERE key = ?1",
                )?;
                for (key, at) in &touches {
                    update.execute(params![key, at])?;
                }
            }
            tx.commit()
        })
        .await
    }

    /// Objects of `tier` untouched since `before_ms`, oldest first, after the
    /// `(last_access_ms, key)` position of the previous page.
    pub async fn stale_in_tier(
        &self,
        tier: &str,
        before_ms: i64,
        after: Option<(i64, String)>,
        limit: usize,
    ) -> Result<Vec<TierRow>> {
        let tier = tier.to_owned();
        let (after_ms, after_key) = after.unwrap_or((i64::MIN, String::new()));
        self.run(move |c| {
            c.prepare_cached(
                "SELECT key, tier, size, last_access_ms FROM tiers
                 WHERE tier = ?1 AND last_access_ms < ?2
                   AND (last_access_ms > ?3 OR (last_access_ms = ?3 AND key > ?4))
                 ORDER BY last_access_ms, key LIMIT ?5",
            )?
            .query_map(
                params![tier, before_ms, after_ms, after_key, limit as i64],
                tier_row,
            )?
            .collect()
        })
        .await
    }

    /// `(tier, objects, bytes)` for every tier that holds something.
    pub async fn tier_totals(&self) -> Result<Vec<(String, u64, u64)>> {
        self.run(|c| {
            c.prepare_cached(
                "SELECT tier, count(*), coalesce(sum(size), 0) FROM tiers GROUP BY tier",
            )?
            .query_map([], |r| {
                Ok((
                    r.get(0)?,
                    r.get::<_, i64>(1)? as u64,
                    r.get::<_, i64>(2)? as u64,
                ))
            })?
            .collect()
        })
        .await
    }
}

fn tier_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<TierRow> {
    Ok(TierRow {
        key: r.get(0)?,
        tier: r.get(1)?,
        size: r.get::<_, i64>(2)? as u64,
        last_access_ms: r.get(3)?,
    })
}

/// `row`, unless its key has one already (its age and tier are newer), in the caller's
/// transaction.
pub(super) fn add_tier_row(c: &Connection, row: &TierRow) -> rusqlite::Result<()> {
    insert_tier_row(c, "INSERT OR IGNORE", row)
}

/// `insert` is `INSERT OR REPLACE` or `INSERT OR IGNORE`: what a row already there gets.
fn insert_tier_row(c: &Connection, insert: &str, row: &TierRow) -> rusqlite::Result<()> {
    c.prepare_cached(&format!("{insert} INTO tiers VALUES (?1, ?2, ?3, ?4)"))?
        .execute(params![
            row.key,
            row.tier,
            row.size as i64,
            row.last_access_ms
        ])
        .map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(key: &str, tier: &str, at: i64) -> TierRow {
        TierRow {
            key: key.into(),
            tier: tier.into(),
            size: 10,
            last_access_ms: at,
        }
    }

    #[tokio::test]
    async fn stale_rows_come_oldest_first_and_touches_only_move_forward() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("j.db")).unwrap();
        for r in [
            row("a", "hot", 30),
            row("b", "hot", 10),
            row("c", "warm", 5),
        ] {
            j.set_tier_row(r).await.unwrap();
        }
        j.touch_tiers(vec![("a".into(), 20), ("b".into(), 25), ("zz".into(), 1)])
            .await
            .unwrap();
        let stale = j.stale_in_tier("hot", 100, None, 10).await.unwrap();
        assert_eq!(stale, vec![row("b", "hot", 25), row("a", "hot", 30)]);
        assert_eq!(j.stale_in_tier("hot", 26, None, 10).await.unwrap().len(), 1);
        let next = j.stale_in_tier("hot", 100, Some((25, "b".into())), 10);
        assert_eq!(next.await.unwrap(), vec![row("a", "hot", 30)]);
        assert_eq!(
            j.tier_totals().await.unwrap(),
            vec![("hot".into(), 2, 20), ("warm".into(), 1, 10)]
        );
        j.forget_tier("c").await.unwrap();
        assert_eq!(j.tier_row("c").await.unwrap(), None);
        assert_eq!(j.tier_row("a").await.unwrap(), Some(row("a", "hot", 30)));
    }
}
