//! Stores chosen by URL (`file://` or a path, `memory://`, `s3://`, `az://`) behind one
//! object API, with streaming transfers that hash while they move bytes.

mod cloud;
mod copy;
mod direct_file;
pub mod errors;
mod file_writer;
pub mod hash;
pub mod headers;
mod http;
mod local;
pub mod object;
pub mod options;
pub mod presign;
pub mod progress;
mod transfer;
mod verify;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use object_store::memory::InMemory;
use object_store::path::Path as StorePath;
use object_store::{
    Attribute, Attributes, GetOptions, GetRange, GetResult, ObjectMeta, ObjectStore,
    ObjectStoreExt, PutPayload,
};
use url::Url;

use crate::error::{Error, Result};
use crate::journal::{Journal, ObjectRecord};
use crate::key::{Key, MAX_KEY_BYTES, STATE_DIR};
pub use copy::{Existing, sweep_abandoned};
use errors::{Secrets, map_store_error};
use headers::{SHA256_METADATA, check_header_value};
pub use local::ensure_folder;
use local::{Access, CopiedFile, LocalRoot};
use object::{ObjectInfo, Page, http_etag};
use options::StoreOptions;
pub use transfer::{TransferConfig, hash_bytes, hash_file};
use verify::{check_sha256, check_while_streaming};

/// One store. File-system stores keep headers and SHA-256 in the journal; the others
/// keep them as object attributes.
#[derive(Debug, Clone)]
pub struct Store {
    /// The URL without credentials; names the store in the journal and in messages.
    name: String,
    inner: Arc<dyn ObjectStore>,
    local: Option<LocalRoot>,
    index: Option<Journal>,
    secrets: Secrets,
    /// S3 storage class (or Azure access tier) given to every object written.
    storage_class: Option<String>,
    /// The signer for this bucket and the URL's key prefix, for cloud stores with
    /// static credentials.
    presigner: Option<Arc<(presign::Presigner, String)>>,
    /// Set once the bucket or container has answered, so a later 404 means "no object".
    container_seen: Arc<AtomicBool>,
    place: Place,
    /// What the URL's key prefix adds to each key in the bucket, in bytes.
    prefix_bytes: usize,
}

/// Where a store's objects are, as far as its URL tells. Stores whose places differ
/// never share an object.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Place {
    /// A folder, by its canonical path.
    Folder(PathBuf),
    /// One `memory://` store; no other shares its objects.
    Memory(u64),
    /// A bucket or container and the prefix in it, by name: the same name on two
    /// servers or accounts is one place here, which only a probe tells apart.
    Bucket(String),
}

/// What [`Store::open_range`] found.
enum Ranged {
    /// The range's bytes, its end clamped to the object's size.
    Open(GetResult),
    /// No byte to read: the range is empty or starts at or past the end of the object
    /// `info` describes.
    Nothing(ObjectInfo),
}

/// Whether a file store's journal row is about the file `meta` describes.
fn describes(record: &ObjectRecord, meta: &ObjectMeta) -> bool {
    record.size == meta.size
        && record.mtime_ns == mtime_ns(meta)
        && (record.etag.is_none() || record.etag == meta.e_tag)
}

/// The ETag object_store's file store gives a file (`"inode-mtime µs-size"`, in hex),
/// for files this store lists itself; a test holds the two to the same format.
fn file_etag(meta: &std::fs::Metadata) -> String {
    #[cfg(unix)]
    let inode = std::os::unix::fs::MetadataExt::ino(meta);
    #[cfg(not(unix))]
    let inode = 0;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .unwrap_or_default()
        .as_micros();
    format!("\"{inode:x}-{mtime:x}-{:x}\"", meta.len())
}

/// What object_store would say of the file at `key`.
fn file_meta(key: &Key, meta: &std::fs::Metadata) -> ObjectMeta {
    ObjectMeta {
        location: Store::path(key),
        last_modified: meta.modified().map(Into::into).unwrap_or_default(),
        size: meta.len(),
        e_tag: Some(file_etag(meta)),
        version: None,
    }
}

