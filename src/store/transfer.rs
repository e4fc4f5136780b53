//! Writes and downloads that hash while they stream: single PUTs below the multipart
//! threshold, `partSize` parts with `concurrency` in flight above it, and downloads to
//! a temporary file that is renamed into place only once its SHA-256 checks out.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use futures::StreamExt;
use object_store::{
    Attribute, Attributes, ObjectStoreExt, PutMode, PutMultipartOptions,
    PutOptions as StorePutOptions, PutPayload, WriteMultipart,
};

use super::Store;
use super::file_writer::{FileWriter, Next};
use super::hash::{StreamHasher, sha256_hex};
use super::headers::{self, SHA256_METADATA};
use super::object::{ObjectInfo, PutOptions, Written, http_etag};
use super::progress::{Progress, ProgressFn};
use super::verify::check_sha256;
use crate::error::{Error, Result};
use crate::journal::ObjectRecord;
use crate::key::Key;

/// How transfers are cut up; `partSize` and `multipartThreshold` in JavaScript.
#[derive(Debug, Clone, Copy)]
pub struct TransferConfig {
    pub part_size: usize,
    pub multipart_threshold: u64,
    pub concurrency: usize,
    /// Store-to-store copies up to this size go through memory as one PUT; larger ones
    /// stream in parts.
    pub copy_in_memory: u64,
}

impl Default for TransferConfig {
    fn default() -> Self {
        TransferConfig {
            part_size: 10 * 1024 * 1024,
            multipart_threshold: 100 * 1024 * 1024,
            concurrency: 16,
            copy_in_memory: 8 * 1024 * 1024,
        }
    }
}

/// Read buffer for files: large enough that syscalls don't dominate, small enough to
/// keep many concurrent transfers cheap.
const READ_CHUNK: usize = 1024 * 1024;

