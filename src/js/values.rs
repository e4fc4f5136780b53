//! JS shapes of what the object API returns.

use std::collections::HashMap;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{Buffer, BufferSlice, ToNapiValue};
use napi::{Env, sys};
use napi_derive::napi;

use crate::dual::{
    Event, Location, PutResult, RepairReport as CoreRepairReport, Side, SideError, SideStats,
};
use crate::store::object::ObjectInfo;

#[napi(object, js_name = "ObjectInfo")]
pub struct JsObjectInfo {
    pub key: String,
    pub size: i64,
    pub last_modified: DateTime<Utc>,
    pub etag: Option<String>,
    pub content_type: String,
    pub cache_control: String,
    pub sha256: Option<String>,
    pub metadata: HashMap<String, String>,
    #[napi(ts_type = "'hot' | 'warm' | 'cold'")]
    pub tier: Option<String>,
    /// The side or tier that answered; in a listing, `both` when the local side and
    /// the cloud list the object alike.
    #[napi(ts_type = "'local' | 'cloud' | 'both' | 'warm' | 'cold'")]
    pub location: String,
}

impl JsObjectInfo {
    pub fn new(side: Side, info: ObjectInfo) -> Self {
        JsObjectInfo {
            key: info.key.to_string(),
            size: info.size as i64,
            last_modified: info.last_modified.into(),
            etag: info.etag,
            content_type: info.content_type,
            cache_control: info.cache_control,
            sha256: info.sha256,
            metadata: info.metadata.into_iter().collect(),
            tier: matches!(side, Side::Warm | Side::Cold).then(|| side.as_str().to_owned()),
            location: side.as_str().to_owned(),
        }
    }

    pub fn listed(location: Location, info: ObjectInfo) -> Self {
        match location {
            Location::On(side) => Self::new(side, info),
            Location::Both => JsObjectInfo {
                location: location.as_str().to_owned(),
                ..Self::new(Side::Local, info)
            },
        }
    }
}

/// Why one side of a write failed while the other succeeded.
#[napi(object)]
pub struct SideFailure {
    #[napi(ts_type = "'local' | 'cloud'")]
    pub side: String,
    pub code: String,
    pub message: String,
}

#[napi(object, js_name = "PutResult")]
pub struct JsPutResult {
    pub key: String,
    pub size: i64,
    pub sha256: String,
    pub etag: Option<String>,
    #[napi(ts_type = "'written' | 'skipped' | 'failed' | 'queued'")]
    pub local: String,
    #[napi(ts_type = "'written' | 'skipped' | 'failed' | 'queued'")]
    pub cloud: String,
    /// Present when a side failed; the call still succeeded through the other side.
    pub errors: Option<Vec<SideFailure>>,
}

impl From<PutResult> for JsPutResult {
    fn from(r: PutResult) -> Self {
        let errors: Vec<SideFailure> = r
            .errors
            .into_iter()
            .map(|SideError { side, error }| SideFailure {
                side: side.as_str().to_owned(),
                code: error.code().to_owned(),
                message: error.to_string(),
            })
            .collect();
        JsPutResult {
            key: r.key.to_string(),
            size: r.written.size as i64,
            sha256: r.written.sha256,
            etag: r.written.etag,
            local: r.local.as_str().to_owned(),
            cloud: r.cloud.as_str().to_owned(),
            errors: (!errors.is_empty()).then_some(errors),
        }
    }
}

#[napi(object)]
pub struct ListResult {
    pub objects: Vec<JsObjectInfo>,
    /// Pass as `startAfter` to get the next page; absent on the last page.
    pub next: Option<String>,
}

#[napi(object)]
pub struct Progress {
    pub bytes: i64,
    pub total: i64,
}

