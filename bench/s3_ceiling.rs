//! The S3 server's own ceiling: the plainest fast client, object_store driven from a
//! Rust loop with no Node, no file reads and no hashing, over stowage's HTTP client (the
//! fastest one we have, see src/store/http/). Prints one JSON line per workload.
//! The plain workloads store bytes only; the `-verified` ones do what the server must do
//! for any verified copy: store the object with its SHA-256 as metadata (hashed once,
//! up front), then HEAD it and compare size and metadata. The gets read those verified
//! objects back, so the server does for them what it does for either client's objects.
//! Usage: cargo run --release --example s3_ceiling -- <endpoint> <bucket> <access> <secret> <large-file> <server-pid>

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
const SMALL_WARMUP: usize = 256;

async fn timed<F, Fut>(
    server: Pid,
    name: &str,
    files: usize,
    bytes: usize,
    concurrency: usize,
    op: F,
) where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let (start, cpu, server_cpu) = (Instant::now(), cpu_seconds(), server.cpu_seconds());
    stream::iter(0..files)
        .for_each_concurrent(concurrency, op)
        .await;
    let seconds = start.elapsed().as_secs_f64();
    let cpu_seconds = cpu_seconds() - cpu;
    let server_cpu_seconds = server.cpu_seconds() - server_cpu;
    println!(
        r#"{{"client":"ceiling","workload":"{name}","seconds":{seconds},"files":{files},"bytes":{bytes},"cpuSeconds":{cpu_seconds},"serverCpuSeconds":{server_cpu_seconds}}}"#
    );
}

/// The server's process.
#[derive(Clone, Copy)]
struct Pid(u32);

impl Pid {
    /// User plus system CPU time of the process so far, from /proc, where the kernel
    /// counts it in ticks of 1/100 s (USER_HZ on Linux).
    fn cpu_seconds(self) -> f64 {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0)).expect("server stat");
        let (_, fields) = stat.rsplit_once(") ").expect("stat fields");
        let ticks: u64 = fields
            .split(' ')
            .skip(11)
            .take(2)
            .map(|t| t.parse::<u64>().expect("ticks"))
            .sum();
        ticks as f64 / 100.0
    }
}

/// User plus system CPU time of this process, all threads.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage only writes the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// One verified copy, as a migration makes it: PUT with the SHA-256 as metadata, then a
/// HEAD whose size and metadata must match.
async fn put_verified(store: &Arc<dyn ObjectStore>, key: &Path, data: bytes::Bytes, sha256: &str) {
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
    let [
        endpoint,
        bucket,
        access,
        secret,
        large_file,
        server,
        only @ ..,
    ] = &args[..]
    else {
        panic!(
            "usage: s3_ceiling <endpoint> <bucket> <access> <secret> <large-file> <server-pid> [workload…]"
        );
    };
    // With workloads named, only those run, so that each can be measured next to the
    // clients' runs of the same workload; the gets read what an earlier full run stored.
    let chosen = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let server = Pid(server.parse().expect("server pid"));
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
    let (small_sha, large_sha) = (hex_sha256(&small), hex_sha256(&large));
    let small = Payload {
        data: small,
        sha256: small_sha,
        count: SMALL_COUNT,
        concurrency: 16,
    };
    let large = Payload {
        data: large,
        sha256: large_sha,
        count: LARGE_COUNT,
        concurrency: 4,
    };
    // In this order, so that a full run's gets find what its verified puts stored: both
    // clients' objects carry metadata, and s3s-fs reads an object's metadata file on
    // every GET when it has one.
    let workloads = [
        ("small-put", &small, Op::Put("small")),
        ("small-put-verified", &small, Op::PutVerified("small-v")),
        ("small-get", &small, Op::Get("small-v")),
        ("large-put", &large, Op::Put("large")),
        ("large-put-verified", &large, Op::PutVerified("large-v")),
        ("large-get", &large, Op::Get("large-v")),
    ];
    for (name, payload, op) in workloads.into_iter().filter(|(name, ..)| chosen(name)) {
        // Untimed, as the clients' small workloads start warm (bench/transfer-worker.js);
        // warm-up puts write keys of their own.
        let warm_up = match op {
            Op::Put(_) if payload.count == SMALL_COUNT => Some(Op::Put("warmup")),
            Op::Get(_) if payload.count == SMALL_COUNT => Some(op),
            _ => None,
        };
        if let Some(warm_up) = warm_up {
            stream::iter(0..SMALL_WARMUP)
                .for_each_concurrent(payload.concurrency, |i| warm_up.run(&store, payload, i))
                .await;
        }
        timed(
            server,
            name,
            payload.count,
            payload.count * payload.data.len(),
            payload.concurrency,
            |i| op.run(&store, payload, i),
        )
        .await;
    }
}

/// What a workload stores or reads, and how many at once.
struct Payload {
    data: bytes::Bytes,
    sha256: String,
    count: usize,
    concurrency: usize,
}

/// A workload's operation on object `i` of a kind (a key folder).
#[derive(Clone, Copy)]
enum Op {
    Put(&'static str),
    PutVerified(&'static str),
    Get(&'static str),
}

impl Op {
    async fn run(self, store: &Arc<dyn ObjectStore>, payload: &Payload, i: usize) {
        let key = |kind: &str| Path::from(format!("bench/ceiling/{kind}/{i}.bin"));
        match self {
            Op::Put(kind) => put(store, &key(kind), payload.data.clone()).await,
            Op::PutVerified(kind) => {
                put_verified(store, &key(kind), payload.data.clone(), &payload.sha256).await
            }
            Op::Get(kind) => get(store, &key(kind)).await,
        }
    }
}

/// One bare PUT: the bytes only.
async fn put(store: &Arc<dyn ObjectStore>, key: &Path, data: bytes::Bytes) {
    store
        .put(key, PutPayload::from_bytes(data))
        .await
        .expect("put");
}

/// One whole-object GET, body collected, as `get` does.
async fn get(store: &Arc<dyn ObjectStore>, key: &Path) {
    store
        .get(key)
        .await
        .expect("get")
        .bytes()
        .await
        .expect("body");
}
