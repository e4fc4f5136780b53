//! Object keys: validated once, before any I/O, with the same rules for every store.

use crate::error::{Error, Result};

/// Longest key accepted, in UTF-8 bytes (S3's own limit).
pub const MAX_KEY_BYTES: usize = 1024;
/// Longest segment accepted, in UTF-8 bytes: the most a file name may have, so every
/// file a local folder can hold is a key, and no key fails on the local side only.
pub const MAX_SEGMENT_BYTES: usize = 255;
/// Longest segment a local folder can be written under: a local write stages its file
/// as `name#n` first (object_store), which needs two bytes more.
pub const MAX_LOCAL_WRITE_SEGMENT_BYTES: usize = MAX_SEGMENT_BYTES - 2;

/// The folder at a local root that holds stowage's journal and staged files; no key
/// may name anything in it, on any store, so that no write reaches the journal and
/// every store lists the same keys.
pub const STATE_DIR: &str = ".stowage";

/// A key that passed [`Key::parse`]: a relative `/`-separated path that cannot name
/// anything outside the store's root.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

impl Key {
    pub fn parse(key: &str) -> Result<Key> {
        Key::check(key)?;
        Ok(Key(key.to_owned()))
    }

    /// The rules of [`Key::parse`] without keeping the key.
    pub fn check(key: &str) -> Result<()> {
        let reject = |reason: &'static str| {
            Err(Error::InvalidKey {
                key: printable(key),
                reason: reason.into(),
            })
        };
        if key.is_empty() {
            return reject("key is empty");
        }
        if key.len() > MAX_KEY_BYTES {
            return reject("key is longer than 1024 bytes");
        }
        if key.starts_with('/') {
            return reject("key is an absolute path");
        }
        if key.contains('\\') {
            return reject("key contains a backslash");
        }
        if key.chars().any(char::is_control) {
            return reject("key contains NUL or a control character");
        }
        if is_drive_prefix(key) {
            return reject("key is an absolute path");
        }
        // In any case: on a case-insensitive file system (macOS, Windows) `.STOWAGE`
        // is the same folder.
        if key
            .split('/')
            .next()
            .is_some_and(|first| first.eq_ignore_ascii_case(STATE_DIR))
        {
            return reject("key is inside '.stowage', the folder of stowage's own files");
        }
        for segment in key.split('/') {
            match segment {
                "" => return reject("key has an empty segment"),
                "." | ".." => return reject("key has a '.' or '..' segment"),
                s if s.len() > MAX_SEGMENT_BYTES => {
                    return reject("key has a segment longer than 255 bytes");
                }
                _ => {}
            }
        }
        if is_staging_name(key) {
            return reject("key ends in '#' and digits, a name local stores use for partial files");
        }
        Ok(())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether a local folder can be written under this key (see
    /// [`MAX_LOCAL_WRITE_SEGMENT_BYTES`]); every key can be read from one.
    pub fn check_local_write(&self) -> Result<()> {
        if self
            .0
            .split('/')
            .all(|s| s.len() <= MAX_LOCAL_WRITE_SEGMENT_BYTES)
        {
            return Ok(());
        }
        Err(Error::InvalidKey {
            key: printable(&self.0),
            reason: "key has a segment longer than 253 bytes, which a local folder cannot be written under"
                .into(),
        })
    }

    /// The key's extension, lower-cased, for content-type and cache-control defaults.
    pub fn extension(&self) -> Option<String> {
        let name = self.0.rsplit('/').next()?;
        let (stem, ext) = name.rsplit_once('.')?;
        (!stem.is_empty()).then(|| ext.to_ascii_lowercase())
    }
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// FNV-1a of `key`: the same in every process, machine and version, unlike std's
/// randomly seeded hasher, so processes that split or lock keys by it agree.
pub fn stable_hash(key: &str) -> u64 {
    key.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// `C:` or `C:/…` would be absolute on Windows.
fn is_drive_prefix(key: &str) -> bool {
    let b = key.as_bytes();
    b.len() >= 2 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b.len() == 2 || b[2] == b'/')
}

/// `name#123` is how file-system stores name uploads in progress, so no store may
/// hold such a key, or a file store could not hold everything a cloud store does.
fn is_staging_name(key: &str) -> bool {
    let name = key.rsplit('/').next().unwrap_or(key);
    name.rsplit_once('#')
        .is_some_and(|(_, suffix)| !suffix.is_empty() && suffix.bytes().all(|b| b.is_ascii_digit()))
}

/// Error messages show a rejected key escaped, so control characters can't forge log lines.
fn printable(key: &str) -> String {
    let mut shown: String = key.chars().take(120).flat_map(char::escape_debug).collect();
    if key.chars().count() > 120 {
        shown.push('…');
    }
    shown
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_hash_is_the_published_fnv1a() {
        assert_eq!(stable_hash("a"), 0xaf63_dc4c_8601_ec8c);
    }

    fn reason(key: &str) -> String {
        match Key::parse(key) {
            Err(Error::InvalidKey { reason, .. }) => reason.into_owned(),
            other => panic!("{key:?} was accepted: {other:?}"),
        }
    }

    #[test]
    fn accepts_ordinary_and_unicode_keys() {
        for key in [
            "a",
            "a/b/c.dcm",
            "ünï/cödé ✓.png",
            "x..y/.hidden",
            "a b/c#d?e%f",
        ] {
            assert_eq!(Key::parse(key).unwrap().as_str(), key);
        }
        // Four full segments and their slashes: 1023 bytes.
        let longest = Key::parse(&vec!["k".repeat(MAX_SEGMENT_BYTES); 4].join("/")).unwrap();
        assert_eq!(
            longest.check_local_write().unwrap_err().code(),
            "INVALID_KEY"
        );
        let local = vec!["k".repeat(MAX_LOCAL_WRITE_SEGMENT_BYTES); 4].join("/");
        Key::parse(&local).unwrap().check_local_write().unwrap();
    }

    #[test]
    fn rejects_each_rule() {
        assert_eq!(reason(""), "key is empty");
        assert_eq!(
            reason(&"k".repeat(MAX_KEY_BYTES + 1)),
            "key is longer than 1024 bytes"
        );
        assert_eq!(
            reason(&format!("a/{}.txt", "k".repeat(MAX_SEGMENT_BYTES - 3))),
            "key has a segment longer than 255 bytes"
        );
        assert_eq!(reason("/etc/passwd"), "key is an absolute path");
        assert_eq!(reason("C:/x"), "key is an absolute path");
        assert_eq!(reason("a\\b"), "key contains a backslash");
        assert_eq!(reason("a\0b"), "key contains NUL or a control character");
        assert_eq!(reason("a\nb"), "key contains NUL or a control character");
        assert_eq!(reason("a//b"), "key has an empty segment");
        assert_eq!(reason("a/"), "key has an empty segment");
        assert_eq!(reason("a/./b"), "key has a '.' or '..' segment");
        assert_eq!(reason("../b"), "key has a '.' or '..' segment");
        assert_eq!(reason(".."), "key has a '.' or '..' segment");
        assert!(reason("a/b#12").contains("'#' and digits"));
        assert!(Key::parse("a/b#x1").is_ok());
        for state in [".stowage", ".stowage/journal.db", ".STOWAGE/journal.db"] {
            assert!(reason(state).contains("'.stowage'"), "{state}");
        }
        assert!(Key::parse("a/.stowage/x").is_ok());
        assert!(Key::parse(".stowage-notes").is_ok());
    }

    #[test]
    fn messages_escape_control_characters() {
        let err = Key::parse("a\nforged").unwrap_err().to_string();
        assert!(!err.contains('\n'), "{err}");
        // Escaped once: the key was shown escaped twice (`a\\\\b`).
        let err = Key::parse("a\\b").unwrap_err().to_string();
        assert_eq!(err, r#"invalid key "a\\b": key contains a backslash"#);
    }

    #[test]
    fn extension_is_lowercased_and_ignores_dotfiles() {
        assert_eq!(
            Key::parse("a/B.DCM").unwrap().extension().as_deref(),
            Some("dcm")
        );
        assert_eq!(Key::parse("a/.env").unwrap().extension(), None);
        assert_eq!(Key::parse("a.b/c").unwrap().extension(), None);
    }
}