impl Store {
    /// Stores a buffer. `sha256` may be given when the caller already hashed the bytes
    /// (a dual write hashes once for both sides).
    pub async fn put_bytes(
        &self,
        key: &Key,
        data: Bytes,
        opts: &PutOptions,
        sha256: Option<String>,
        cfg: &TransferConfig,
    ) -> Result<Written> {
        self.guard_write(key).await?;
        let sha256 = match sha256 {
            Some(known) => known,
            None => hash_bytes(&data).await?,
        };
        let size = data.len() as u64;
        let attributes = self.attributes(key, opts, &sha256);
        let path = Self::path(key);
        let result = if size > cfg.multipart_threshold {
            self.refuse_if_taken(key, opts).await?;
            let mut upload = self.start_multipart(key, attributes, cfg).await?;
            for part in data.chunks(cfg.part_size) {
                let parts = upload.parts();
                parts
                    .wait_for_capacity(cfg.concurrency)
                    .await
                    .map_err(|e| self.map(e, key))?;
                parts.put(data.slice_ref(part));
            }
            upload.finish().await
        } else {
            let mode = if opts.if_not_exists {
                PutMode::Create
            } else {
                PutMode::Overwrite
            };
            let put = StorePutOptions {
                mode,
                attributes,
                ..Default::default()
            };
            self.inner
                .put_opts(&path, PutPayload::from_bytes(data), put)
                .await
        };
        let result = match result {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e, key).await),
        };
        self.seen();
        self.record(key, opts, &sha256, size, &result.e_tag).await?;
        Ok(Written {
            size,
            sha256,
            etag: result.e_tag.as_deref().map(http_etag),
        })
    }

    /// Streams a large file into the store as a multipart upload. The caller hashed it
    /// already (`expected` = size and SHA-256, stored when the upload starts); the bytes
    /// are hashed again as they stream, so a file that changed in between is refused
    /// with `INTEGRITY`, never stored torn.
    pub async fn put_file(
        &self,
        key: &Key,
        file: &Path,
        expected: &(u64, String),
        opts: &PutOptions,
        cfg: &TransferConfig,
        progress: Option<ProgressFn>,
    ) -> Result<Written> {
        self.guard_write(key).await?;
        let shown = file.display().to_string();
        self.refuse_if_taken(key, opts).await?;
        let attributes = self.attributes(key, opts, &expected.1);
        let mut upload = self.start_multipart(key, attributes, cfg).await?;
        let streamed = self
            .stream_parts(
                key,
                file,
                upload.parts(),
                cfg,
                Progress::new(progress, expected.0),
            )
            .await;
        match streamed {
            Ok(actual) if actual.bytes() == expected.0 && actual.clone().finish() == expected.1 => {
            }
            Ok(_) => {
                let _ = upload.abort().await;
                return Err(Error::Integrity(format!(
                    "{shown} changed while it was uploaded to {key}"
                )));
            }
            Err(e) => {
                let _ = upload.abort().await;
                return Err(e);
            }
        }
        let result = match upload.finish().await {
            Ok(r) => r,
            Err(e) => return Err(self.fail(e, key).await),
        };
        self.record(key, opts, &expected.1, expected.0, &result.e_tag)
            .await?;
        Ok(Written {
            size: expected.0,
            sha256: expected.1.clone(),
            etag: result.e_tag.as_deref().map(http_etag),
        })
    }

    /// A multipart upload carries no condition (object_store sends none), so
    /// `ifNotExists` is checked just before it starts; the key's lock keeps stowage's
    /// own writers out of the gap.
    async fn refuse_if_taken(&self, key: &Key, opts: &PutOptions) -> Result<()> {
        match opts.if_not_exists && self.exists(key).await? {
            true => Err(Error::AlreadyExists {
                key: key.to_string(),
            }),
            false => Ok(()),
        }
    }

    async fn start_multipart(
        &self,
        key: &Key,
        attributes: Attributes,
        cfg: &TransferConfig,
    ) -> Result<Upload> {
        let opts = PutMultipartOptions {
            attributes,
            ..Default::default()
        };
        match self.inner.put_multipart_opts(&Self::path(key), opts).await {
            Ok(upload) => Ok(Upload(Some(WriteMultipart::new_with_chunk_size(
                upload,
                cfg.part_size,
            )))),
            Err(e) => Err(self.fail(e, key).await),
        }
    }

    async fn stream_parts(
        &self,
        key: &Key,
        file: &Path,
        upload: &mut WriteMultipart,
        cfg: &TransferConfig,
        mut progress: Progress,
    ) -> Result<StreamHasher> {
        let shown = file.display().to_string();
        let mut reader = tokio::fs::File::open(file)
            .await
            .map_err(|e| Error::from_file_io(e, &shown))?;
        let mut hasher = StreamHasher::default();
        let mut buf = vec![0u8; READ_CHUNK];
        loop {
            let n = tokio::io::AsyncReadExt::read(&mut reader, &mut buf)
                .await
                .map_err(|e| Error::from_file_io(e, &shown))?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            upload
                .wait_for_capacity(cfg.concurrency)
                .await
                .map_err(|e| self.map(e, key))?;
            upload.write(&buf[..n]);
            progress.advance(n as u64);
        }
        progress.finish();
        Ok(hasher)
    }

    /// Downloads to `dest` through a temporary file in the same folder; the rename
    /// happens only after the bytes match the stored SHA-256 (when one is known).
    pub async fn get_to_file(
        &self,
        key: &Key,
        dest: &Path,
        progress: Option<ProgressFn>,
    ) -> Result<ObjectInfo> {
        Ok(self.download(key, dest, progress, Next::Kept).await?.0)
    }

    /// `get_to_file`, also returning the size and SHA-256 of the bytes written.
    pub(super) async fn download(
        &self,
        key: &Key,
        dest: &Path,
        progress: Option<ProgressFn>,
        next: Next,
    ) -> Result<(ObjectInfo, (u64, String))> {
        let shown = dest.display().to_string();
        // The rename would replace whatever is there: a FIFO or, as root, a device
        // node such as /dev/null. A directory would fail only after the download.
        if tokio::fs::metadata(dest).await.is_ok_and(|m| !m.is_file()) {
            return Err(Error::config(
                "path",
                format!("{shown} exists and is not a regular file"),
            ));
        }
        check_folder_of(dest, &shown).await?;
        let read = self.open_read(key, None).await?;
        let info = self.info(key, &read.meta, &read.attributes).await?;
        let temp = temp_path(dest);
        let result = async {
            let mut file = FileWriter::create(&temp, info.size, next).await?;
            let mut progress = Progress::new(progress, info.size);
            let mut stream = read.into_stream();
            let streamed = async {
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk.map_err(|e| self.map(e, key))?;
                    progress.advance(chunk.len() as u64);
                    file.write(chunk).await?;
                }
                Ok(())
            }
            .await;
            if let Err(e) = streamed {
                file.discard().await;
                return Err(e);
            }
            let (size, actual) = file.finish().await?;
            progress.finish();
            if let Some(expected) = &info.sha256 {
                check_sha256(key, &actual, expected)?;
            }
            Ok((size, actual))
        }
        .await;
        let placed = match result {
            Ok(digest) => tokio::fs::rename(&temp, dest)
                .await
                .map(|()| digest)
                .map_err(|e| Error::from_file_io(e, &shown)),
            Err(e) => Err(e),
        };
        if placed.is_err() {
            let _ = tokio::fs::remove_file(&temp).await;
        }
        placed.map(|digest| (info, digest))
    }

    /// Cloud stores carry headers and the SHA-256 as attributes; file stores can't, so
    /// for them the same facts go to the journal in [`Store::record`].
    fn attributes(&self, key: &Key, opts: &PutOptions, sha256: &str) -> Attributes {
        let mut a = Attributes::new();
        if self.index.is_some() {
            return a;
        }
        a.insert(Attribute::ContentType, content_type(key, opts).into());
        a.insert(Attribute::CacheControl, cache_control(key, opts).into());
        a.insert(
            Attribute::Metadata(SHA256_METADATA.into()),
            sha256.to_owned().into(),
        );
        for (name, value) in &opts.metadata {
            a.insert(
                Attribute::Metadata(name.clone().into()),
                value.clone().into(),
            );
        }
        if let Some(class) = &self.storage_class {
            a.insert(Attribute::StorageClass, class.clone().into());
        }
        a
    }

    /// A row pairs the SHA-256 with the size and mtime of the file that holds those
    /// bytes. The file at `key` is the one just written only if its ETag (inode, mtime,
    /// size) is the write's: a concurrent write or copy may have replaced it already,
    /// and pairing this hash with that file's mtime would make every read of the key
    /// fail `INTEGRITY`. Then no row is written; the replacing write records its own.
    async fn record(
        &self,
        key: &Key,
        opts: &PutOptions,
        sha256: &str,
        size: u64,
        written: &Option<String>,
    ) -> Result<()> {
        let Some(index) = &self.index else {
            return Ok(());
        };
        let meta = match self.inner.head(&Self::path(key)).await {
            Ok(meta) if meta.e_tag == *written => meta,
            Ok(_) | Err(object_store::Error::NotFound { .. }) => return Ok(()),
            Err(e) => return Err(self.map(e, key)),
        };
        let record = ObjectRecord {
            size,
            mtime_ns: super::mtime_ns(&meta),
            etag: meta.e_tag.clone(),
            sha256: sha256.to_owned(),
            content_type: content_type(key, opts),
            cache_control: cache_control(key, opts),
            metadata: opts.metadata.clone(),
        };
        index.put_object(&self.name, key.as_str(), record).await
    }
}

