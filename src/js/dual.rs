//! The migration half of `StorageManager`: repairs, presigned URLs, stats.

use std::time::{SystemTime, UNIX_EPOCH};

use napi::Env;
use napi::bindgen_prelude::PromiseRaw;
use napi_derive::napi;

use super::args::{self, Arg, KeyText};
use super::error::{promise, to_js};
use super::manager::StorageManager;
use super::numbers::interval_ms;
use super::options::{PresignGetOpts, PresignPutOpts, RepairOpts, RepairerOpts, VerifyOpts, tell};
use super::values::{RepairProgress, RepairReport, Stats};
use crate::dual::{PresignOptions, Side};
use crate::error::{Error, Result};
use crate::key::Key;
use crate::store::presign::Method;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn method(method: &str) -> Result<Method, Error> {
    method.to_ascii_uppercase().parse()
}

impl StorageManager {
    fn sign(
        &self,
        key: &Key,
        method: Method,
        options: &PresignOptions,
        now: u64,
    ) -> Result<String, Error> {
        self.storage()?.presign(key, method, options, now)
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
        #[napi(ts_arg_type = "RepairOpts | undefined | null")] opts: Option<Arg<RepairOpts>>,
    ) -> napi::Result<PromiseRaw<'env, RepairReport>> {
        let progress = args::options(opts).map(|o| {
            o.on_progress.map(|cb| -> crate::dual::RepairProgress {
                std::sync::Arc::new(move |done, total| {
                    let p = RepairProgress {
                        done: done as i64,
                        total: total as i64,
                    };
                    tell(&cb, p);
                })
            })
        });
        let storage = self.storage();
        promise(
            env,
            async move { storage?.repair(progress?).await },
            |_, r| Ok(r.into()),
        )
    }

    /// Keys whose two sides may differ, not counting writes still running.
    #[napi(ts_return_type = "Promise<number>")]
    pub fn pending_repairs<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, i64>> {
        let storage = self.storage();
        promise(
            env,
            async move { storage?.pending_repairs().await },
            |_, n| Ok(n as i64),
        )
    }

    /// Repairs in the background every `intervalMs` while anything is pending.
    #[napi]
    pub fn start_repairer(
        &self,
        env: Env,
        #[napi(ts_arg_type = "RepairerOpts | undefined | null")] opts: Option<Arg<RepairerOpts>>,
    ) -> napi::Result<()> {
        let start = || -> Result<_, Error> {
            let interval = interval_ms(args::options(opts)?.interval_ms, 30_000)?;
            Ok(napi::bindgen_prelude::spawn(
                self.storage()?.repair_forever(interval),
            ))
        };
        let task = start().map_err(|e| to_js(&env, e))?;
        self.repairer.replace(Some(task));
        Ok(())
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
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "PresignGetOpts | undefined | null")] opts: Option<
            Arg<PresignGetOpts>,
        >,
    ) -> napi::Result<String> {
        let key = key.key("key");
        args::options(opts)
            .and_then(|opts| self.sign(&key?, Method::Get, &opts.options()?, now()))
            .map_err(|e| to_js(&env, e))
    }

    /// A PUT URL. On Azure the uploader must also send `x-ms-blob-type: BlockBlob`.
    #[napi]
    pub fn presign_put(
        &self,
        env: Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "PresignPutOpts | undefined | null")] opts: Option<
            Arg<PresignPutOpts>,
        >,
    ) -> napi::Result<String> {
        let key = key.key("key");
        args::options(opts)
            .and_then(|opts| self.sign(&key?, Method::Put, &opts.options()?, now()))
            .map_err(|e| to_js(&env, e))
    }

    /// GET URLs for many keys in one call (one crossing of the JS boundary). Large
    /// batches are signed on every core; the call stays synchronous because even
    /// 20,000 URLs take only milliseconds.
    #[napi]
    pub fn presign_many(
        &self,
        env: Env,
        #[napi(ts_arg_type = "Array<string>")] keys: Arg<Vec<Arg<KeyText>>>,
        #[napi(ts_arg_type = "PresignGetOpts | undefined | null")] opts: Option<
            Arg<PresignGetOpts>,
        >,
    ) -> napi::Result<Vec<String>> {
        let keys = keys.config("keys", "an array of strings").and_then(|keys| {
            (keys.into_iter().enumerate())
                .map(|(i, key)| key.text(&format!("keys[{i}]")))
                .collect::<Result<Vec<_>>>()
        });
        args::options(opts)
            .and_then(|opts| {
                self.storage()?
                    .presign_many(&keys?, Method::Get, &opts.options()?, now())
            })
            .map_err(|e| to_js(&env, e))
    }

    /// The key a local signed URL grants; throws `SIGNATURE_INVALID` or
    /// `SIGNATURE_EXPIRED`. `url` may be absolute or a path with its query. An upload
    /// URL signed for a content type is valid only with `{ contentType }` equal to it
    /// (the request's `Content-Type`).
    #[napi]
    pub fn verify_signed_url(
        &self,
        env: Env,
        #[napi(ts_arg_type = "string")] url: Arg<String>,
        #[napi(ts_arg_type = "string")] method: Arg<String>,
        #[napi(ts_arg_type = "VerifyOpts | undefined | null")] opts: Option<Arg<VerifyOpts>>,
    ) -> napi::Result<String> {
        let verify = || {
            let url = url.config("url", "a string")?;
            let method = method.config("method", "a string")?;
            let opts = args::options(opts)?;
            self.storage()?.verify_signed_url(
                &url,
                self::method(&method)?,
                now(),
                opts.content_type.as_deref(),
            )
        };
        verify().map(|k| k.to_string()).map_err(|e| to_js(&env, e))
    }

    /// Counts and bytes per side since the manager was created.
    #[napi]
    pub fn stats(&self, env: Env) -> napi::Result<Stats> {
        let storage = self.storage().map_err(|e| to_js(&env, e))?;
        Ok(Stats {
            local: storage.stats(Side::Local).into(),
            cloud: storage.stats(Side::Cloud).into(),
            repaired: storage.repaired_total() as i64,
        })
    }
}
