//! Replays of journal rows a crash left behind, on a local folder and a `file://`
//! cloud: the rows are written as the process wrote them before it died.

use bytes::Bytes;

use super::{Side, Storage};
use crate::config::Config;
use crate::journal::RepairOp;
use crate::key::Key;
use crate::store::object::PutOptions;

fn dual(dir: &std::path::Path) -> Storage {
    let config = Config {
        local: Some(dir.join("local").display().to_string()),
        cloud: Some(format!("file://{}", dir.join("cloud").display())),
        mode: Some("dual".into()),
        ..Config::default()
    };
    Storage::open(&config, None).unwrap()
}

/// The SHA-256 each side holds for `key`, local first.
async fn sides(storage: &Storage, key: &Key) -> [Option<String>; 2] {
    let mut held = [None, None];
    for (i, side) in [Side::Local, Side::Cloud].into_iter().enumerate() {
        let info = storage.store(side).unwrap().head(key).await.ok();
        held[i] = info.and_then(|info| info.sha256);
    }
    held
}

/// Puts `{dir}/from.bin` on both sides and journals its rename to `{dir}/to.bin`, as a
/// rename does before either side moves. Returns both keys and the bytes' SHA-256.
async fn renaming(storage: &Storage, dir: &str, data: &'static [u8]) -> (Key, Key, String) {
    let from = Key::parse(&format!("{dir}/from.bin")).unwrap();
    let to = Key::parse(&format!("{dir}/to.bin")).unwrap();
    let put = storage.put(&from, Bytes::from_static(data), PutOptions::default());
    let sha256 = put.await.unwrap().written.sha256;
    let renamed = RepairOp::Renamed {
        to: to.to_string(),
        sha256: sha256.clone(),
    };
    let journal = storage.journal().unwrap();
    journal.begin_write(from.as_str(), renamed).await.unwrap();
    (from, to, sha256)
}

#[tokio::test]
async fn a_rename_that_never_moved_keeps_its_source_on_both_sides() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dual(dir.path());
    let (from, to, sha256) = renaming(&storage, "a", b"never moved").await;

    let report = storage.repair(None).await.unwrap();
    assert_eq!((report.repaired, report.remaining), (1, 0));
    let kept = Some(sha256);
    assert_eq!(sides(&storage, &from).await, [kept.clone(), kept]);
    assert_eq!(sides(&storage, &to).await, [None, None]);
}

#[tokio::test]
async fn a_rename_that_moved_on_one_side_leaves_its_source_on_neither() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dual(dir.path());
    let (from, to, sha256) = renaming(&storage, "b", b"moved on the cloud").await;
    // The cloud side had renamed when the process died; the local side had not.
    let cloud = storage.store(Side::Cloud).unwrap();
    cloud.rename(&from, &to).await.unwrap();

    let report = storage.repair(None).await.unwrap();
    assert_eq!((report.repaired, report.remaining), (1, 0));
    assert_eq!(sides(&storage, &from).await, [None, None]);
    assert_eq!(sides(&storage, &to).await, [None, Some(sha256)]);
}

#[tokio::test]
async fn a_rename_of_a_file_from_before_stowage_journals_the_hash_of_its_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let storage = dual(dir.path());
    std::fs::create_dir_all(dir.path().join("local/c")).unwrap();
    std::fs::write(dir.path().join("local/c/from.bin"), b"legacy").unwrap();
    let (from, to) = (
        Key::parse("c/from.bin").unwrap(),
        Key::parse("c/to.bin").unwrap(),
    );

    // The cloud never had it, so the target's intent stays queued for it.
    storage.rename(&from, &to).await.unwrap();
    let journal = storage.journal().unwrap();
    let intent = journal.newest_intent(to.as_str()).await.unwrap().unwrap();
    let sha256 = crate::store::hash_bytes(&Bytes::from_static(b"legacy"))
        .await
        .unwrap();
    assert_eq!(intent.op, RepairOp::Put { sha256 });
}