fn content_type(key: &Key, opts: &PutOptions) -> String {
    opts.content_type
        .clone()
        .unwrap_or_else(|| headers::content_type_for(key))
}

fn cache_control(key: &Key, opts: &PutOptions) -> String {
    opts.cache_control
        .clone()
        .unwrap_or_else(|| headers::cache_control_for(key))
}

/// Buffers up to this size are hashed where they are (a fraction of a millisecond);
/// larger ones on a blocking thread, so that a 20 MiB buffer does not hold one of the
/// runtime's few workers, and every transfer queued behind it, for tens of milliseconds.
const HASH_INLINE_MAX: usize = 1024 * 1024;

/// SHA-256 of a buffer, off the async workers when it is large.
pub async fn hash_bytes(data: &Bytes) -> Result<String> {
    if data.len() <= HASH_INLINE_MAX {
        return Ok(sha256_hex(data));
    }
    let data = data.clone();
    tokio::task::spawn_blocking(move || sha256_hex(&data))
        .await
        .map_err(|e| Error::task_failed("hashing", e))
}

/// `(size, sha256)` of a file, read on a blocking thread.
pub async fn hash_file(file: PathBuf) -> Result<(u64, String)> {
    tokio::task::spawn_blocking(move || hash_file_blocking(&file))
        .await
        .map_err(|e| Error::task_failed("hashing", e))?
}

