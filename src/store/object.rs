//! What the object API takes and returns, independent of the store behind it.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use crate::key::Key;

/// Description of a stored object (`ObjectInfo` in JavaScript, less `location`).
#[derive(Debug, Clone)]
pub struct ObjectInfo {
    pub key: Key,
    pub size: u64,
    pub last_modified: SystemTime,
    pub etag: Option<String>,
    pub content_type: String,
    pub cache_control: String,
    pub sha256: Option<String>,
    pub metadata: BTreeMap<String, String>,
}

impl ObjectInfo {
    /// Modification time in nanoseconds since the epoch: with `size`, what tells
    /// whether a file is still the one that was recorded.
    pub fn mtime_ns(&self) -> i64 {
        self.last_modified
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64)
    }

    /// Whether a rewrite at `t` could leave the size and mtime as they are: file
    /// systems stamp mtimes from a coarse clock, so a file rewritten within the same
    /// tick as its mtime keeps it. Such a file can only be told apart by its bytes
    /// (Git calls its index entries "racily clean" for the same reason).
    pub fn racy_at(&self, t: SystemTime) -> bool {
        self.last_modified + MTIME_GRANULARITY > t
    }
}

/// The coarsest mtime clock stowage expects: FAT's 2 s (ext4 ticks every few ms,
/// HFS+ and ext3 every second).
const MTIME_GRANULARITY: Duration = Duration::from_secs(2);

/// An ETag as HTTP headers carry it, quoted. Azure's listings give them bare, so the
/// same version's ETag differed between `list` and `head`.
pub fn http_etag(etag: &str) -> String {
    match etag.starts_with('"') || etag.starts_with("W/") {
        true => etag.to_owned(),
        false => format!("\"{etag}\""),
    }
}

/// Whether two ETags name one version, quoted or not (journals from before
/// [`http_etag`] hold Azure's bare ones).
pub fn same_etag(a: &str, b: &str) -> bool {
    a.trim_matches('"') == b.trim_matches('"')
}

/// Headers and conditions of a write.
#[derive(Debug, Clone, Default)]
pub struct PutOptions {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub metadata: BTreeMap<String, String>,
    pub if_not_exists: bool,
}

/// What a successful write stored.
#[derive(Debug, Clone)]
pub struct Written {
    pub size: u64,
    pub sha256: String,
    pub etag: Option<String>,
}

/// One page of a listing; `next` is the `startAfter` of the following page.
#[derive(Debug, Clone, Default)]
pub struct Page {
    pub objects: Vec<ObjectInfo>,
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_quoted_once_and_compared_either_way() {
        assert_eq!(http_etag("0x8DB"), "\"0x8DB\"");
        assert_eq!(http_etag("\"abc\""), "\"abc\"");
        assert_eq!(http_etag("W/\"abc\""), "W/\"abc\"");
        assert!(same_etag("0x8DB", "\"0x8DB\""));
        assert!(!same_etag("0x8DB", "\"0x8DC\""));
    }
}
