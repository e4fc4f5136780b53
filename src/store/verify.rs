//! Reads checked against the SHA-256 recorded when the object was written: bytes
//! damaged at rest or in flight are refused with `INTEGRITY` instead of handed out.

use bytes::Bytes;
use futures::stream::{self, BoxStream, StreamExt};

use super::hash::StreamHasher;
use crate::error::{Error, Result};
use crate::key::Key;

/// Refuses downloaded bytes whose SHA-256 is not the one the store recorded.
pub(super) fn check_sha256(key: &Key, actual: &str, expected: &str) -> Result<()> {
    if actual == expected {
        return Ok(());
    }
    Err(Error::Integrity(format!(
        "{key}: downloaded bytes have SHA-256 {actual}, the store recorded {expected}"
    )))
}

/// Passes a whole object's chunks through as they arrive, hashing them, and ends with
/// an `INTEGRITY` error instead of a clean end when the hash differs: a reader that
/// pipes the stream onward sees the failure rather than a damaged copy that looks whole.
pub(super) fn check_while_streaming(
    chunks: BoxStream<'static, Result<Bytes>>,
    key: Key,
    expected: String,
) -> BoxStream<'static, Result<Bytes>> {
    let start = Some((chunks, StreamHasher::default(), key, expected));
    stream::unfold(start, |state| async move {
        let (mut chunks, mut hasher, key, expected) = state?;
        match chunks.next().await {
            Some(Ok(chunk)) => {
                hasher.update(&chunk);
                Some((Ok(chunk), Some((chunks, hasher, key, expected))))
            }
            Some(Err(e)) => Some((Err(e), None)),
            None => check_sha256(&key, &hasher.finish(), &expected)
                .err()
                .map(|e| (Err(e), None)),
        }
    })
    .boxed()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::hash::sha256_hex;

    /// Streams `items` through the check against the SHA-256 of `recorded`.
    async fn checked(items: Vec<Result<Bytes>>, recorded: &[u8]) -> Vec<Result<Bytes>> {
        let key = Key::parse("a/b.bin").unwrap();
        check_while_streaming(stream::iter(items).boxed(), key, sha256_hex(recorded))
            .collect()
            .await
    }

    fn chunks(parts: &[&'static [u8]]) -> Vec<Result<Bytes>> {
        parts.iter().map(|p| Ok(Bytes::from_static(p))).collect()
    }

    #[tokio::test]
    async fn matching_bytes_end_cleanly() {
        let out = checked(chunks(&[b"hello ", b"world"]), b"hello world").await;
        let bytes: Vec<u8> = out.into_iter().flat_map(|c| c.unwrap().to_vec()).collect();
        assert_eq!(bytes, b"hello world");
    }

    #[tokio::test]
    async fn damaged_bytes_end_with_integrity() {
        let out = checked(chunks(&[b"hello ", b"w0rld"]), b"hello world").await;
        assert_eq!(out.len(), 3, "both chunks, then the error");
        assert!(out[..2].iter().all(|c| c.is_ok()));
        let err = out[2].as_ref().unwrap_err();
        assert!(matches!(err, Error::Integrity(m) if m.contains(&sha256_hex(b"hello world"))));
    }

    #[tokio::test]
    async fn a_read_error_stops_the_stream() {
        let mut items = chunks(&[b"part"]);
        items.push(Err(Error::config("x", "broken")));
        items.extend(chunks(&[b"never"]));
        let out = checked(items, b"part").await;
        assert_eq!(out.len(), 2);
        assert!(matches!(out[1], Err(Error::InvalidConfig { .. })));
    }
}
