//! One tier cycle: warm objects past `warmToColdDays` go cold, then hot objects past
//! `hotToWarmDays` go warm (so an object moves one step per cycle), oldest first,
//! within the cycle's object and byte budgets. A failed move is reported and left
//! where it was; it never stops the cycle.

use std::time::Instant;

use futures::StreamExt;

use super::{Tier, Tiers, flush_touches, now_ms};
use crate::dual::{Event, EventKind, Storage};
use crate::error::{Error, Result};
use crate::journal::TierRow;
use crate::key::Key;
use crate::migrate::Failure;

#[derive(Debug, Clone, Default)]
pub struct CycleReport {
    /// The cycle's clock (`now` of `runTierCycle`, or the real time).
    pub now_ms: i64,
    pub to_warm: u64,
    pub to_cold: u64,
    pub bytes: u64,
    pub failed: Vec<Failure>,
    pub seconds: f64,
}

const DAY_MS: f64 = 86_400_000.0;
/// Rows read from the journal at once.
const BATCH: u64 = 256;

/// What is left of the cycle's `maxObjectsPerCycle` and `maxBytesPerCycle`.
struct Budget {
    objects: u64,
    bytes: u64,
    taken: bool,
}

impl Budget {
    fn new(objects: u64, bytes: u64) -> Self {
        Budget {
            objects,
            bytes,
            taken: false,
        }
    }

    /// Takes `size` from the budget, or says the cycle is full. An object larger than
    /// the whole byte budget goes alone, first in its cycle: every cycle stopped at it,
    /// and nothing behind it ever moved. A budget of 0 bytes moves nothing.
    fn take(&mut self, size: u64) -> bool {
        let alone = !self.taken && self.bytes > 0;
        if self.objects == 0 || (size > self.bytes && !alone) {
            return false;
        }
        self.objects -= 1;
        self.bytes = self.bytes.saturating_sub(size);
        self.taken = true;
        true
    }
}

impl Storage {
    pub async fn run_tier_cycle(&self, now: Option<i64>) -> Result<CycleReport> {
        let tiers = self.tiers_or_fail()?;
        let journal = self.journal().expect("tiers need the journal");
        flush_touches(tiers, journal).await?;
        let started = Instant::now();
        // Copies a write or delete left behind while their tier was down.
        self.clear_outdated_copies().await?;
        let now = now.unwrap_or_else(now_ms);
        let mut report = CycleReport {
            now_ms: now,
            ..Default::default()
        };
        let mut budget = Budget::new(
            tiers.policy.max_objects_per_cycle.unwrap_or(u64::MAX),
            tiers.policy.max_bytes_per_cycle.unwrap_or(u64::MAX),
        );
        for (from, to, days) in [
            (Tier::Warm, Tier::Cold, tiers.policy.warm_to_cold_days),
            (Tier::Hot, Tier::Warm, tiers.policy.hot_to_warm_days),
        ] {
            if self.tier_store(from).is_none() || self.tier_store(to).is_none() {
                continue;
            }
            let before = now - (days * DAY_MS) as i64;
            self.age_tier(tiers, (from, to), before, &mut budget, &mut report)
                .await?;
        }
        report.seconds = started.elapsed().as_secs_f64();
        tiers.finished_cycle(&report);
        Ok(report)
    }

    /// Moves the objects of `from` last touched before `before` to `to`.
    async fn age_tier(
        &self,
        tiers: &Tiers,
        (from, to): (Tier, Tier),
        before: i64,
        budget: &mut Budget,
        report: &mut CycleReport,
    ) -> Result<()> {
        let journal = self.journal().expect("tiers need the journal");
        let mut after: Option<(i64, String)> = None;
        loop {
            let rows = journal
                .stale_in_tier(
                    from.as_str(),
                    before,
                    after.clone(),
                    BATCH.min(budget.objects) as usize,
                )
                .await?;
            let Some(last) = rows.last() else {
                return Ok(());
            };
            after = Some((last.last_access_ms, last.key.clone()));
            let fetched = rows.len();
            let chosen: Vec<TierRow> = rows
                .into_iter()
                .take_while(|r| budget.take(r.size))
                .collect();
            let full = chosen.len() < fetched;
            let moves: Vec<_> = futures::stream::iter(chosen)
                .map(|row| async move {
                    let moved = async {
                        let _lock = self.lock_key(&row.key).await?;
                        // A write since this cycle picked the row made the object recent again.
                        match journal.tier_row(&row.key).await? {
                            Some(now) if now == row => {
                                let key = Key::parse(&row.key)?;
                                if self.settle_rewrite(tiers, &key, from).await? {
                                    return Ok(None);
                                }
                                self.move_locked(tiers, &row, from, to).await
                            }
                            _ => Ok(None),
                        }
                    }
                    .await;
                    (row, moved)
                })
                .buffer_unordered(self.transfer().concurrency)
                .collect()
                .await;
            for (row, moved) in moves {
                match moved {
                    Ok(Some(size)) => {
                        report.bytes += size;
                        match to {
                            Tier::Cold => report.to_cold += 1,
                            _ => report.to_warm += 1,
                        }
                    }
                    Ok(None) => {}
                    Err(e) => report.failed.push(Failure {
                        key: row.key,
                        code: e.code(),
                        message: e.to_string(),
                    }),
                }
            }
            if full || budget.objects == 0 {
                return Ok(());
            }
        }
    }

