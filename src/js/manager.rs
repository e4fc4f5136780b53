//! `StorageManager`: the class of the API contract.

use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use bytes::Bytes;
use napi::Env;
use napi::bindgen_prelude::{
    Buffer, Either3, JavaScriptClassExt, PromiseRaw, This, Uint8Array, Unknown,
};
use napi_derive::napi;

use super::args::{self, Arg, KeyText};
use super::error::{promise, to_js};
use super::numbers::{range_end, safe_integer, whole};
use super::options::{ListOpts, PutOpts, RangeOpts, StorageOptions, TransferOpts};
use super::read_stream::Wrap;
use super::values::{JsBytes, JsObjectInfo, JsPutResult, ListResult};
use crate::config::Config;
use crate::dual::Storage;
use crate::error::{Error, Result};

#[napi]
pub struct StorageManager {
    /// `None` once `close()` was called.
    inner: RwLock<Option<Arc<Storage>>>,
    /// The background task of `startRepairer`, if running.
    pub(super) repairer: BackgroundTask,
    /// The background task of `startTierService`, if running.
    pub(super) tier_service: BackgroundTask,
}

impl StorageManager {
    fn wrap(
        env: &Env,
        config: Result<(Config, Option<crate::dual::EventSink>)>,
    ) -> napi::Result<Self> {
        let storage = config
            .and_then(|(c, events)| Storage::open(&c, events))
            .map_err(|e| to_js(env, e))?;
        Ok(StorageManager {
            inner: RwLock::new(Some(Arc::new(storage))),
            repairer: Default::default(),
            tier_service: Default::default(),
        })
    }
}

impl StorageManager {
    /// The open storage, or `UNAVAILABLE` once `close()` was called.
    pub(super) fn storage(&self) -> Result<Arc<Storage>> {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
            .ok_or_else(|| Error::Unavailable("the storage manager is closed".into()))
    }
}

/// A task of the manager that runs until replaced, stopped, or the manager is dropped.
#[derive(Default)]
pub(super) struct BackgroundTask(std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>);

impl BackgroundTask {
    /// Stops the running task, if any, and keeps `next`.
    pub fn replace(&self, next: Option<tokio::task::JoinHandle<()>>) {
        let old = std::mem::replace(&mut *self.0.lock().unwrap_or_else(|e| e.into_inner()), next);
        if let Some(task) = old {
            task.abort();
        }
    }
}

impl Drop for BackgroundTask {
    fn drop(&mut self) {
        self.replace(None);
    }
}

#[napi]
impl StorageManager {
    /// Opens the local folder and the cloud store. Throws `INVALID_CONFIG` naming the
    /// field on bad settings; makes no network call.
    #[napi(constructor)]
    pub fn new(
        env: Env,
        this: This,
        #[napi(ts_arg_type = "StorageOptions | undefined | null")] options: Option<
            Arg<StorageOptions>,
        >,
    ) -> napi::Result<Self> {
        // A native class can be called as a plain function, which would wrap
        // `globalThis` (or whatever `this` was); refuse it as a JS class does.
        if !StorageManager::instance_of(&env, &*this)? {
            env.throw_type_error(
                "Class constructor StorageManager cannot be invoked without 'new'",
                None,
            )?;
            return Err(napi::Error::new(
                napi::Status::PendingException,
                "called without new",
            ));
        }
        Self::wrap(
            &env,
            args::options(options).and_then(StorageOptions::into_config),
        )
    }

    /// Builds the manager from S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET,
    /// S3_REGION, S3_USE_SSL, STOWAGE_LOCAL and STOWAGE_MODE.
    #[napi(factory)]
    pub fn from_env(env: Env) -> napi::Result<Self> {
        Self::wrap(
            &env,
            Config::from_env(crate::config::env_var).map(|config| (config, None)),
        )
    }

