//! The S3 server's own ceiling: the plainest fast client, object_store driven from a
//! Rust loop with no Node, no file reads and no hashing, over stowage's HTTP client (the
//! fastest one we have, see src/store/http/). Prints one JSON line per workload.
//! The plain workloads store bytes only; the `-verified` ones do what the server must do
//! for any verified copy: store the object with its SHA-256 as metadata (hashed once,
//! up front), then HEAD it and compare size and metadata. The gets read those verified
//! objects back, so the server does for them what it does for either client's objects.
//! Usage: cargo run --release --example s3_ceiling -- <endpoint> <bucket> <access> <secret> <large-file>

use std::sync::Arc;
use std::time::Instant;

use futures::{StreamExt, stream};
use object_store::aws::AmazonS3Builder;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, ObjectStoreExt, PutOptions, PutPayload,
};

// The ceiling cannot link stowage's library: its N-API symbols resolve only inside
// Node. It compiles the client's source file instead.
#[path = "../src/store/http/mod.rs"]
mod http;

const SMALL_COUNT: usize = 2000;
const SMALL_SIZE: usize = 50 * 1024;
const LARGE_COUNT: usize = 20;

async fn timed<F, Fut>(name: &str, files: usize, bytes: usize, concurrency: usize, op: F)
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let start = Instant::now();
    stream::iter(0..files)
        .for_each_concurrent(concurrency, op)
        .await;
    let seconds = start.elapsed().as_secs_f64();
    println!(
        r#"{{"client":"ceiling","workload":"{name}","seconds":{seconds},"files":{files},"bytes":{bytes}}}"#
    );
}

/// One verified copy, as a migration makes it: PUT with the SHA-256 as metadata, then a
/// HEAD whose size and metadata must match.
async fn put_verified(store: &dyn ObjectStore, key: &Path, data: bytes::Bytes, sha256: &str) {
    let size = data.len() as u64;
    let mut attributes = Attributes::new();
    attributes.insert(
        Attribute::Metadata("sha256".into()),
        sha256.to_owned().into(),
    );
    let opts = PutOptions {
        attributes,
        ..Default::default()
    };
    store
        .put_opts(key, PutPayload::from_bytes(data), opts)
        .await
        .expect("put");
    let head = GetOptions {
        head: true,
        ..Default::default()
    };
    let stored = store.get_opts(key, head).await.expect("head");
    let stored_sha = stored.attributes.get(&Attribute::Metadata("sha256".into()));
    assert_eq!(stored.meta.size, size, "stored size");
    assert_eq!(
        stored_sha.map(|v| v.as_ref()),
        Some(sha256),
        "stored sha256"
    );
}

fn hex_sha256(data: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(data))
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [endpoint, bucket, access, secret, large_file] = &args[..] else {
        panic!("usage: s3_ceiling <endpoint> <bucket> <access> <secret> <large-file>");
    };
    let store: Arc<dyn ObjectStore> = Arc::new(
        AmazonS3Builder::new()
            .with_endpoint(endpoint)
            .with_bucket_name(bucket)
            .with_access_key_id(access)
            .with_secret_access_key(secret)
            .with_region("us-east-1")
            .with_allow_http(true)
            .with_http_connector(http::Connector::default())
            .build()
            .expect("store"),
    );
    let small = bytes::Bytes::from(vec![7u8; SMALL_SIZE]);
    let large = bytes::Bytes::from(std::fs::read(large_file).expect("large file"));
    let key = |kind: &str, i: usize| Path::from(format!("bench/ceiling/{kind}/{i}.bin"));
    let (small_sha, large_sha) = (hex_sha256(&small), hex_sha256(&large));

    timed(
        "small-put",
        SMALL_COUNT,
        SMALL_COUNT * SMALL_SIZE,
        16,
        |i| put(store.clone(), key("small", i), small.clone()),
    )
    .await;
    timed(
        "small-put-verified",
        SMALL_COUNT,
        SMALL_COUNT * SMALL_SIZE,
        16,
        |i| {
            let (store, data, sha) = (store.clone(), small.clone(), small_sha.as_str());
            async move { put_verified(store.as_ref(), &key("small-v", i), data, sha).await }
        },
    )
    .await;
    // The gets read the verified objects: both clients' objects carry metadata, and
    // s3s-fs reads an object's metadata file on every GET when it has one.
    timed(
        "small-get",
        SMALL_COUNT,
        SMALL_COUNT * SMALL_SIZE,
        16,
        |i| get(store.clone(), key("small-v", i)),
    )
    .await;
    timed(
        "large-put",
        LARGE_COUNT,
        LARGE_COUNT * large.len(),
        4,
        |i| put(store.clone(), key("large", i), large.clone()),
    )
    .await;
    timed(
        "large-put-verified",
        LARGE_COUNT,
        LARGE_COUNT * large.len(),
        4,
        |i| {
            let (store, data, sha) = (store.clone(), large.clone(), large_sha.as_str());
            async move { put_verified(store.as_ref(), &key("large-v", i), data, sha).await }
        },
    )
    .await;
    timed(
        "large-get",
        LARGE_COUNT,
        LARGE_COUNT * large.len(),
        4,
        |i| get(store.clone(), key("large-v", i)),
    )
    .await;
}

/// One bare PUT: the bytes only.
async fn put(store: Arc<dyn ObjectStore>, key: Path, data: bytes::Bytes) {
    store
        .put(&key, PutPayload::from_bytes(data))
        .await
        .expect("put");
}

/// One whole-object GET, body collected, as `get` does.
async fn get(store: Arc<dyn ObjectStore>, key: Path) {
    store
        .get(&key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
}