/// The source's journal row made the copy's, when it described the file copied and
/// that file did not change while its bytes were read.
fn record_of_copy(
    record: ObjectRecord,
    (from, to): (&Key, &Key),
    copied: &CopiedFile,
) -> Option<ObjectRecord> {
    let (source, copy) = (file_meta(from, &copied.source), file_meta(to, &copied.copy));
    (copied.source_unchanged && describes(&record, &source)).then(|| ObjectRecord {
        size: copy.size,
        mtime_ns: mtime_ns(&copy),
        etag: copy.e_tag,
        ..record
    })
}

/// Modification time of a stored object in nanoseconds since the epoch, as the journal
/// records it.
/// A range with no end (`Infinity` from JS) is asked for as `bytes=start-`: some S3
/// servers refuse an end as large as `u64::MAX`, though RFC 9110 clamps it.
fn get_range(range: std::ops::Range<u64>) -> GetRange {
    match range.end {
        u64::MAX => GetRange::Offset(range.start),
        _ => GetRange::Bounded(range),
    }
}

fn mtime_ns(meta: &ObjectMeta) -> i64 {
    meta.last_modified.timestamp_nanos_opt().unwrap_or_default()
}

/// Schemes a store URL may have; `s3:bucket` is a mistyped URL, not a folder name.
const SCHEMES: [&str; 7] = ["file", "memory", "s3", "s3a", "az", "azure", "abfs"];

/// How a store URL was given: `file://…`, an absolute or relative path, or a scheme.
pub fn parse_store_url(url: &str, field: &str) -> Result<Url> {
    if !url.contains("://") {
        if let Some((scheme, _)) = url.split_once(':')
            && SCHEMES.contains(&scheme.to_ascii_lowercase().as_str())
        {
            // Not echoed: a mistyped URL may still carry credentials.
            return Err(Error::config(
                field,
                format!("starts with {scheme}: but not {scheme}:// (a URL missing its //?)"),
            ));
        }
        let path = std::path::absolute(url).map_err(|e| Error::config(field, e.to_string()))?;
        return Url::from_directory_path(&path)
            .map_err(|_| Error::config(field, "not a usable path"))
            .and_then(|url| no_nul_in_path(url, field));
    }
    Url::parse(url)
        .map_err(|e| Error::config(field, format!("not a URL: {e}")))
        .and_then(|url| no_nul_in_path(url, field))
}

/// A store URL names a bucket, container or folder and a prefix. Anything else in it
/// would be dropped without a word: `s3://host:9000/bucket` meant an endpoint,
/// `?storageClass=` a setting, `user:secret@` credentials (so nothing is echoed).
fn names_a_place_only(url: &Url, field: &str) -> Result<()> {
    let refused = if !url.username().is_empty() || url.password().is_some() {
        "carries user info: credentials go in the store's options"
    } else if url.port().is_some() {
        "has a port: the host part is the bucket or container; the server goes in the \
         store's `endpoint` option"
    } else if url.query().is_some() {
        "has a ?query: settings go in the store's options (tier URLs take ?storageClass=)"
    } else if url.fragment().is_some() {
        "has a #fragment, which names no place in a store"
    } else {
        return Ok(());
    };
    Err(Error::config(field, refused))
}

/// A NUL byte (written as such or as `%00`) is a path no file system takes; said
/// here, it is a setting to fix rather than an unavailable disk.
fn no_nul_in_path(url: Url, field: &str) -> Result<Url> {
    let nul = url.scheme() == "file"
        && url
            .to_file_path()
            .is_ok_and(|p| p.as_os_str().as_encoded_bytes().contains(&0));
    if nul {
        return Err(Error::config(field, "the path contains a NUL byte"));
    }
    Ok(url)
}

