//! Copies in a colder tier that a write or delete made outdated but could not remove
//! (the tier's server was down). Reads skip them, and tier cycles and repairs delete
//! them once the tier answers: left unmarked, a read that fell back past a hot store
//! that was down served the bytes an acknowledged write had replaced.

use rusqlite::params;

use super::Journal;
use crate::error::Result;

pub(super) const OUTDATED_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS outdated_copies (
    key TEXT NOT NULL,
    tier TEXT NOT NULL,
    PRIMARY KEY (key, tier)
) WITHOUT ROWID;
";

impl Journal {
    pub async fn mark_outdated(&self, key: &str, tier: &str) -> Result<()> {
        self.change_mark(
            "INSERT OR IGNORE INTO outdated_copies (key, tier) VALUES (?1, ?2)",
            key,
            tier,
        )
        .await
    }

    pub async fn clear_outdated(&self, key: &str, tier: &str) -> Result<()> {
        self.change_mark(
            "DELETE FROM outdated_copies WHERE key = ?1 AND tier = ?2",
            key,
            tier,
        )
        .await
    }

    async fn change_mark(&self, sql: &'static str, key: &str, tier: &str) -> Result<()> {
        let (key, tier) = (key.to_owned(), tier.to_owned());
        self.run(move |c| c.prepare_cached(sql)?.execute(params![key, tier]).map(drop))
            .await
    }

    /// Whether `tier`'s copy of `key` is outdated: marked, and not where the tier
    /// record has put the object since (a move there wrote its current bytes).
    pub async fn is_outdated(&self, key: &str, tier: &str) -> Result<bool> {
        Ok(!self.outdated_between(tier, key, key).await?.is_empty())
    }

    /// The keys from `first` to `last` whose copy in `tier` is outdated, as
    /// [`Journal::is_outdated`] says: one query for a page of a tier's listing.
    pub async fn outdated_between(
        &self,
        tier: &str,
        first: &str,
        last: &str,
    ) -> Result<Vec<String>> {
        let (tier, first, last) = (tier.to_owned(), first.to_owned(), last.to_owned());
        self.run(move |c| {
            c.prepare_cached(
                "SELECT o.key FROM outdated_copies o WHERE o.tier = ?1 AND o.key BETWEEN ?2 AND ?3
                 AND NOT EXISTS (SELECT 1 FROM tiers t WHERE t.key = o.key AND t.tier = o.tier)",
            )?
            .query_map(params![tier, first, last], |r| r.get(0))?
            .collect()
        })
        .await
    }

    /// Up to `limit` marked copies as `(key, tier)`, in order, after `after`.
    pub async fn outdated_copies(
        &self,
        after: Option<(String, String)>,
        limit: usize,
    ) -> Result<Vec<(String, String)>> {
        let (after_key, after_tier) = after.unwrap_or_default();
        self.run(move |c| {
            c.prepare_cached(
                "SELECT key, tier FROM outdated_copies WHERE (key, tier) > (?1, ?2)
                 ORDER BY key, tier LIMIT ?3",
            )?
            .query_map(params![after_key, after_tier, limit as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::TierRow;

    #[tokio::test]
    async fn a_marked_copy_is_outdated_until_cleared_or_moved_to() {
        let dir = tempfile::tempdir().unwrap();
        let j = Journal::open(&dir.path().join("journal.db")).unwrap();
        j.mark_outdated("a", "warm").await.unwrap();
        j.mark_outdated("a", "warm").await.unwrap();
        j.mark_outdated("b", "cold").await.unwrap();
        assert!(j.is_outdated("a", "warm").await.unwrap());
        assert!(!j.is_outdated("a", "cold").await.unwrap());
        let all = j.outdated_copies(None, 10).await.unwrap();
        assert_eq!(
            all,
            [("a".into(), "warm".into()), ("b".into(), "cold".into())]
        );
        let after_a = j.outdated_copies(Some(all[0].clone()), 10).await.unwrap();
        assert_eq!(after_a, [("b".into(), "cold".into())]);

        // A move into the tier wrote the object's current bytes there.
        let row = |tier: &str| TierRow {
            key: "b".into(),
            tier: tier.into(),
            size: 1,
            last_access_ms: 0,
        };
        j.set_tier_row(row("cold")).await.unwrap();
        assert!(!j.is_outdated("b", "cold").await.unwrap());
        j.set_tier_row(row("hot")).await.unwrap();
        assert!(j.is_outdated("b", "cold").await.unwrap());
        assert_eq!(j.outdated_between("cold", "a", "c").await.unwrap(), ["b"]);
        assert!(
            j.outdated_between("cold", "c", "d")
                .await
                .unwrap()
                .is_empty()
        );
        assert!(
            j.outdated_between("warm", "b", "c")
                .await
                .unwrap()
                .is_empty()
        );

        j.clear_outdated("a", "warm").await.unwrap();
        assert!(!j.is_outdated("a", "warm").await.unwrap());
        assert_eq!(j.outdated_copies(None, 10).await.unwrap().len(), 1);
    }
}