/// `(size, sha256)` of a file, for code already on a blocking thread.
pub fn hash_file_blocking(file: &Path) -> Result<(u64, String)> {
    let shown = file.display().to_string();
    let mut f = std::fs::File::open(file).map_err(|e| Error::from_file_io(e, &shown))?;
    let mut hasher = StreamHasher::default();
    let mut buf = vec![0u8; READ_CHUNK];
    loop {
        match f.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => hasher.update(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::from_file_io(e, &shown)),
        }
    }
    Ok((hasher.bytes(), hasher.finish()))
}

/// A hidden sibling of `dest`, unique per process and call. Only the start of a long
/// name is kept, so the temporary name stays inside the file system's 255 bytes.
/// A destination whose folder is missing is the caller's mistake, not a missing object
/// (its temporary file could not be created, which read as `NOT_FOUND`).
async fn check_folder_of(dest: &Path, shown: &str) -> Result<()> {
    let folder = dest
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let missing = match tokio::fs::metadata(folder).await {
        Ok(meta) => !meta.is_dir(),
        Err(e) => matches!(
            e.kind(),
            std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
        ),
    };
    match missing {
        true => Err(Error::config(
            "path",
            format!("{shown}: its folder does not exist"),
        )),
        false => Ok(()),
    }
}

fn temp_path(dest: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let name: String = dest
        .file_name()
        .map(|n| n.to_string_lossy().chars().take(64).collect())
        .unwrap_or_default();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    dest.with_file_name(format!(".{name}.{}-{n}.stowage-tmp", std::process::id()))
}

/// A multipart upload that is aborted when dropped unfinished. A migration's
/// `abort()` (or a closed manager) cancels its copy between two awaits, and the parts
/// already sent stayed on the server: on AWS they are billed until a lifecycle rule
/// removes them.
struct Upload(Option<WriteMultipart>);

impl Upload {
    fn parts(&mut self) -> &mut WriteMultipart {
        self.0
            .as_mut()
            .expect("an upload is written to before it ends")
    }

    async fn abort(mut self) -> object_store::Result<()> {
        self.0.take().expect("an upload ends once").abort().await
    }

    async fn finish(mut self) -> object_store::Result<object_store::PutResult> {
        self.0.take().expect("an upload ends once").finish().await
    }
}

impl Drop for Upload {
    fn drop(&mut self) {
        if let (Some(upload), Ok(runtime)) = (self.0.take(), tokio::runtime::Handle::try_current())
        {
            runtime.spawn(async move {
                let _ = upload.abort().await;
            });
        }
    }
}
