//! JS shapes of what the object API returns.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use napi_derive::napi;

use crate::dual::{Event, PutResult, RepairReport as CoreRepairReport, Side, SideError, SideStats};
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
    /// The side or tier that answered.
    #[napi(ts_type = "'local' | 'cloud' | 'warm' | 'cold'")]
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
    /// `tier-move-failed`.
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

/// The bytes as a Vec that a Buffer can own. Made on the runtime's thread: a chunk that
/// arrived in one read is a slice of the HTTP client's buffer and must be copied, and
/// that copy should not run on the JavaScript thread.
pub fn owned(bytes: bytes::Bytes) -> Vec<u8> {
    Vec::from(bytes)
}
