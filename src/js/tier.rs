//! Tiers: `tiers` options, `tierOf`, `setTier`, `runTierCycle`, the tier service and
//! `tierStats`.

use chrono::{DateTime, Utc};
use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use super::args::{self, Arg, KeyText, Nested, ValidDate};
use super::error::{promise, to_js};
use super::manager::StorageManager;
use super::migrate::FailedObject;
use super::numbers::{interval_ms, u64_option};
use super::options::CloudOptions;
use crate::error::{Error, Result};
use crate::tier::{CycleReport as CoreCycle, Tier, TierConfig, TierPolicy, TierStats as CoreStats};

#[napi(object)]
#[derive(Default)]
pub struct TierPolicyOptions {
    /// Days without a read or write before an object moves hot → warm (default 30).
    pub hot_to_warm_days: Option<f64>,
    /// Days without access before warm → cold (default 365).
    pub warm_to_cold_days: Option<f64>,
    pub max_objects_per_cycle: Option<f64>,
    pub max_bytes_per_cycle: Option<f64>,
    /// Check each copy's size and SHA-256 before the move counts (default true).
    pub verify: Option<bool>,
    /// Remove the object from the tier it left (default true).
    pub delete_after_move: Option<bool>,
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct TierOptions {
    /// Store URL; `?storageClass=STANDARD_IA` sets the class of objects written there.
    pub warm: Option<String>,
    pub cold: Option<String>,
    /// Endpoint and credentials of the warm store (default: `cloudOptions`).
    #[napi(ts_type = "CloudOptions")]
    pub warm_options: Option<Nested<CloudOptions>>,
    /// Endpoint and credentials of the cold store (default: `cloudOptions`).
    #[napi(ts_type = "CloudOptions")]
    pub cold_options: Option<Nested<CloudOptions>>,
    #[napi(ts_type = "TierPolicyOptions")]
    pub policy: Option<Nested<TierPolicyOptions>>,
}

impl TryFrom<TierOptions> for TierConfig {
    type Error = Error;

    fn try_from(o: TierOptions) -> Result<Self> {
        let p = o.policy.unwrap_or_default().0;
        let d = TierPolicy::default();
        Ok(TierConfig {
            warm: o.warm,
            cold: o.cold,
            warm_options: o
                .warm_options
                .map(|w| w.0.into_store_options("tiers.warmOptions"))
                .transpose()?,
            cold_options: o
                .cold_options
                .map(|c| c.0.into_store_options("tiers.coldOptions"))
                .transpose()?,
            policy: TierPolicy {
                hot_to_warm_days: p.hot_to_warm_days.unwrap_or(d.hot_to_warm_days),
                warm_to_cold_days: p.warm_to_cold_days.unwrap_or(d.warm_to_cold_days),
                max_objects_per_cycle: u64_option(
                    "tiers.policy.maxObjectsPerCycle",
                    p.max_objects_per_cycle,
                )?,
                max_bytes_per_cycle: u64_option(
                    "tiers.policy.maxBytesPerCycle",
                    p.max_bytes_per_cycle,
                )?,
                verify: p.verify.unwrap_or(d.verify),
                delete_after_move: p.delete_after_move.unwrap_or(d.delete_after_move),
            },
        })
    }
}

#[napi(object)]
pub struct CycleReport {
    /// The clock the cycle aged objects by.
    pub now: DateTime<Utc>,
    pub to_warm: i64,
    pub to_cold: i64,
    pub bytes: i64,
    pub failed: Vec<FailedObject>,
    pub seconds: f64,
}

impl From<CoreCycle> for CycleReport {
    fn from(c: CoreCycle) -> Self {
        CycleReport {
            now: DateTime::from_timestamp_millis(c.now_ms).unwrap_or_default(),
            to_warm: c.to_warm as i64,
            to_cold: c.to_cold as i64,
            bytes: c.bytes as i64,
            failed: c.failed.into_iter().map(Into::into).collect(),
            seconds: c.seconds,
        }
    }
}

#[napi(object)]
pub struct TierTotal {
    pub objects: i64,
    pub bytes: i64,
}

#[napi(object)]
pub struct PerTier {
    pub hot: TierTotal,
    pub warm: TierTotal,
    pub cold: TierTotal,
}

#[napi(object)]
pub struct TierStats {
    pub running: bool,
    pub cycles_completed: i64,
    pub last_cycle: Option<CycleReport>,
    pub next_cycle_in_ms: Option<i64>,
    pub totals: TierTotal,
    pub per_tier: PerTier,
}

fn total((objects, bytes): (u64, u64)) -> TierTotal {
    TierTotal {
        objects: objects as i64,
        bytes: bytes as i64,
    }
}

impl From<CoreStats> for TierStats {
    fn from(s: CoreStats) -> Self {
        let [hot, warm, cold] = s.per_tier.map(|(_, n, b)| total((n, b)));
        TierStats {
            running: s.running,
            cycles_completed: s.cycles_completed as i64,
            last_cycle: s.last_cycle.map(Into::into),
            next_cycle_in_ms: s.next_cycle_in_ms.map(|n| n as i64),
            totals: total(s.totals),
            per_tier: PerTier { hot, warm, cold },
        }
    }
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct TierCycleOpts {
    /// The clock to age objects by (tests); default now.
    #[napi(ts_type = "Date")]
    pub now: Option<ValidDate>,
}

#[napi(object)]
#[derive(Default)]
pub struct TierServiceOpts {
    /// Milliseconds between cycles (default one hour; at least 10).
    pub interval_ms: Option<f64>,
}

#[napi]
impl StorageManager {
    /// `'hot' | 'warm' | 'cold'`; rejects with NOT_FOUND when no tier holds the key.
    #[napi(ts_return_type = "Promise<'hot' | 'warm' | 'cold'>")]
    pub fn tier_of<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, String>> {
        let key = key.key("key");
        let storage = self.storage();
        promise(env, async move { storage?.tier_of(&key?).await }, |_, t| {
            Ok(t.as_str().to_owned())
        })
    }

