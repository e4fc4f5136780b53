//! JS option objects and their conversion into the core's settings.

use napi::bindgen_prelude::Status;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use napi::bindgen_prelude::Unknown;

use super::args::{Nested, OrNull, StringMap};
use super::numbers::{u32_in, u32_option, u64_in, u64_option};
use super::values::{Progress, StorageEvent};
use crate::config::{CONCURRENCY, Config, PART_SIZE};
use crate::dual::{EventSink, PresignOptions as CallOptions, PresignSettings};
use crate::error::{Error, Result};
use crate::store::object::PutOptions;
use crate::store::options::StoreOptions;
use crate::store::presign::EXPIRES_IN;
use crate::store::progress::ProgressFn;

#[napi(object)]
#[derive(Default)]
pub struct CloudOptions {
    /// S3-compatible endpoint (MinIO, Ceph, …) or Azure blob endpoint.
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: Option<bool>,
    /// `bucket.host` instead of `host/bucket` (default false: path-style).
    pub virtual_hosted_style: Option<bool>,
    #[napi(ts_type = "'AES256' | 'aws:kms' | 'aws:kms:dsse'")]
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    /// S3 storage class (`STANDARD_IA`, `GLACIER`, …) for every object written.
    pub storage_class: Option<String>,
    /// Azure connection string (`AccountName=…;AccountKey=…;BlobEndpoint=…`).
    pub connection_string: Option<String>,
    /// Retries of a transient failure before it surfaces (default 5).
    pub max_retries: Option<f64>,
    /// Stop retrying after this many milliseconds (default 30000).
    pub retry_timeout_ms: Option<f64>,
    /// Per-request timeout in milliseconds (default 60000).
    pub request_timeout_ms: Option<f64>,
}

impl CloudOptions {
    /// `field` is where these options were given (`cloudOptions`, `tiers.warmOptions`).
    pub fn into_store_options(self, field: &str) -> Result<StoreOptions> {
        let number = |name: &str, v| u32_option(&format!("{field}.{name}"), v);
        Ok(StoreOptions {
            endpoint: self.endpoint,
            region: self.region,
            access_key_id: self.access_key_id,
            secret_access_key: self.secret_access_key,
            session_token: self.session_token,
            allow_http: self.allow_http,
            virtual_hosted_style: self.virtual_hosted_style,
            server_side_encryption: self.server_side_encryption,
            sse_kms_key_id: self.sse_kms_key_id,
            storage_class: self.storage_class,
            connection_string: self.connection_string,
            max_retries: number("maxRetries", self.max_retries)?.map(|n| n as usize),
            retry_timeout_ms: number("retryTimeoutMs", self.retry_timeout_ms)?.map(u64::from),
            // 0 would time every request out at once, retried until TIMEOUT.
            request_timeout_ms: u32_in(
                &format!("{field}.requestTimeoutMs"),
                self.request_timeout_ms,
                1..=u32::MAX,
            )?
            .map(u64::from),
        })
    }
}

#[napi(object)]
#[derive(Default)]
pub struct PresignOptions {
    /// Default lifetime of a URL in seconds (3600; at most 604800).
    pub expires_in: Option<f64>,
    /// GET URLs point here (`{cdnBaseUrl}/{key}`) instead of at the store.
    pub cdn_base_url: Option<String>,
    /// Where the `stowage/express` or `stowage/hono` middleware serves local files.
    pub local_base_url: Option<String>,
    /// HMAC key of local URLs, at least 32 bytes.
    pub local_secret: Option<String>,
}

impl TryFrom<PresignOptions> for PresignSettings {
    type Error = Error;

    fn try_from(o: PresignOptions) -> Result<Self> {
        Ok(PresignSettings {
            expires_in: u64_in("presign.expiresIn", o.expires_in, EXPIRES_IN)?,
            cdn_base_url: o.cdn_base_url,
            local_base_url: o.local_base_url,
            local_secret: o.local_secret,
        })
    }
}

