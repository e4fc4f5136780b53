//! `storage.migrate()`, its `MigrationJob`, and `storage.rollback()`.

use std::sync::Arc;

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use super::args::{self, Arg};
use super::error::{promise, to_js};
use super::manager::StorageManager;
use super::numbers::{u32_in, u64_option, whole_u32};
use super::options::{Listener, tell};
use crate::config::CONCURRENCY;
use crate::dual::Side;
use crate::error::{Error, Result};
use crate::migrate::{
    Failure, MigrateOptions, Migration, MigrationReport as CoreReport, Shard, Snapshot, Verify,
};

#[napi(object)]
pub struct ShardOpts {
    pub index: f64,
    pub count: f64,
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct MigrateOpts {
    #[napi(ts_type = "'local' | 'cloud'")]
    pub from: Option<String>,
    #[napi(ts_type = "'local' | 'cloud'")]
    pub to: Option<String>,
    /// Only keys starting with this.
    pub prefix: Option<String>,
    /// Objects copied at once (default: the manager's `concurrency`).
    pub concurrency: Option<f64>,
    /// `'sha256'` (default): the copy's recorded size and SHA-256; `'full'`: reads the
    /// copy back and hashes it.
    #[napi(ts_type = "'sha256' | 'full'")]
    pub verify: Option<String>,
    /// Delete each source object once its copy is verified and journalled.
    pub delete_source: Option<bool>,
    /// Walk and count what would be copied; write nothing.
    pub dry_run: Option<bool>,
    /// Bytes per second across all workers.
    pub bandwidth_limit: Option<f64>,
    /// This process's share of the keys, for several cooperating migrations.
    pub shard: Option<ShardOpts>,
    /// Called about 5 times a second, and once at the end.
    #[napi(ts_type = "(progress: MigrationProgress) => void")]
    pub on_progress: Option<Listener<MigrationProgress>>,
}

#[napi(object)]
pub struct MigrationProgress {
    /// Objects in scope; grows until `totalKnown`.
    pub total: i64,
    pub total_known: bool,
    pub done: i64,
    pub copied: i64,
    pub skipped: i64,
    pub failed: i64,
    pub bytes: i64,
    pub bytes_total: i64,
    /// Bytes copied per second.
    pub rate: f64,
    pub eta_seconds: Option<f64>,
    #[napi(ts_type = "'running' | 'paused' | 'aborted' | 'completed' | 'failed'")]
    pub state: String,
}

impl From<Snapshot> for MigrationProgress {
    fn from(s: Snapshot) -> Self {
        MigrationProgress {
            total: s.total as i64,
            total_known: s.total_known,
            done: s.done as i64,
            copied: s.copied as i64,
            skipped: s.skipped as i64,
            failed: s.failed as i64,
            bytes: s.bytes as i64,
            bytes_total: s.bytes_total as i64,
            rate: s.rate,
            eta_seconds: s.eta_seconds,
            state: s.state.as_str().to_owned(),
        }
    }
}

#[napi(object)]
pub struct FailedObject {
    pub key: String,
    pub code: String,
    pub message: String,
}

impl From<Failure> for FailedObject {
    fn from(f: Failure) -> Self {
        FailedObject {
            key: f.key,
            code: f.code.to_owned(),
            message: f.message,
        }
    }
}

fn failures(list: Vec<Failure>) -> Vec<FailedObject> {
    list.into_iter().map(Into::into).collect()
}

#[napi(object)]
pub struct MigrationReport {
    /// Pass to `storage.rollback(id)`.
    pub id: i64,
    #[napi(ts_type = "'completed' | 'aborted'")]
    pub state: String,
    pub copied: i64,
    pub skipped: i64,
    /// The first 1,000 failures; `failedCount` counts them all.
    pub failed: Vec<FailedObject>,
    pub failed_count: i64,
    pub bytes: i64,
    pub seconds: f64,
    pub dry_run: bool,
}

impl From<CoreReport> for MigrationReport {
    fn from(r: CoreReport) -> Self {
        MigrationReport {
            id: r.id,
            state: r.state.as_str().to_owned(),
            copied: r.copied as i64,
            skipped: r.skipped as i64,
            failed: failures(r.failed),
            failed_count: r.failed_count as i64,
            bytes: r.bytes as i64,
            seconds: r.seconds,
            dry_run: r.dry_run,
        }
    }
}

#[napi(object)]
pub struct RollbackReport {
    pub restored: i64,
    pub failed: Vec<FailedObject>,
}

/// A running migration.
#[napi]
pub struct MigrationJob {
    inner: Migration,
}

#[napi]
impl MigrationJob {
    /// Workers finish the objects in flight and start no new ones until `resume()`.
    #[napi]
    pub fn pause(&self) {
        self.inner.pause();
    }