    /// Copies one object to the colder (or, with `setTier`, any) tier, verifies the
    /// copy, records the new tier, then deletes the old copy. Returns the bytes moved,
    /// or `None` when the object was gone from its tier (its row is dropped). The
    /// caller holds the key's lock.
    pub(super) async fn move_locked(
        &self,
        tiers: &Tiers,
        row: &TierRow,
        from: Tier,
        to: Tier,
    ) -> Result<Option<u64>> {
        let journal = self.journal().expect("tiers need the journal");
        let (Some(source), Some(target)) = (self.tier_store(from), self.tier_store(to)) else {
            return Err(Error::config("tiers", "tier store missing"));
        };
        let key = Key::parse(&row.key)?;
        let result = async {
            let info = match source.head(&key).await {
                Ok(info) => info,
                Err(Error::NotFound { .. }) => {
                    journal.forget_tier(key.as_str()).await?;
                    return Ok(None);
                }
                Err(e) => return Err(e),
            };
            // The same bucket in another storage class is a rewrite in place.
            let in_place = tiers.is_same_place((from, source), (to, target)).await?;
            // Marked before the copy: a move cut short after it (an error, a crash) left
            // a copy the record did not know, which a later write did not remove, and
            // which reads then served past a hot store that was down. Until the record
            // names `to`, reads skip the copy there, and the next cycle or repair deletes
            // it. A rewrite in place is the object itself.
            let marked = to != Tier::Hot && !in_place;
            if marked {
                journal.mark_outdated(key.as_str(), to.as_str()).await?;
            }
            let written = source
                .copy_to(target, &info, &self.transfer(), &self.temp_dir())
                .await?;
            if tiers.policy.verify {
                let stored = target.head(&key).await?;
                if stored.size != written.size || stored.sha256.as_ref() != Some(&written.sha256) {
                    return Err(Error::Integrity(format!(
                        "{key}: the {} copy does not match what was sent",
                        to.as_str()
                    )));
                }
            }
            journal
                .set_tier_row(TierRow {
                    key: key.to_string(),
                    tier: to.as_str().into(),
                    size: written.size,
                    last_access_ms: row.last_access_ms,
                })
                .await?;
            if tiers.policy.delete_after_move
                && !in_place
                && let Err(e) = source.delete(&key).await
            {
                // A copy left in `from` would go stale at the key's next write, which
                // deletes the recorded tier's copy only: the move is undone instead.
                // Should that delete fail too, the copy in `to` keeps its mark.
                journal
                    .set_tier_row(TierRow {
                        tier: from.as_str().into(),
                        size: written.size,
                        ..row.clone()
                    })
                    .await?;
                let _ = target.delete(&key).await;
                return Err(e);
            }
            if marked {
                // The record names `to`, which makes the mark moot; this tidies it.
                let _ = journal.clear_outdated(key.as_str(), to.as_str()).await;
            }
            Ok(Some(written.size))
        }
        .await;
        let hot = self
            .hot()
            .map(|(s, _)| s)
            .unwrap_or(crate::dual::Side::Local);
        match &result {
            Ok(Some(size)) => self.emit(|| {
                Event::new(EventKind::TierMoved, key.as_str())
                    .size(*size)
                    .side(to.side(hot))
            }),
            Ok(None) => {}
            Err(e) => self.emit(|| {
                Event::new(EventKind::TierMoveFailed, key.as_str())
                    .side(to.side(hot))
                    .error(e)
            }),
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::Budget;

    fn taken(mut budget: Budget, sizes: &[u64]) -> Vec<u64> {
        sizes
            .iter()
            .copied()
            .take_while(|&size| budget.take(size))
            .collect()
    }

    #[test]
    fn a_budget_takes_what_fits_and_an_oversize_object_only_first() {
        assert_eq!(taken(Budget::new(10, 1500), &[1000, 400, 200]), [1000, 400]);
        assert_eq!(taken(Budget::new(10, 1500), &[5000, 1000]), [5000]);
        assert_eq!(taken(Budget::new(10, 1500), &[1000, 5000]), [1000]);
        assert_eq!(taken(Budget::new(1, 1500), &[100, 100]), [100]);
        assert_eq!(taken(Budget::new(10, 0), &[1]), [0u64; 0]);
    }
}
