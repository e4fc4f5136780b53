//! `startTierService()` and `tierStats()`: cycles on an interval, and what they did.

use std::sync::Arc;
use std::time::Duration;

use super::{CycleReport, Tier, Tiers, flush_touches, now_ms};
use crate::dual::{Event, EventKind, Storage};
use crate::error::Result;

#[derive(Debug, Default)]
pub(super) struct ServiceState {
    running: bool,
    cycles: u64,
    last: Option<CycleReport>,
    next_at_ms: Option<i64>,
}

#[derive(Debug, Clone)]
pub struct TierStats {
    pub running: bool,
    pub cycles_completed: u64,
    pub last_cycle: Option<CycleReport>,
    pub next_cycle_in_ms: Option<u64>,
    /// `(objects, bytes)` over every tier.
    pub totals: (u64, u64),
    /// `(objects, bytes)` per tier, hot first.
    pub per_tier: [(Tier, u64, u64); 3],
}

impl Tiers {
    fn state(&self) -> std::sync::MutexGuard<'_, ServiceState> {
        self.service.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(super) fn finished_cycle(&self, report: &CycleReport) {
        let mut state = self.state();
        state.cycles += 1;
        state.last = Some(report.clone());
    }
}

/// Marks the service stopped however its task ends (stopped, or the manager dropped).
struct Running<'a>(&'a Tiers);

impl Drop for Running<'_> {
    fn drop(&mut self) {
        let mut state = self.0.state();
        state.running = false;
        state.next_at_ms = None;
    }
}

impl Storage {
    /// Runs a cycle every `interval` until the task is dropped. A failed cycle is an
    /// event, never a crash of the service.
    pub async fn tier_service(self: Arc<Self>, interval: Duration) {
        let Some(tiers) = self.tiers() else { return };
        tiers.state().running = true;
        let _running = Running(tiers);
        loop {
            tiers.state().next_at_ms = Some(now_ms() + interval.as_millis() as i64);
            tokio::time::sleep(interval).await;
            if let Err(e) = self.run_tier_cycle(None).await {
                self.emit(|| Event::new(EventKind::TierMoveFailed, "").error(&e));
            }
        }
    }

    pub async fn tier_stats(&self) -> Result<TierStats> {
        let tiers = self.tiers_or_fail()?;
        let journal = self.journal().expect("tiers need the journal");
        flush_touches(tiers, journal).await?;
        let rows = journal.tier_totals().await?;
        let per_tier = Tier::ALL.map(|t| {
            rows.iter()
                .find(|(name, ..)| name == t.as_str())
                .map_or((t, 0, 0), |&(_, n, b)| (t, n, b))
        });
        let state = tiers.state();
        Ok(TierStats {
            running: state.running,
            cycles_completed: state.cycles,
            last_cycle: state.last.clone(),
            next_cycle_in_ms: state
                .next_at_ms
                .map(|at| at.saturating_sub(now_ms()).max(0) as u64),
            totals: per_tier
                .iter()
                .fold((0, 0), |(n, b), &(_, tn, tb)| (n + tn, b + tb)),
            per_tier,
        })
    }
}
