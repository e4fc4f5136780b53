//! The migration half of `StorageManager`: repairs, presigned URLs, stats.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi::threadsafe_function::ThreadsafeFunctionCallMode;
use napi_derive::napi;

use super::error::{promise, to_js};
use super::manager::StorageManager;
use super::options::{PresignGetOpts, PresignPutOpts, RepairOpts, RepairerOpts};
use super::values::{RepairProgress, RepairReport, Stats};
use crate::dual::{PresignOptions, Side};
use crate::error::Error;
use crate::key::Key;
use crate::store::presign::Method;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn method(env: &Env, method: &str) -> napi::Result<Method> {
    method
        .to_ascii_uppercase()
        .parse()
        .map_err(|e| to_js(env, e))
}

impl StorageManager {
    fn sign(
        &self,
        key: &str,
        method: Method,
        options: &PresignOptions,
        now: u64,
    ) -> Result<String, Error> {
        self.inner.presign(&Key::parse(key)?, method, options, now)
    }
}

#[napi]
impl StorageManager {
    /// Replays the dual-write journal until both sides hold the same bytes (by
    /// SHA-256). Idempotent; safe while the app keeps writing.
    #[napi(ts_return_type = "Promise<RepairReport>")]
    pub fn repair<'env>(
        &self,
        env: &'env Env,
        opts: Option<RepairOpts>,
    ) -> napi::Result<PromiseRaw<'env, RepairReport>> {
        let progress = opts
            .and_then(|o| o.on_progress)
            .map(|cb| -> crate::dual::RepairProgress {
                std::sync::Arc::new(move |done, total| {
                    let p = RepairProgress {
                        done: done as i64,
                        total: total as i64,
                    };
                    cb.call(p, ThreadsafeFunctionCallMode::NonBlocking);
                })
            });
        let storage = self.inner.clone();
        promise(
            env,
            async move { storage.repair(progress).await },
            |_, r| Ok(r.into()),
        )
    }

    /// Keys whose two sides may differ, not counting writes still running.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn pending_repairs<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, i64>> {
        let storage = self.inner.clone();
        promise(
            env,
            async move { storage.pending_repairs().await },
            |_, n| Ok(n as i64),
        )
    }

    /// Repairs in the background every `intervalMs` while anything is pending.
    #[napi]
    pub fn start_repairer(&self, opts: Option<RepairerOpts>) {
        let interval = Duration::from_millis(
            opts.and_then(|o| o.interval_ms).unwrap_or(30_000).max(10) as u64,
        );
        let task = napi::bindgen_prelude::spawn(self.inner.clone().repair_forever(interval));
        self.repairer.replace(Some(task));
    }

    #[napi]
    pub fn stop_repairer(&self) {
        self.repairer.replace(None);
    }

    /// A GET URL signed without any network call: the CDN with `presign.cdnBaseUrl`,
    /// the cloud's own signature (S3 SigV4, Azure SAS), else a local signed URL.
    #[napi]
    pub fn presign_get(
        &self,
        env: Env,
        key: String,
        opts: Option<PresignGetOpts>,
    ) -> napi::Result<String> {
        let opts = opts.unwrap_or_default();
        opts.options()
            .and_then(|o| self.sign(&key, Method::Get, &o, now()))
            .map_err(|e| to_js(&env, e))
    }

    /// A PUT URL. On Azure the uploader must also send `x-ms-blob-type: BlockBlob`.
    #[napi]
    pub fn presign_put(
        &self,
        env: Env,
        key: String,
        opts: Option<PresignPutOpts>,
    ) -> napi::Result<String> {
        let opts = opts.unwrap_or_default();
        opts.options()
            .and_then(|o| self.sign(&key, Method::Put, &o, now()))
            .map_err(|e| to_js(&env, e))
    }

    /// GET URLs for many keys in one call (one crossing of the JS boundary). Large
    /// batches are signed on every core; the call stays synchronous because even
    /// 20,000 URLs take only milliseconds.
    #[napi]
    pub fn presign_many(
        &self,
        env: Env,
        keys: Vec<String>,
        opts: Option<PresignGetOpts>,
    ) -> napi::Result<Vec<String>> {
        let opts = opts.unwrap_or_default();
        opts.options()
            .and_then(|o| self.inner.presign_many(&keys, Method::Get, &o, now()))
            .map_err(|e| to_js(&env, e))
    }

    /// The key a local signed URL grants; throws `SIGNATURE_INVALID` or
    /// `SIGNATURE_EXPIRED`. `url` may be absolute or a path with its query.
    #[napi]
    pub fn verify_signed_url(&self, env: Env, url: String, method: String) -> napi::Result<String> {
        let method = self::method(&env, &method)?;
        self.inner
            .verify_signed_url(&url, method, now())
            .map(|k| k.to_string())
            .map_err(|e| to_js(&env, e))
    }

    /// Counts and bytes per side since the manager was created.
    #[napi]
    pub fn stats(&self) -> Stats {
        Stats {
            local: self.inner.stats(Side::Local).into(),
            cloud: self.inner.stats(Side::Cloud).into(),
            repaired: self.inner.repaired_total() as i64,
        }
    }
}