/// One audit/metrics event.
#[napi(object)]
pub struct StorageEvent {
    /// `put`, `delete`, `cloud-write-failed`, `local-write-failed`, `repaired`,
    /// `repair-failed`, `integrity-failed`, `migrated`, `migrate-failed`, `tier-moved`,
    /// `tier-move-failed`, `cloud-down`, `cloud-up`.
    #[napi(js_name = "type")]
    pub kind: String,
    pub key: String,
    pub size: Option<i64>,
    #[napi(ts_type = "'local' | 'cloud' | 'warm' | 'cold'")]
    pub side: Option<String>,
    /// The error code, for failures.
    pub code: Option<String>,
    pub message: Option<String>,
    pub timestamp: DateTime<Utc>,
}

impl From<Event> for StorageEvent {
    fn from(e: Event) -> Self {
        StorageEvent {
            kind: e.kind.as_str().to_owned(),
            key: e.key,
            size: e.size.map(|s| s as i64),
            side: e.side.map(|s| s.as_str().to_owned()),
            code: e.code.map(str::to_owned),
            message: e.message,
            timestamp: Utc::now(),
        }
    }
}

#[napi(object)]
pub struct RepairProgress {
    pub done: i64,
    pub total: i64,
}

#[napi(object)]
pub struct RepairReport {
    pub repaired: i64,
    pub failed: i64,
    /// Keys still pending (failures, and writes that arrived meanwhile).
    pub remaining: i64,
}

impl From<CoreRepairReport> for RepairReport {
    fn from(r: CoreRepairReport) -> Self {
        RepairReport {
            repaired: r.repaired as i64,
            failed: r.failed as i64,
            remaining: r.remaining as i64,
        }
    }
}

#[napi(object, js_name = "SideStats")]
pub struct JsSideStats {
    pub writes: i64,
    pub bytes_written: i64,
    pub reads: i64,
    pub bytes_read: i64,
    pub deletes: i64,
    pub failures: i64,
}

impl From<SideStats> for JsSideStats {
    fn from(s: SideStats) -> Self {
        JsSideStats {
            writes: s.writes as i64,
            bytes_written: s.bytes_written as i64,
            reads: s.reads as i64,
            bytes_read: s.bytes_read as i64,
            deletes: s.deletes as i64,
            failures: s.failures as i64,
        }
    }
}

#[napi(object)]
pub struct Stats {
    pub local: JsSideStats,
    pub cloud: JsSideStats,
    /// Keys repaired since the manager was created.
    pub repaired: i64,
}

/// Bytes on their way to a JS `Buffer`, prepared on the runtime's thread (`JsBytes::from`).
pub enum JsBytes {
    /// Copied into a buffer V8 owns, on the JavaScript thread.
    Copy(Bytes),
    /// Handed over without a copy: Node frees it through a finalizer.
    Own(Vec<u8>),
}

/// Up to this size a buffer is copied on the JavaScript thread. An external buffer
/// costs Node about as much there as the copy (a cleanup hook, a finalizer and a
/// callback when it is collected), and the copy spares the runtime's thread its own:
/// 50 KiB GETs from a memory store, 16 in flight, used 23–25 µs of the JavaScript
/// thread and 49 µs of the runtime's per call before, 22–24 µs and 40–42 µs after.
const COPY_MAX: usize = 64 * 1024;

/// Small bytes stay as they are; large ones become a Vec here, off the JavaScript
/// thread (a chunk that arrived in one read is a slice of the HTTP client's buffer and
/// must be copied to be owned).
impl From<Bytes> for JsBytes {
    fn from(bytes: Bytes) -> Self {
        if bytes.len() <= COPY_MAX {
            JsBytes::Copy(bytes)
        } else {
            JsBytes::Own(Vec::from(bytes))
        }
    }
}

impl ToNapiValue for JsBytes {
    unsafe fn to_napi_value(env: sys::napi_env, value: Self) -> napi::Result<sys::napi_value> {
        // SAFETY (both arms): `env` is the live environment napi passed in.
        match value {
            JsBytes::Copy(bytes) => unsafe {
                let copy = BufferSlice::copy_from(&Env::from_raw(env), &bytes)?;
                ToNapiValue::to_napi_value(env, &copy)
            },
            JsBytes::Own(vec) => unsafe { Buffer::to_napi_value(env, vec.into()) },
        }
    }
}