/// A JS callback that is told, never asked: what it returns or throws is dropped.
pub type Listener<T> = ThreadsafeFunction<T, Unknown<'static>, T, Status, false, true>;

/// Queues `value` to `listener` on the JS thread without waiting for it. A throw is
/// ignored: it was an uncaught exception, which ends a Node app over a progress bar.
pub fn tell<T: napi::bindgen_prelude::ToNapiValue + 'static>(listener: &Listener<T>, value: T) {
    listener.call_with_return_value(
        value,
        ThreadsafeFunctionCallMode::NonBlocking,
        |_, _| Ok(()),
    );
}

/// Audit and metrics events.
pub type EventCallback = Listener<StorageEvent>;

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct StorageOptions {
    /// Folder (path or file:// URL) holding the files as plain files.
    pub local: Option<String>,
    /// `s3://bucket[/prefix]`, `az://container[/prefix]`, `file:///dir`, `memory://`;
    /// omitted → `s3://$S3_BUCKET` when set; `null` → no cloud, whatever the environment says.
    #[napi(ts_type = "string | null")]
    pub cloud: Option<OrNull<String>>,
    #[napi(ts_type = "CloudOptions")]
    pub cloud_options: Option<Nested<CloudOptions>>,
    #[napi(ts_type = "'local' | 'dual' | 'cloud'")]
    pub mode: Option<String>,
    #[napi(ts_type = "'cloud-first' | 'local-first'")]
    pub read: Option<String>,
    /// SQLite file; default `<local>/.stowage/journal.db`.
    pub journal: Option<String>,
    /// Extension → Cache-Control, e.g. `{ dcm: 'private, max-age=60' }`.
    #[napi(ts_type = "Record<string, string>")]
    pub cache_control: Option<StringMap>,
    pub concurrency: Option<f64>,
    pub part_size: Option<f64>,
    pub multipart_threshold: Option<f64>,
    /// In dual mode, how long writes and reads go without the cloud once a call found
    /// it down (TIMEOUT/UNAVAILABLE), instead of each waiting for it (default 5000; 0:
    /// every call waits).
    pub outage_cooldown_ms: Option<f64>,
    #[napi(ts_type = "PresignOptions")]
    pub presign: Option<Nested<PresignOptions>>,
    /// Colder tiers and the policy that moves objects there.
    #[napi(ts_type = "TierOptions")]
    pub tiers: Option<Nested<super::tier::TierOptions>>,
    #[napi(ts_type = "(event: StorageEvent) => void")]
    pub on_event: Option<EventCallback>,
}

impl StorageOptions {
    /// Splits off the event callback, which is not configuration.
    pub fn into_config(self) -> Result<(Config, Option<EventSink>)> {
        let events = self.on_event.map(event_sink);
        let no_cloud = matches!(self.cloud, Some(OrNull::Null));
        let mut config = Config {
            local: self.local,
            cloud: match self.cloud {
                Some(OrNull::Value(url)) => Some(url),
                _ => None,
            },
            cloud_options: self
                .cloud_options
                .map(|o| o.0.into_store_options("cloudOptions"))
                .transpose()?
                .unwrap_or_default(),
            mode: self.mode,
            read: self.read,
            journal: self.journal.map(Into::into),
            cache_control: self
                .cache_control
                .unwrap_or_default()
                .0
                .into_iter()
                .collect(),
            concurrency: u32_in("concurrency", self.concurrency, CONCURRENCY)?,
            part_size: u64_in("partSize", self.part_size, PART_SIZE)?,
            multipart_threshold: u64_option("multipartThreshold", self.multipart_threshold)?,
            outage_cooldown_ms: u32_option("outageCooldownMs", self.outage_cooldown_ms)?,
            presign: self
                .presign
                .map(|o| o.0.try_into())
                .transpose()?
                .unwrap_or_default(),
            tiers: self
                .tiers
                .map(|o| o.0.try_into())
                .transpose()?
                .unwrap_or_default(),
        };
        if !no_cloud {
            config.apply_env_cloud(&crate::config::env_var)?;
        }
        Ok((config, events))
    }
}