impl Store {
    /// Opens the store named by `url`. Nothing is sent over the network here.
    /// File stores get their journal from [`Store::attach_journal`].
    pub fn open(url: &str, field: &str, opts: &StoreOptions) -> Result<Store> {
        let parsed = parse_store_url(url, field)?;
        names_a_place_only(&parsed, field)?;
        if let Some(class) = &opts.storage_class {
            check_header_value(&format!("{field} storage class"), class)?;
        }
        let secrets = opts.secrets();
        let mut prefix_bytes = 0;
        let mut remote = |c: cloud::Cloud| {
            let place = Place::Bucket(cloud::place_of(&parsed));
            // The prefix and the `/` after it.
            prefix_bytes = c.prefix.len() + usize::from(!c.prefix.is_empty());
            (c.store, None, c.presigner.map(|p| (p, c.prefix)), place)
        };
        let (inner, local, presigner, place): (Arc<dyn ObjectStore>, _, _, _) =
            match parsed.scheme() {
                "file" => {
                    let path = parsed
                        .to_file_path()
                        .map_err(|_| Error::config(field, "file:// URL is not a local path"))?;
                    let (root, store) = LocalRoot::open(&path, field)?;
                    let place = Place::Folder(root.canonical().to_owned());
                    (store, Some(root), None, place)
                }
                "memory" => {
                    static OPENED: AtomicU64 = AtomicU64::new(0);
                    let place = Place::Memory(OPENED.fetch_add(1, Ordering::Relaxed));
                    (Arc::new(InMemory::new()), None, None, place)
                }
                "s3" | "s3a" => remote(cloud::s3(&parsed, field, opts)?),
                "az" | "azure" | "abfs" => remote(cloud::azure(&parsed, field, opts)?),
                other => {
                    return Err(Error::config(
                        field,
                        format!("unsupported scheme {other}:// (expected file, memory, s3 or az)"),
                    ));
                }
            };
        let mut shown = parsed;
        let _ = shown.set_password(None);
        let _ = shown.set_username("");
        Ok(Store {
            name: shown.to_string(),
            inner,
            local,
            index: None,
            secrets,
            storage_class: opts.storage_class.clone(),
            presigner: presigner.map(Arc::new),
            container_seen: Arc::new(AtomicBool::new(false)),
            place,
            prefix_bytes,
        })
    }