    #[napi]
    pub fn resume(&self) {
        self.inner.resume();
    }

    /// Stops the job; copies in flight are cancelled and redone by the next run.
    #[napi]
    pub fn abort(&self) {
        self.inner.abort();
    }

    #[napi]
    pub fn progress(&self) -> MigrationProgress {
        self.inner.progress().into()
    }

    /// Resolves with the report when the job ends (completed or aborted); rejects
    /// when the job itself could not run (the source could not be listed, say).
    #[napi(getter, ts_return_type = "Promise<MigrationReport>")]
    pub fn done<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, MigrationReport>> {
        promise(env, self.inner.done(), |_, r| Ok(r.into()))
    }
}

fn side(field: &str, value: Option<&str>, default: Side) -> Result<Side> {
    match value {
        None => Ok(default),
        Some("local") => Ok(Side::Local),
        Some("cloud") => Ok(Side::Cloud),
        Some(other) => Err(Error::config(
            field,
            format!("{other:?} is not 'local' or 'cloud'"),
        )),
    }
}

impl MigrateOpts {
    fn into_core(self, default_concurrency: usize) -> Result<MigrateOptions> {
        let shard = match self.shard {
            Some(s) => Shard::new(
                whole_u32("shard.index", s.index, 0, u32::MAX)?,
                whole_u32("shard.count", s.count, 0, u32::MAX)?,
            )?,
            None => Shard::default(),
        };
        let verify = match self.verify.as_deref() {
            None | Some("sha256") => Verify::Sha256,
            Some("full") => Verify::Full,
            Some(other) => {
                return Err(Error::config(
                    "verify",
                    format!("{other:?} is not 'sha256' or 'full'"),
                ));
            }
        };
        let bandwidth_limit = u64_option("bandwidthLimit", self.bandwidth_limit)?;
        let progress = self.on_progress.map(|cb| -> crate::migrate::ProgressSink {
            Arc::new(move |snapshot| tell(&cb, snapshot.into()))
        });
        Ok(MigrateOptions {
            from: side("from", self.from.as_deref(), Side::Local)?,
            to: side("to", self.to.as_deref(), Side::Cloud)?,
            prefix: self.prefix.unwrap_or_default(),
            concurrency: u32_in("concurrency", self.concurrency, CONCURRENCY)?
                .map_or(default_concurrency, |n| n as usize),
            verify,
            delete_source: self.delete_source.unwrap_or(false),
            dry_run: self.dry_run.unwrap_or(false),
            bandwidth_limit,
            shard,
            progress,
        })
    }
}

#[napi]
impl StorageManager {
    /// Starts copying every object under `prefix` from one side to the other on
    /// native threads. Throws `INVALID_CONFIG` on bad options.
    #[napi]
    pub fn migrate(
        &self,
        env: Env,
        #[napi(ts_arg_type = "MigrateOpts | undefined | null")] opts: Option<Arg<MigrateOpts>>,
    ) -> napi::Result<MigrationJob> {
        let start = || {
            let storage = self.storage()?;
            let opts = args::options(opts)?.into_core(storage.transfer().concurrency)?;
            Migration::start(storage, opts)
        };
        let started = start().map_err(|e| to_js(&env, e))?;
        let (job, work) = started;
        napi::bindgen_prelude::spawn(work);
        Ok(MigrationJob { inner: job })
    }

    /// Restores every source the migration `id` deleted, from its verified copy.
    #[napi(ts_return_type = "Promise<RollbackReport>")]
    pub fn rollback<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "number")] id: Arg<f64>,
    ) -> napi::Result<PromiseRaw<'env, RollbackReport>> {
        let id = id.safe_integer("id");
        let storage = self.storage();
        promise(
            env,
            async move { storage?.rollback(id? as i64).await },
            |_, r| {
                Ok(RollbackReport {
                    restored: r.restored as i64,
                    failed: failures(r.failed),
                })
            },
        )
    }
}