pub type ProgressCallback = Listener<Progress>;

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct PutOpts {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    #[napi(ts_type = "Record<string, string>")]
    pub metadata: Option<StringMap>,
    /// Fail with ALREADY_EXISTS instead of overwriting.
    pub if_not_exists: Option<bool>,
    /// Called at most ~10 times a second with `{ bytes, total }`.
    #[napi(ts_type = "(progress: Progress) => void")]
    pub on_progress: Option<ProgressCallback>,
}

impl PutOpts {
    pub fn split(self) -> (PutOptions, Option<ProgressFn>) {
        let opts = PutOptions {
            content_type: self.content_type,
            cache_control: self.cache_control,
            metadata: self.metadata.unwrap_or_default().0.into_iter().collect(),
            if_not_exists: self.if_not_exists.unwrap_or(false),
        };
        (opts, self.on_progress.map(progress_fn))
    }
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct TransferOpts {
    #[napi(ts_type = "(progress: Progress) => void")]
    pub on_progress: Option<ProgressCallback>,
}

/// Events are queued to the JS thread without waiting; what the handler throws or
/// returns is dropped there, so a faulty handler cannot break storage.
fn event_sink(callback: EventCallback) -> EventSink {
    std::sync::Arc::new(move |event| tell(&callback, StorageEvent::from(event)))
}

/// Progress reports are queued to the JS thread without waiting for it.
pub fn progress_fn(callback: ProgressCallback) -> ProgressFn {
    std::sync::Arc::new(move |bytes, total| {
        let progress = Progress {
            bytes: bytes as i64,
            total: total as i64,
        };
        tell(&callback, progress);
    })
}

#[napi(object)]
#[derive(Default)]
pub struct ListOpts {
    pub prefix: Option<String>,
    pub start_after: Option<String>,
    /// Page size, 1..=10000 (default 1000).
    pub limit: Option<f64>,
}

#[napi(object)]
#[derive(Default)]
pub struct RangeOpts {
    pub start: Option<f64>,
    /// Inclusive, as in `fs.createReadStream`; `Infinity` reads to the end.
    pub end: Option<f64>,
}

#[napi(object)]
#[derive(Default)]
pub struct PresignGetOpts {
    /// Seconds (default `presign.expiresIn`, else 3600).
    pub expires_in: Option<f64>,
    /// e.g. `attachment; filename="scan.dcm"`.
    pub response_content_disposition: Option<String>,
}

#[napi(object)]
#[derive(Default)]
pub struct PresignPutOpts {
    pub expires_in: Option<f64>,
    /// Signed: the uploader must send exactly this `Content-Type`.
    pub content_type: Option<String>,
}

#[napi(object)]
#[derive(Default)]
pub struct VerifyOpts {
    /// The request's `Content-Type`: an upload URL signed for one must send it.
    pub content_type: Option<String>,
}

impl PresignGetOpts {
    pub fn options(&self) -> Result<CallOptions<'_>> {
        Ok(CallOptions {
            expires_in: u64_in("expiresIn", self.expires_in, EXPIRES_IN)?,
            content_type: None,
            content_disposition: self.response_content_disposition.as_deref(),
        })
    }
}

impl PresignPutOpts {
    pub fn options(&self) -> Result<CallOptions<'_>> {
        Ok(CallOptions {
            expires_in: u64_in("expiresIn", self.expires_in, EXPIRES_IN)?,
            content_type: self.content_type.as_deref(),
            content_disposition: None,
        })
    }
}

#[napi(object, object_to_js = false)]
#[derive(Default)]
pub struct RepairOpts {
    /// Called with `{ done, total }` keys.
    #[napi(ts_type = "(progress: RepairProgress) => void")]
    pub on_progress: Option<Listener<super::values::RepairProgress>>,
}

#[napi(object)]
#[derive(Default)]
pub struct RepairerOpts {
    /// Milliseconds between looks for pending repairs (default 30000; at least 10).
    pub interval_ms: Option<f64>,
}