    #[napi(ts_return_type = "Promise<PutResult>")]
    pub fn put<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "Buffer | Uint8Array | string")] data: Arg<
            Either3<Buffer, Uint8Array, String>,
        >,
        #[napi(ts_arg_type = "PutOpts | undefined | null")] opts: Option<Arg<PutOpts>>,
    ) -> napi::Result<PromiseRaw<'env, JsPutResult>> {
        let key = key.key("key");
        let bytes = data
            .config("data", "a Buffer, a Uint8Array or a string")
            .map(|data| match data {
                Either3::A(buffer) => Bytes::from_owner(buffer),
                Either3::B(array) => Bytes::from_owner(array),
                Either3::C(text) => Bytes::from(text.into_bytes()),
            });
        let opts = args::options(opts).map(PutOpts::split);
        let storage = self.storage();
        promise(
            env,
            async move {
                let (opts, progress) = opts?;
                storage?.put_reporting(&key?, bytes?, opts, progress).await
            },
            |_, r| Ok(r.into()),
        )
    }

    /// Streams a file from disk; multipart above `multipartThreshold`.
    #[napi(ts_return_type = "Promise<PutResult>")]
    pub fn put_file<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "string")] path: Arg<String>,
        #[napi(ts_arg_type = "PutOpts | undefined | null")] opts: Option<Arg<PutOpts>>,
    ) -> napi::Result<PromiseRaw<'env, JsPutResult>> {
        let key = key.key("key");
        let path = path.path("path");
        let opts = args::options(opts).map(PutOpts::split);
        let storage = self.storage();
        promise(
            env,
            async move {
                let (opts, progress) = opts?;
                storage?
                    .put_file(&key?, &PathBuf::from(path?), opts, progress)
                    .await
            },
            |_, r| Ok(r.into()),
        )
    }

    /// The whole object; rejects with `INTEGRITY` when its bytes differ from the
    /// recorded SHA-256.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn get<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, JsBytes>> {
        let key = key.key("key");
        let storage = self.storage();
        promise(
            env,
            async move { storage?.get(&key?).await.map(JsBytes::from) },
            |_, b| Ok(b),
        )
    }

    /// Bytes `start` to `endExclusive`; the end is clamped to the object's size.
    #[napi(ts_return_type = "Promise<Buffer>")]
    pub fn get_range<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "number")] start: Arg<f64>,
        #[napi(ts_arg_type = "number")] end_exclusive: Arg<f64>,
    ) -> napi::Result<PromiseRaw<'env, JsBytes>> {
        let key = key.key("key");
        let start = start.safe_integer("start");
        let end = end_exclusive
            .config("endExclusive", "a number")
            .and_then(|n| range_end("endExclusive", n));
        let storage = self.storage();
        promise(
            env,
            async move {
                storage?
                    .get_range(&key?, start?, end?)
                    .await
                    .map(JsBytes::from)
            },
            |_, b| Ok(b),
        )
    }

    /// Streams to `path` through a temporary file, renamed into place once the
    /// SHA-256 matches.
    #[napi(ts_return_type = "Promise<ObjectInfo>")]
    pub fn get_to_file<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "string")] path: Arg<String>,
        #[napi(ts_arg_type = "TransferOpts | undefined | null")] opts: Option<Arg<TransferOpts>>,
    ) -> napi::Result<PromiseRaw<'env, JsObjectInfo>> {
        let key = key.key("key");
        let path = path.path("path");
        let progress = args::options(opts).map(|o| o.on_progress.map(super::options::progress_fn));
        let storage = self.storage();
        promise(
            env,
            async move {
                storage?
                    .get_to_file(&key?, &PathBuf::from(path?), progress?)
                    .await
            },
            |_, (side, info)| Ok(JsObjectInfo::new(side, info)),
        )
    }

    /// A Node `Readable` of the object (or of bytes `start..=end`). A whole object is
    /// hashed as it streams and ends with an `INTEGRITY` error if it differs from the
    /// recorded SHA-256; a range is passed through unchecked.
    #[napi(ts_return_type = "import('node:stream').Readable")]
    pub fn create_read_stream<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "RangeOpts | undefined | null")] opts: Option<Arg<RangeOpts>>,
    ) -> napi::Result<Unknown<'env>> {
        self.read_stream(env, key, opts, Wrap::Create)
    }

    /// `createReadStream`, opened first: resolves with the stream and the description
    /// of the very version it streams (`size`, `etag`, `sha256`, headers), which a
    /// separate `head()` cannot promise while the object is being rewritten.
    #[napi(
        ts_return_type = "Promise<{ info: ObjectInfo, stream: import('node:stream').Readable }>"
    )]
    pub fn open_read_stream<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
        #[napi(ts_arg_type = "RangeOpts | undefined | null")] opts: Option<Arg<RangeOpts>>,
    ) -> napi::Result<Unknown<'env>> {
        self.read_stream(env, key, opts, Wrap::Open)
    }

    fn read_stream<'env>(
        &self,
        env: &'env Env,
        key: Arg<KeyText>,
        opts: Option<Arg<RangeOpts>>,
        how: Wrap,
    ) -> napi::Result<Unknown<'env>> {
        let args = self.storage().and_then(|storage| {
            let key = key.key("key")?;
            let range = args::options(opts).and_then(|o| inclusive_range(o.start, o.end))?;
            Ok((storage, key, range))
        });
        super::read_stream::wrap(env, args, how)
    }

    #[napi(ts_return_type = "Promise<ObjectInfo>")]
    pub fn head<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, JsObjectInfo>> {
        let key = key.key("key");
        let storage = self.storage();
        promise(
            env,
            async move { storage?.head(&key?).await },
            |_, (side, info)| Ok(JsObjectInfo::new(side, info)),
        )
    }

    #[napi(ts_return_type = "Promise<boolean>")]
    pub fn exists<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, bool>> {
        let key = key.key("key");
        let storage = self.storage();
        promise(env, async move { storage?.exists(&key?).await }, |_, b| {
            Ok(b)
        })
    }

    /// Deletes from every side; deleting a missing key succeeds.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn delete<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] key: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, ()>> {
        let key = key.key("key");
        let storage = self.storage();
        promise(env, async move { storage?.delete(&key?).await }, |_, ()| {
            Ok(())
        })
    }

    #[napi(ts_return_type = "Promise<ObjectInfo>")]
    pub fn copy<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] from: Arg<KeyText>,
        #[napi(ts_arg_type = "string")] to: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, JsObjectInfo>> {
        let (from, to) = (from.key("from"), to.key("to"));
        let storage = self.storage();
        promise(
            env,
            async move { storage?.copy(&from?, &to?).await },
            |_, (side, info)| Ok(JsObjectInfo::new(side, info)),
        )
    }

    #[napi(ts_return_type = "Promise<ObjectInfo>")]
    pub fn rename<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "string")] from: Arg<KeyText>,
        #[napi(ts_arg_type = "string")] to: Arg<KeyText>,
    ) -> napi::Result<PromiseRaw<'env, JsObjectInfo>> {
        let (from, to) = (from.key("from"), to.key("to"));
        let storage = self.storage();
        promise(
            env,
            async move { storage?.rename(&from?, &to?).await },
            |_, (side, info)| Ok(JsObjectInfo::new(side, info)),
        )
    }

    /// One page of objects in key order; pass `next` as `startAfter` for the next page.
    #[napi(ts_return_type = "Promise<ListResult>")]
    pub fn list<'env>(
        &self,
        env: &'env Env,
        #[napi(ts_arg_type = "ListOpts | undefined | null")] opts: Option<Arg<ListOpts>>,
    ) -> napi::Result<PromiseRaw<'env, ListResult>> {
        let opts = args::options(opts);
        let storage = self.storage();
        promise(
            env,
            async move {
                let opts = opts?;
                let prefix = opts.prefix.unwrap_or_default();
                let limit = opts
                    .limit
                    .map_or(Ok(1000), |l| whole("limit", l, 1, 10_000))?
                    as usize;
                storage?
                    .list(&prefix, opts.start_after.as_deref(), limit)
                    .await
            },
            |_, listing| {
                Ok(ListResult {
                    objects: listing
                        .objects
                        .into_iter()
                        .map(|(location, o)| JsObjectInfo::listed(location, o))
                        .collect(),
                    next: listing.next,
                })
            },
        )
    }
}

