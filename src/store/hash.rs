//! SHA-256 of object bytes, computed while they stream. Network-free.

use sha2::{Digest, Sha256};

/// Lower-case hex SHA-256 of a whole buffer.
pub fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// Incremental SHA-256 that also counts bytes, for streams of chunks.
#[derive(Default, Clone)]
pub struct StreamHasher {
    hasher: Sha256,
    bytes: u64,
}

impl StreamHasher {
    pub fn update(&mut self, chunk: &[u8]) {
        self.hasher.update(chunk);
        self.bytes += chunk.len() as u64;
    }

    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    pub fn finish(self) -> String {
        hex::encode(self.hasher.finalize())
    }
}

/// Whether a string is a lower-case hex SHA-256, as stored in object metadata.
pub fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(
            sha256_hex(b""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn streaming_equals_one_shot() {
        let data: Vec<u8> = (0..100_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut h = StreamHasher::default();
        for chunk in data.chunks(4093) {
            h.update(chunk);
        }
        assert_eq!(h.bytes(), data.len() as u64);
        let digest = h.finish();
        assert_eq!(digest, sha256_hex(&data));
        assert!(is_sha256_hex(&digest));
        assert!(!is_sha256_hex("ABC"));
    }
}