    /// A signer of URLs for keys of this store, without any network call; `None` for
    /// stores that have no signature of their own (file, memory).
    pub fn presigner<'a>(
        &'a self,
        req: &presign::PresignRequest<'a>,
    ) -> Option<Result<StoreSigner<'a>>> {
        let (presigner, prefix) = self.presigner.as_deref()?;
        Some(
            presigner
                .batch(req)
                .map(|batch| StoreSigner { batch, prefix }),
        )
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// Gives a file store the journal of its headers and SHA-256s. Apart from
    /// [`Store::open`], so that stores can be checked against each other before any
    /// journal file is made inside one of them.
    pub fn attach_journal(&mut self, journal: &JournalSource) -> Result<()> {
        if let Some(root) = &self.local {
            self.index = Some(journal.open(root.path())?);
        }
        Ok(())
    }

    /// A file store's folder, symlinks resolved.
    pub fn folder(&self) -> Option<&Path> {
        self.local.as_ref().map(LocalRoot::canonical)
    }

    /// Whether a key here and that key of `other` may be one object: the same bucket
    /// and prefix, or folder, opened twice (e.g. with another storage class), however
    /// its URL was spelled (`//`, a trailing `/`, a symlinked folder, another name for
    /// the server).
    pub fn may_share_objects(&self, other: &Store) -> bool {
        self.place == other.place
    }

    /// Whether `other`'s objects are among this store's keys: its folder, or bucket
    /// and prefix, inside this one's (`s3://b/archive` in `s3://b`). Buckets are told
    /// by name, as [`Store::may_share_objects`] tells them.
    pub fn holds(&self, other: &Store) -> bool {
        match (&self.place, &other.place) {
            (Place::Folder(outer), Place::Folder(inner)) => inner.starts_with(outer),
            (Place::Bucket(outer), Place::Bucket(inner)) => inner
                .strip_prefix(outer.trim_end_matches('/'))
                .is_some_and(|rest| rest.len() > 1 && rest.starts_with('/')),
            _ => false,
        }
    }

    /// Whether a key here and that key of `other` are one object. A wrong "no" would
    /// let a move delete what it has just copied onto itself; a wrong "yes" would keep
    /// a copy a move should have freed. Buckets of one name may be on two servers or
    /// accounts, so for them a probe object written through `other` is looked for
    /// here.
    pub async fn is_same_place(&self, other: &Store) -> Result<bool> {
        match &self.place {
            _ if !self.may_share_objects(other) => Ok(false),
            Place::Bucket(_) => self.sees_writes_of(other).await,
            Place::Folder(_) | Place::Memory(_) => Ok(true),
        }
    }

    async fn sees_writes_of(&self, other: &Store) -> Result<bool> {
        static PROBES: AtomicU64 = AtomicU64::new(0);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Ending in `#` and digits, it is no key: listings, and so migrations, skip it.
        let probe = StorePath::parse(format!(
            "{STATE_DIR}-probe-{}-{nanos}#{}",
            std::process::id(),
            PROBES.fetch_add(1, Ordering::Relaxed)
        ))
        .expect("a probe name is a valid store path");
        let marker = PutPayload::from_static(b"stowage: is this the same place?");
        if let Err(e) = other.inner.put(&probe, marker).await {
            return Err(map_store_error(e, None, &other.secrets));
        }
        let seen = self.inner.head(&probe).await;
        let _ = other.inner.delete(&probe).await;
        match seen {
            Ok(_) => Ok(true),
            Err(object_store::Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(map_store_error(e, None, &self.secrets)),
        }
    }

    /// The folder of a file-system store.
    pub fn local_path(&self) -> Option<&Path> {
        self.local.as_ref().map(LocalRoot::path)
    }

    fn path(key: &Key) -> StorePath {
        StorePath::parse(key.as_str()).expect("validated keys are valid store paths")
    }

    /// Runs before every operation on `key`: file stores refuse symlink escapes.
    async fn guard(&self, key: &Key) -> Result<()> {
        self.guard_for(key, Access::Name).await
    }

    /// Runs before reads: file stores also report what is not a regular file missing.
    async fn guard_read(&self, key: &Key) -> Result<()> {
        self.guard_for(key, Access::Read).await
    }

    /// Runs before writes: file stores also refuse names with no room for staging,
    /// and names that a folder holds or whose folders a file holds.
    pub async fn guard_write(&self, key: &Key) -> Result<()> {
        self.guard_for(key, Access::Stage).await
    }

    async fn guard_for(&self, key: &Key, access: Access) -> Result<()> {
        self.check_length(key)?;
        match &self.local {
            Some(root) => root.check_inside(key, access).await,
            None => Ok(()),
        }
    }

    /// A key whose name in the bucket, after the URL's prefix, is over the limit
    /// every store shares, which S3 and Azure enforce on the whole name.
    pub fn check_length(&self, key: &Key) -> Result<()> {
        match self.prefix_bytes + key.as_str().len() > MAX_KEY_BYTES {
            true => Err(Error::InvalidKey {
                key: key.to_string(),
                reason: "key is longer than 1024 bytes with the store's prefix".into(),
            }),
            false => Ok(()),
        }
    }

    /// Maps an error of this store, telling a missing bucket from a missing object.
    async fn fail(&self, err: object_store::Error, key: &Key) -> Error {
        let not_found = matches!(err, object_store::Error::NotFound { .. });
        let mapped = self.map(err, key);
        if not_found
            && matches!(mapped, Error::NotFound { .. })
            && self.local.is_none()
            && let Err(e) = self.probe_container().await
        {
            return e;
        }
        mapped
    }

    /// This store's error for an operation on `key`, with its secrets kept out.
    fn map(&self, err: object_store::Error, key: &Key) -> Error {
        map_store_error(err, Some(key), &self.secrets)
    }

    /// A HEAD on a missing bucket is a bodiless 404, like a missing object; one listing
    /// call (once per store) tells the two apart.
    async fn probe_container(&self) -> Result<()> {
        if self.container_seen.load(Ordering::Relaxed) {
            return Ok(());
        }
        let probe = StorePath::parse(".stowage-probe").expect("valid path");
        match self.inner.list_with_delimiter(Some(&probe)).await {
            Ok(_) => {
                self.container_seen.store(true, Ordering::Relaxed);
                Ok(())
            }
            Err(e) => Err(match map_store_error(e, None, &self.secrets) {
                Error::NotFound { .. } => Error::NoSuchBucket(self.name.clone()),
                other => other,
            }),
        }
    }

    fn seen(&self) {
        self.container_seen.store(true, Ordering::Relaxed);
    }

    pub async fn head(&self, key: &Key) -> Result<ObjectInfo> {
        self.guard_read(key).await?;
        let opts = GetOptions {
            head: true,
            ..Default::default()
        };
        let result = match self.inner.get_opts(&Self::path(key), opts).await {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e, key).await),
        };
        self.seen();
        self.info(key, &result.meta, &result.attributes).await
    }

    pub async fn exists(&self, key: &Key) -> Result<bool> {
        match self.head(key).await {
            Ok(_) => Ok(true),
            Err(Error::NotFound { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Builds the description of an object from its store metadata, and for file stores
    /// from the journal row when that row still describes the file.
    async fn info(
        &self,
        key: &Key,
        meta: &ObjectMeta,
        attributes: &Attributes,
    ) -> Result<ObjectInfo> {
        let record = match &self.index {
            Some(index) => index.get_object(&self.name, key.as_str()).await?,
            None => None,
        };
        Ok(self.describe(key, meta, attributes, record))
    }

    /// `info` with the journal row (of file stores) already looked up.
    fn describe(
        &self,
        key: &Key,
        meta: &ObjectMeta,
        attributes: &Attributes,
        record: Option<ObjectRecord>,
    ) -> ObjectInfo {
        let mut info = ObjectInfo {
            key: key.clone(),
            size: meta.size,
            last_modified: meta.last_modified.into(),
            etag: meta.e_tag.as_deref().map(http_etag),
            content_type: headers::content_type_for(key),
            cache_control: headers::cache_control_for(key),
            sha256: None,
            metadata: BTreeMap::new(),
        };
        if self.index.is_some() {
            if let Some(r) = record.filter(|r| describes(r, meta)) {
                info.sha256 = Some(r.sha256);
                info.content_type = r.content_type;
                info.cache_control = r.cache_control;
                info.metadata = r.metadata;
            }
            return info;
        }
        for (attribute, value) in attributes {
            match attribute {
                Attribute::ContentType => info.content_type = value.to_string(),
                Attribute::CacheControl => info.cache_control = value.to_string(),
                Attribute::Metadata(name) if name == SHA256_METADATA => {
                    info.sha256 = Some(value.to_string()).filter(|s| hash::is_sha256_hex(s))
                }
                Attribute::Metadata(name) => {
                    info.metadata.insert(name.to_string(), value.to_string());
                }
                _ => {}
            }
        }
        info
    }

    /// Opens a read of `key` (all of it, or `range`).
    async fn open_read(&self, key: &Key, range: Option<std::ops::Range<u64>>) -> Result<GetResult> {
        self.guard_read(key).await?;
        let opts = GetOptions {
            range: range.map(get_range),
            ..Default::default()
        };
        match self.inner.get_opts(&Self::path(key), opts).await {
            Ok(r) => {
                self.seen();
                Ok(r)
            }
            Err(e) => Err(self.fail(e, key).await),
        }
    }

    /// The whole object, checked against its recorded SHA-256 when one is known (as
    /// `get_to_file` checks), so bytes damaged at rest or in flight are refused.
    pub async fn get(&self, key: &Key) -> Result<Bytes> {
        let read = self.open_read(key, None).await?;
        let (meta, attributes) = (read.meta.clone(), read.attributes.clone());
        let (info, bytes) = tokio::try_join!(self.info(key, &meta, &attributes), async {
            read.bytes().await.map_err(|e| self.map(e, key))
        })?;
        if let Some(expected) = &info.sha256 {
            check_sha256(key, &hash_bytes(&bytes).await?, expected)?;
        }
        Ok(bytes)
    }

    /// Bytes `start..end` (end exclusive, clamped to the object's size).
    pub async fn get_range(&self, key: &Key, start: u64, end: u64) -> Result<Bytes> {
        if end < start {
            return Err(Error::config(
                "range",
                format!("end {end} is before start {start}"),
            ));
        }
        match self.open_range(key, start..end).await? {
            Ranged::Open(result) => result.bytes().await.map_err(|e| self.map(e, key)),
            Ranged::Nothing(info) if start > info.size => Err(Error::config(
                "range",
                format!("start {start} is past the end ({} bytes)", info.size),
            )),
            Ranged::Nothing(_) => Ok(Bytes::new()),
        }
    }

    /// Opens `range` in one request, its end clamped by the store to the object's size.
    /// A range with no byte in the object (empty, or starting at or past its end) is
    /// refused by each store in its own way (S3 and Azure answer 416, the file and
    /// memory stores return their own errors), so a refusal is told apart by a HEAD:
    /// the second request is only made then.
    async fn open_range(&self, key: &Key, range: std::ops::Range<u64>) -> Result<Ranged> {
        let refused = if range.is_empty() {
            None
        } else {
            match self.open_read(key, Some(range.clone())).await {
                Ok(result) => return Ok(Ranged::Open(result)),
                Err(e @ Error::NotFound { .. }) => return Err(e),
                Err(e) => Some(e),
            }
        };
        let info = self.head(key).await?;
        match refused {
            Some(e) if range.start < info.size => Err(e),
            _ => Ok(Ranged::Nothing(info)),
        }
    }

    /// The object as a stream of chunks, for `createReadStream`, with the description
    /// of the version it streams (the same response's, so the two agree however often
    /// the object is rewritten). A whole object is checked against its SHA-256 as it
    /// streams, and so is a range that covers all of it; a shorter range cannot be.
    pub async fn stream(
        &self,
        key: &Key,
        range: Option<std::ops::Range<u64>>,
    ) -> Result<(ObjectInfo, BoxStream<'static, Result<Bytes>>)> {
        let from_start = range.as_ref().is_none_or(|r| r.start == 0);
        let result = match range.clone() {
            Some(range) => match self.open_range(key, range).await? {
                Ranged::Open(result) => result,
                Ranged::Nothing(info) => return Ok((info, futures::stream::empty().boxed())),
            },
            None => self.open_read(key, None).await?,
        };
        let info = self.info(key, &result.meta, &result.attributes).await?;
        let (owned_key, secrets) = (key.clone(), self.secrets.clone());
        let chunks = result
            .into_stream()
            .map_err(move |e| map_store_error(e, Some(&owned_key), &secrets))
            .boxed();
        // A range over the whole object (`Range: bytes=0-`, as video players send)
        // is checked as the whole object is.
        let whole = from_start && range.is_none_or(|r| r.end >= info.size);
        let chunks = match info.sha256.clone().filter(|_| whole) {
            Some(sha256) => check_while_streaming(chunks, key.clone(), sha256),
            None => chunks,
        };
        Ok((info, chunks))
    }

    /// Whether listings describe objects with their stored headers: file stores keep
    /// them in the journal; S3, Azure and memory listings carry none.
    pub fn lists_headers(&self) -> bool {
        self.index.is_some()
    }

    pub async fn delete(&self, key: &Key) -> Result<()> {
        match self.guard(key).await {
            Err(Error::NotFound { .. }) => return Ok(()),
            guarded => guarded?,
        }
        match self.inner.delete(&Self::path(key)).await {
            Ok(()) => {}
            // Deleting what is not there is success, as on S3.
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(self.fail(e, key).await),
        }
        self.forget(key).await
    }

    /// What goes with a deleted object besides its bytes: a file's emptied folders
    /// and its journal row.
    async fn forget(&self, key: &Key) -> Result<()> {
        if let Some(local) = &self.local {
            local.prune_folders(key).await;
        }
        if let Some(index) = &self.index {
            index.delete_object(&self.name, key.as_str()).await?;
        }
        Ok(())
    }

    /// Server-side copy; headers and metadata travel with the object. Onto itself
    /// nothing moves, as with POSIX `rename(2)`: the stores would instead refuse (AWS
    /// S3), delete the object (a rename on S3 copies, then deletes its source) or drop
    /// its journal row.
    pub async fn copy(&self, from: &Key, to: &Key) -> Result<ObjectInfo> {
        self.guard_read(from).await?;
        self.guard_write(to).await?;
        if from == to {
            return self.head(to).await;
        }
        match &self.local {
            Some(local) => {
                let record = self.moving_record(from).await?;
                let copied = local.copy(from, to).await?;
                let record = record.and_then(|r| record_of_copy(r, (from, to), &copied));
                self.reindex(to, record).await?;
            }
            None => {
                if let Err(e) = self.inner.copy(&Self::path(from), &Self::path(to)).await {
                    return Err(self.fail(e, from).await);
                }
            }
        }
        self.head(to).await
    }

    pub async fn rename(&self, from: &Key, to: &Key) -> Result<ObjectInfo> {
        self.guard(from).await?;
        self.guard_for(to, Access::Replace).await?;
        if from == to {
            return self.head(to).await;
        }
        let record = self.moving_record(from).await?;
        if let Err(e) = self.inner.rename(&Self::path(from), &Self::path(to)).await {
            return Err(self.fail(e, from).await);
        }
        if let Some(local) = &self.local {
            local.unlink_if_same_file(from, to).await;
            local.prune_folders(from).await;
        }
        self.reindex(to, record).await?;
        if let Some(index) = &self.index {
            index.delete_object(&self.name, from.as_str()).await?;
        }
        self.head(to).await
    }

    /// File stores: the journal row of the file at `from`, if it describes that file
    /// (its size and mtime), taken before a copy or rename moves it.
    async fn moving_record(&self, from: &Key) -> Result<Option<ObjectRecord>> {
        let Some(index) = &self.index else {
            return Ok(None);
        };
        let record = index.get_object(&self.name, from.as_str()).await?;
        let meta = match self.inner.head(&Self::path(from)).await {
            Ok(meta) => meta,
            Err(e) => return Err(self.fail(e, from).await),
        };
        Ok(record.filter(|r| describes(r, &meta)))
    }

    /// File stores: a rename keeps the file, so the source's row describes it as is,
    /// and a copy's row describes the copy as it was staged (before it was renamed into
    /// place). Taking the metadata from `to` afterwards would pair one file's SHA-256
    /// with another file's when a concurrent write replaced `to` in between, and every
    /// read of it would then fail `INTEGRITY`; a row whose file was replaced just no
    /// longer matches, and reads go unchecked until the next write.
    async fn reindex(&self, to: &Key, record: Option<ObjectRecord>) -> Result<()> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        match record {
            Some(record) => index.put_object(&self.name, to.as_str(), record).await,
            None => index.delete_object(&self.name, to.as_str()).await,
        }
    }

    /// One page of keys under `prefix` in byte order, after `start_after`.
    pub async fn list(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        limit: usize,
    ) -> Result<Page> {
        let limit = limit.clamp(1, 10_000);
        let metas = match &self.local {
            Some(root) => {
                self.list_local(root, prefix, start_after, limit + 1)
                    .await?
            }
            None => self.list_remote(prefix, start_after, limit + 1).await?,
        };
        let more = metas.len() > limit;
        let metas = &metas[..metas.len().min(limit)];
        // One journal query per page, not one per key.
        let mut records = match (&self.index, metas.first(), metas.last()) {
            (Some(index), Some((first, _)), Some((last, _))) => {
                index
                    .objects_between(&self.name, first.as_str(), last.as_str())
                    .await?
            }
            _ => Default::default(),
        };
        let objects: Vec<ObjectInfo> = metas
            .iter()
            .map(|(key, meta)| {
                let record = records.remove(key.as_str());
                self.describe(key, meta, &Attributes::new(), record)
            })
            .collect();
        let next = more
            .then(|| objects.last().map(|o| o.key.to_string()))
            .flatten();
        Ok(Page { objects, next })
    }

    async fn list_local(
        &self,
        root: &LocalRoot,
        prefix: &str,
        start_after: Option<&str>,
        n: usize,
    ) -> Result<Vec<(Key, ObjectMeta)>> {
        let files = root.list(prefix, start_after, n).await?;
        Ok(files
            .into_iter()
            .map(|(key, meta)| {
                let meta = file_meta(&key, &meta);
                (key, meta)
            })
            .collect())
    }

    async fn list_remote(
        &self,
        prefix: &str,
        start_after: Option<&str>,
        n: usize,
    ) -> Result<Vec<(Key, ObjectMeta)>> {
        // object_store lists whole path segments; a partial segment is filtered here.
        let dir = prefix
            .rfind('/')
            .map(|i| &prefix[..i])
            .filter(|d| !d.is_empty());
        let dir = dir.and_then(leading_path);
        let offset = start_after.and_then(leading_path);
        let stream = match &offset {
            Some(o) => self.inner.list_with_offset(dir.as_ref(), o),
            None => self.inner.list(dir.as_ref()),
        };
        let prefix = prefix.to_owned();
        let start_after = start_after.map(str::to_owned);
        let items: Vec<(Key, ObjectMeta)> = stream
            .map_err(|e| map_store_error(e, None, &self.secrets))
            // Some servers (Azurite) ignore the offset; filtering again is cheap. Names
            // that are not keys (another tool's `.stowage/…` or `a//b`) are left out
            // before the page is counted: a page they filled would end with no `next`.
            .try_filter_map(|m| {
                let k = m.location.as_ref();
                let wanted = k.starts_with(&prefix) && start_after.as_deref().is_none_or(|s| k > s);
                let key = wanted.then(|| Key::parse(k).ok()).flatten();
                futures::future::ready(Ok(key.map(|key| (key, m))))
            })
            .take(n)
            .try_collect()
            .await
            .map_err(|e| match e {
                Error::NotFound { .. } => Error::NoSuchBucket(self.name.clone()),
                other => other,
            })?;
        self.seen();
        Ok(items)
    }
}

/// `text` as a path, or the longest run of its leading segments that object_store
/// can parse (`a` for `a//b` or `a/../b`): a prefix or offset that lists at least the
/// keys it names. Any string is a prefix or `startAfter` on every store; what the
/// shorter path adds is filtered out after the listing.
fn leading_path(mut text: &str) -> Option<StorePath> {
    loop {
        if let Ok(path) = StorePath::parse(text) {
            return Some(path);
        }
        text = &text[..text.rfind('/')?];
    }
}

/// Where file-system stores keep their journal: the manager's one journal for its
/// local root, or `<root>/.stowage/journal.db` for any other folder.
#[derive(Debug, Clone)]
pub struct JournalSource {
    pub shared: Option<(PathBuf, Journal)>,
}

impl JournalSource {
    fn open(&self, root: &Path) -> Result<Journal> {
        if let Some((shared_root, journal)) = &self.shared
            && shared_root == root
        {
            return Ok(journal.clone());
        }
        Journal::open(&root.join(STATE_DIR).join("journal.db"))
    }
}

/// Signs URLs for keys of one store: the store's key prefix, then its signer.
pub struct StoreSigner<'a> {
    batch: presign::BatchSigner<'a>,
    prefix: &'a str,
}

impl StoreSigner<'_> {
    pub fn url(&self, key: &str) -> Result<String> {
        if self.prefix.is_empty() {
            return self.batch.url(key);
        }
        self.batch.url(&format!("{}/{key}", self.prefix))
    }
}
