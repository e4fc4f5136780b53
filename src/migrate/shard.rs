//! `shard: { index, count }`: which keys belong to which of several cooperating
//! migrations, by the key's stable hash.

use crate::error::{Error, Result};
use crate::key::stable_hash;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl Default for Shard {
    fn default() -> Self {
        Shard { index: 0, count: 1 }
    }
}

impl Shard {
    pub fn new(index: u32, count: u32) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::config(
                "shard",
                format!("index {index} must be below count {count} (and count at least 1)"),
            ));
        }
        Ok(Shard { index, count })
    }

    pub fn owns(&self, key: &str) -> bool {
        self.count == 1 || stable_hash(key) % u64::from(self.count) == u64::from(self.index)
    }

    /// How a migration's journal scope names its keys. Every shard of a split names
    /// them alike, so shards that share a journal and run together share one
    /// migration id, and `rollback(id)` restores what any of them removed. A whole
    /// migration keeps the name earlier versions gave it, so it resumes as before.
    pub fn scope(&self) -> String {
        match self.count {
            1 => "0/1".into(),
            count => format!("shards/{count}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_has_exactly_one_shard_and_shards_are_balanced() {
        let shards: Vec<Shard> = (0..3).map(|i| Shard::new(i, 3).unwrap()).collect();
        let mut counts = [0; 3];
        for n in 0..3000 {
            let key = format!("uploads/{n}.jpg");
            let owners: Vec<usize> = (0..3).filter(|&i| shards[i].owns(&key)).collect();
            assert_eq!(owners.len(), 1, "{key}");
            counts[owners[0]] += 1;
        }
        assert!(
            counts.iter().all(|&c| (900..1100).contains(&c)),
            "{counts:?}"
        );
        assert_eq!(Shard::new(3, 3).unwrap_err().code(), "INVALID_CONFIG");
    }
}