#[napi]
impl StorageManager {
    /// Stops the background services, refuses new calls with `UNAVAILABLE`, and
    /// resolves once the calls in flight, read streams not yet finished or destroyed,
    /// and running migrations are done and the journal and stores are released.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn close<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, ()>> {
        let storage = self.inner.write().unwrap_or_else(|e| e.into_inner()).take();
        self.repairer.replace(None);
        self.tier_service.replace(None);
        if let Some(storage) = &storage {
            storage.begin_close();
        }
        promise(env, async move { release(storage).await }, |_, ()| Ok(()))
    }
}

/// Waits for every other holder of `storage` to let go, then drops it on a blocking
/// thread: closing SQLite may checkpoint its write-ahead log.
async fn release(storage: Option<Arc<Storage>>) -> Result<()> {
    let Some(mut storage) = storage else {
        return Ok(());
    };
    let last = loop {
        match Arc::try_unwrap(storage) {
            Ok(last) => break last,
            Err(shared) => storage = shared,
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    };
    tokio::task::spawn_blocking(move || drop(last))
        .await
        .map_err(|e| Error::task_failed("closing the storage", e))
}

/// `{ start, end }` with an inclusive end, as Node's streams take it.
fn inclusive_range(start: Option<f64>, end: Option<f64>) -> Result<Option<std::ops::Range<u64>>> {
    if start.is_none() && end.is_none() {
        return Ok(None);
    }
    let start = safe_integer("start", start.unwrap_or(0.0))?;
    let last = range_end("end", end.unwrap_or(f64::INFINITY))?;
    // As `fs.createReadStream`, which refuses an end before its start.
    if last < start {
        return Err(Error::config("end", "is before start"));
    }
    Ok(Some(start..last.saturating_add(1)))
}
