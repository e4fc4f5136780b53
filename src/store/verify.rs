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

/// Passes a whole object's chunks through as they arrive, hashing them, but holds the
/// last one back until the hash is checked: when it differs the stream ends with an
/// `INTEGRITY` error in its place. A response it is piped into has then not sent all
/// its bytes, so a client counting on `Content-Length` sees it cut short, never a
/// damaged copy that looks whole.
pub(super) fn check_while_streaming(
    chunks: BoxStream<'static, Result<Bytes>>,
    key: Key,
    expected: String,
) -> BoxStream<'static, Result<Bytes>> {
    let start = Checked {
        chunks,
        hasher: StreamHasher::default(),
        key,
        expected,
        held: None,
    };
    stream::unfold(Some(start), |state| async move {
        let mut s = state?;
        loop {
            match s.chunks.next().await {
                Some(Ok(chunk)) => {
                    s.hasher.update(&chunk);
                    if let Some(ready) = s.held.replace(chunk) {
                        return Some((Ok(ready), Some(s)));
                    }
                }
                Some(Err(e)) => return Some((Err(e), None)),
                None => {
                    return match check_sha256(&s.key, &s.hasher.finish(), &s.expected) {
                        Ok(()) => s.held.map(|last| (Ok(last), None)),
                        Err(e) => Some((Err(e), None)),
                    };
                }
            }
        }
    })
    .boxed()
}

struct Checked {
    chunks: BoxStream<'static, Result<Bytes>>,
    hasher: StreamHasher,
    key: Key,
    expected: String,
    /// The newest chunk, handed on when the next one comes or the hash matches.
    held: Option<Bytes>,
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
        assert_eq!(out.len(), 2, "the first chunk, then the error for the last");
        assert_eq!(out[0].as_ref().unwrap().as_ref(), b"hello ");
        let err = out[1].as_ref().unwrap_err();
        assert!(matches!(err, Error::Integrity(m) if m.contains(&sha256_hex(b"hello world"))));
    }

    #[tokio::test]
    async fn a_read_error_stops_the_stream() {
        let mut items = chunks(&[b"part"]);
        items.push(Err(Error::config("x", "broken")));
        items.extend(chunks(&[b"never"]));
        let out = checked(items, b"part").await;
        assert_eq!(out.len(), 1, "the unchecked chunk is not handed on");
        assert!(matches!(out[0], Err(Error::InvalidConfig { .. })));
    }
}
