//! `shard: { index, count }`: which keys belong to which of several cooperating
//! migrations. FNV-1a of the key is stable across processes, machines and versions,
//! unlike std's randomly seeded hasher.

use crate::error::{Error, Result};

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
        self.count == 1 || fnv1a(key.as_bytes()) % u64::from(self.count) == u64::from(self.index)
    }
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
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
        // Stable: the published hash of "a".
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(Shard::new(3, 3).unwrap_err().code(), "INVALID_CONFIG");
    }
}
