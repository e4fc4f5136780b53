//! Store behaviour that the JavaScript conformance suite cannot see: how many requests
//! an operation makes.

use std::fmt;
use std::ops::Range;
use std::sync::atomic::AtomicUsize;

use async_trait::async_trait;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta,
    PutMultipartOptions, PutOptions as StorePutOptions, PutPayload, PutResult,
};

use super::*;
use crate::store::object::PutOptions;
use crate::store::progress::ProgressFn;
use crate::store::transfer::TransferConfig;

/// A store that counts its reads (GETs and HEADs alike) and passes everything on.
#[derive(Debug)]
struct CountingReads {
    inner: Arc<dyn ObjectStore>,
    reads: AtomicUsize,
}

impl fmt::Display for CountingReads {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CountingReads({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for CountingReads {
    async fn put_opts(
        &self,
        location: &StorePath,
        payload: PutPayload,
        opts: StorePutOptions,
    ) -> object_store::Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &StorePath,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(
        &self,
        location: &StorePath,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<StorePath>>,
    ) -> BoxStream<'static, object_store::Result<StorePath>> {
        self.inner.delete_stream(locations)
    }

    fn list(
        &self,
        prefix: Option<&StorePath>,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(
        &self,
        prefix: Option<&StorePath>,
    ) -> object_store::Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(
        &self,
        from: &StorePath,
        to: &StorePath,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}

/// A memory store holding `key` = 0, 1, … 99, and its read counter.
async fn store_with_object(key: &Key) -> (Store, Arc<CountingReads>) {
    let mut store = Store::open("memory://", "cloud", &StoreOptions::default()).unwrap();
    let counting = Arc::new(CountingReads {
        inner: store.inner.clone(),
        reads: AtomicUsize::new(0),
    });
    store.inner = counting.clone();
    let data = Bytes::from((0..100u8).collect::<Vec<_>>());
    let opts = PutOptions::default();
    store
        .put_bytes(key, data, &opts, None, &TransferConfig::default())
        .await
        .unwrap();
    (store, counting)
}

/// Reads made by `read`, and what it returned.
async fn reads<T>(counting: &CountingReads, read: impl Future<Output = T>) -> (usize, T) {
    let before = counting.reads.load(Ordering::SeqCst);
    let value = read.await;
    (counting.reads.load(Ordering::SeqCst) - before, value)
}

#[tokio::test]
async fn a_range_inside_the_object_is_one_request() {
    let key = Key::parse("range/object.bin").unwrap();
    let (store, counting) = store_with_object(&key).await;
    let cases: [(Range<u64>, Range<u8>); 3] =
        [(10..20, 10..20), (90..500, 90..100), (0..100, 0..100)];
    for (range, expected) in cases {
        let expected: Vec<u8> = expected.collect();
        let (n, got) = reads(&counting, store.get_range(&key, range.start, range.end)).await;
        assert_eq!(
            (n, got.unwrap().to_vec()),
            (1, expected.clone()),
            "{range:?}"
        );
        let (n, got) = reads(&counting, collected_range(&store, &key, range.clone())).await;
        assert_eq!((n, got), (1, expected), "stream {range:?}");
    }
}

/// The bytes of a ranged stream.
async fn collected_range(store: &Store, key: &Key, range: Range<u64>) -> Vec<u8> {
    let (_, stream) = store.stream(key, Some(range)).await.unwrap();
    let chunks: Vec<Bytes> = stream.try_collect().await.unwrap();
    chunks.concat()
}

#[tokio::test]
async fn a_range_with_no_byte_in_the_object_is_told_apart_by_a_head() {
    let key = Key::parse("range/object.bin").unwrap();
    let (store, counting) = store_with_object(&key).await;
    // Past the end: the refused GET, then the HEAD. Empty: the HEAD alone.
    for (range, requests) in [(100..200, 2), (40..40, 1)] {
        let (n, got) = reads(&counting, store.get_range(&key, range.start, range.end)).await;
        assert_eq!((n, got.unwrap().len()), (requests, 0), "{range:?}");
        assert!(collected_range(&store, &key, range).await.is_empty());
    }
    let past = store.get_range(&key, 101, 200).await.unwrap_err();
    assert_eq!(past.code(), "INVALID_CONFIG", "{past}");
    assert!(collected_range(&store, &key, 101..200).await.is_empty());
    let missing = Key::parse("range/missing.bin").unwrap();
    let (n, err) = reads(&counting, store.get_range(&missing, 0, 10)).await;
    assert_eq!((n, err.unwrap_err().code()), (1, "NOT_FOUND"));
}

#[test]
fn store_urls_and_paths_are_told_apart() {
    let path = |s: &str| parse_store_url(s, "cloud").map(|u| u.scheme().to_owned());
    assert_eq!(path("uploads").unwrap(), "file");
    assert_eq!(path("/srv/uploads").unwrap(), "file");
    assert_eq!(path("s3://bucket").unwrap(), "s3");
    // A mistyped URL, a NUL byte written out or escaped: settings to fix, named.
    for bad in [
        "s3:bucket",
        "AZ:/container",
        "memory:",
        "/srv/a\0b",
        "file:///srv/a%00b",
    ] {
        let err = path(bad).unwrap_err();
        assert_eq!(err.code(), "INVALID_CONFIG", "{bad}");
        assert!(err.to_string().contains("cloud"), "{err}");
    }
    let err = path("s3:key:secret@bucket").unwrap_err().to_string();
    assert!(!err.contains("secret"), "{err}");
}

#[tokio::test]
async fn a_download_that_cannot_be_placed_leaves_no_temporary_file() {
    let key = Key::parse("placed/object.bin").unwrap();
    let (store, _) = store_with_object(&key).await;
    let dir = tempfile::tempdir().unwrap();
    let dest = dir.path().join("out.bin");
    // A directory appears at the destination once every byte is in: the rename fails.
    let blocker = dest.clone();
    let progress: ProgressFn = Arc::new(move |done, total| {
        if done == total {
            let _ = std::fs::create_dir(&blocker);
        }
    });
    let err = store
        .get_to_file(&key, &dest, Some(progress))
        .await
        .unwrap_err();
    assert_eq!(err.code(), "UNAVAILABLE", "{err}");
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left, ["out.bin"]);
    // Already a directory: refused before anything is read or written.
    let err = store.get_to_file(&key, &dest, None).await.unwrap_err();
    assert_eq!(err.code(), "INVALID_CONFIG", "{err}");
}

#[tokio::test]
async fn listed_files_carry_the_etag_object_store_gives_them() {
    let dir = tempfile::tempdir().unwrap();
    let store = object_store::local::LocalFileSystem::new_with_prefix(dir.path()).unwrap();
    let path = object_store::path::Path::from("a.bin");
    store
        .put(&path, PutPayload::from_static(b"bytes"))
        .await
        .unwrap();
    let meta = std::fs::metadata(dir.path().join("a.bin")).unwrap();
    assert_eq!(
        Some(file_etag(&meta)),
        store.head(&path).await.unwrap().e_tag
    );
}

#[test]
fn only_temporary_files_of_copies_untouched_for_days_are_swept() {
    let dir = tempfile::tempdir().unwrap();
    let three_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3 * 86_400);
    let file = |name: &str, old: bool| {
        let f = std::fs::File::create(dir.path().join(name)).unwrap();
        if old {
            f.set_modified(three_days_ago).unwrap();
        }
    };
    file("stowage-copy-1-abc", true);
    file(".stowage-copy-1-abc.1-0.stowage-tmp", true);
    file("stowage-copy-2-def", false);
    file("someone-elses-file", true);
    sweep_abandoned(dir.path());
    let mut left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    left.sort();
    assert_eq!(left, ["someone-elses-file", "stowage-copy-2-def"]);
}