    /// Moves the object to `tier` now, verified, whatever its age.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn set_tier<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "'hot' | 'warm' | 'cold'")] tier: Arg<String>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let key = key.key("key");
        let tier = tier
            .config("tier", "'hot', 'warm' or 'cold'")
            .and_then(|t| Tier::parse(&t));
        let storage = self.storage();
        promise(
            env,
            async move { storage?.set_tier(&key?, tier?).await },
            |_, ()| Ok(()),
        )
    }

    /// One cycle of the tier policy. Failed moves are in the report and in events.
    #[napi(ts_return_type = "Promise<CycleReport>")]
    pub fn run_tier_cycle<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "TierCycleOpts | undefined | null")] opts: Option<Arg<TierCycleOpts>>,
    ) -> napi::Result<PromiseRaw<'env, CycleReport>> {
        let now = args::options(opts).map(|o| o.now.map(|d| d.0));
        let storage = self.storage();
        promise(
            env,
            async move { storage?.run_tier_cycle(now?).await },
            |_, r| Ok(r.into()),
        )
    }

    /// Runs a tier cycle every `intervalMs` in the background.
    #[napi]
    pub fn start_tier_service(
        &self,
        env: Env,
        #[napi(ts_arg_type = "TierServiceOpts | undefined | null")] opts: Option<
            Arg<TierServiceOpts>,
        >,
    ) -> napi::Result<()> {
        let start = || -> Result<_> {
            let interval = interval_ms(args::options(opts)?.interval_ms, 3_600_000)?;
            Ok(napi::bindgen_prelude::spawn(
                self.storage()?.tier_service(interval),
            ))
        };
        let task = start().map_err(|e| to_js(&env, e))?;
        self.tier_service.replace(Some(task));
        Ok(())
    }

    #[napi]
    pub fn stop_tier_service(&self) {
        self.tier_service.replace(None);
    }

    #[napi(ts_return_type = "Promise<TierStats>")]
    pub fn tier_stats<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, TierStats>> {
        let storage = self.storage();
        promise(env, async move { storage?.tier_stats().await }, |_, s| {
            Ok(s.into())
        })
    }
}
