//! Per-key ordering: a write and a repair of the same key never interleave, so a
//! repair cannot copy an older version over a newer one, and two dual writes of one
//! key reach both sides in the same order. With a state folder the order holds across
//! processes too (an app run as several workers on one local folder): each stripe is
//! also an advisory lock on a file there, so the last writer is the same on both sides.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};

use tokio::sync::{Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::key::stable_hash;

/// Striped so memory and lock files stay fixed however many keys there are; unrelated
/// keys share a stripe only by hash collision, which costs a little waiting, never
/// correctness.
#[derive(Debug)]
pub struct KeyLocks {
    stripes: Vec<Mutex<()>>,
    /// Where the stripes' lock files are, shared by every process using that folder.
    dir: Option<PathBuf>,
}

const STRIPES: usize = 256;

/// The keys' locks, held until dropped. Files first: the next process may go on
/// before this process's next waiter.
#[must_use]
pub struct KeyGuard<'a> {
    _files: Vec<File>,
    _stripes: Vec<MutexGuard<'a, ()>>,
}

impl KeyLocks {
    /// In-process locks only.
    pub fn in_process() -> KeyLocks {
        KeyLocks {
            stripes: (0..STRIPES).map(|_| Mutex::new(())).collect(),
            dir: None,
        }
    }

    /// Locks shared with every process that uses `dir`, which is created.
    pub fn shared(dir: &Path) -> Result<KeyLocks> {
        std::fs::create_dir_all(dir).map_err(|e| crate::journal::cannot_create(dir, &e))?;
        Ok(KeyLocks {
            dir: Some(dir.to_owned()),
            ..KeyLocks::in_process()
        })
    }

    pub async fn lock(&self, key: &str) -> Result<KeyGuard<'_>> {
        self.lock_all([key]).await
    }

    /// Locks several keys. Stripes are taken once each and in index order, in every
    /// process alike, so two callers locking the same keys in another order, or keys
    /// sharing a stripe, cannot deadlock.
    pub async fn lock_all<const N: usize>(&self, keys: [&str; N]) -> Result<KeyGuard<'_>> {
        let mut stripes = keys.map(stripe);
        stripes.sort_unstable();
        let mut guard = KeyGuard {
            _files: Vec::with_capacity(N),
            _stripes: Vec::with_capacity(N),
        };
        for (i, &stripe) in stripes.iter().enumerate() {
            if i > 0 && stripes[i - 1] == stripe {
                continue;
            }
            guard._stripes.push(self.stripes[stripe].lock().await);
            if let Some(dir) = &self.dir {
                guard
                    ._files
                    .push(lock_file(dir.join(format!("{stripe:03}"))).await?);
            }
        }
        Ok(guard)
    }
}

/// The same stripe for a key in every process.
fn stripe(key: &str) -> usize {
    (stable_hash(key) % STRIPES as u64) as usize
}

/// Takes `path`'s exclusive lock, waiting on a blocking thread only while another
/// process holds it; closing the file releases it, on a crash too.
async fn lock_file(path: PathBuf) -> Result<File> {
    let failed = |e: std::io::Error| Error::from_io(e, &path.display().to_string());
    // Opening a small local file does not wait on anything worth a thread hop.
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => return Ok(file),
        Err(TryLockError::WouldBlock) => {}
        Err(TryLockError::Error(e)) => return Err(failed(e)),
    }
    tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await
        .map_err(|e| Error::task_failed("lock", e))?
        .map_err(failed)
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn crossed_orders_and_one_key_twice(locks: &KeyLocks) {
        let run = |keys: [&'static str; 2]| async move {
            for _ in 0..200 {
                let held = locks.lock_all(keys).await.unwrap();
                tokio::task::yield_now().await;
                drop(held);
            }
        };
        let all = async { tokio::join!(run(["a", "b"]), run(["b", "a"]), run(["a", "a"])) };
        let limit = std::time::Duration::from_secs(10);
        assert!(tokio::time::timeout(limit, all).await.is_ok());
    }

    #[tokio::test]
    async fn crossed_orders_and_one_key_twice_do_not_deadlock() {
        crossed_orders_and_one_key_twice(&KeyLocks::in_process()).await;
        let dir = tempfile::tempdir().unwrap();
        crossed_orders_and_one_key_twice(&KeyLocks::shared(dir.path()).unwrap()).await;
    }

    #[tokio::test]
    async fn a_held_stripe_blocks_another_holder_of_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let (first, second) = (
            KeyLocks::shared(dir.path()).unwrap(),
            KeyLocks::shared(dir.path()).unwrap(),
        );
        let held = first.lock("k").await.unwrap();
        let waiting = tokio::spawn(async move { second.lock("k").await.map(drop) });
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        assert!(!waiting.is_finished());
        drop(held);
        waiting.await.unwrap().unwrap();
    }
}
