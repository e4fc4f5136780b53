//! `startTierService()` and `tierStats()`: cycles on an interval, and what they did.

use std::sync::Arc;
use std::time::Duration;

use super::{CycleReport, Tier, Tiers, flush_touches, now_ms};
use crate::dual::{Event, EventKind, Storage};
use crate::error::Result;

#[derive(Debug, Default)]
pub(super) struct ServiceState {
    /// Services started and not yet ended: a restart overlaps the stopped service
    /// until the runtime drops its task.
    services: u32,
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

/// Counts a service as running from its start until its task ends, however it ends
/// (stopped, restarted, or the manager dropped).
struct Running(Arc<Storage>);

impl Running {
    fn start(storage: &Arc<Storage>) -> Option<Running> {
        storage.tiers()?.state().services += 1;
        Some(Running(storage.clone()))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let mut state = self.0.tiers().expect("started with tiers").state();
        state.services -= 1;
        if state.services == 0 {
            state.next_at_ms = None;
        }
    }
}

impl Storage {
    /// Runs a cycle every `interval` until the task is dropped. A failed cycle is an
    /// event, never a crash of the service. Counted as running from this call on, not
    /// from the task's first poll.
    pub fn tier_service(
        self: Arc<Self>,
        interval: Duration,
    ) -> impl Future<Output = ()> + Send + 'static {
        let running = Running::start(&self);
        async move {
            let Some(_running) = running else { return };
            self.cycle_every(interval).await
        }
    }

    async fn cycle_every(&self, interval: Duration) {
        let tiers = self.tiers().expect("the service runs with tiers");
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
            running: state.services > 0,
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
