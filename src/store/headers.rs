//! Object headers: content type and cache control from the key's extension, and the
//! rules user metadata must follow so that it round-trips on every store.

use std::collections::BTreeMap;

use crate::error::{Error, Result};
use crate::key::Key;

/// Metadata name under which stowage keeps an object's SHA-256 in the cloud.
pub const SHA256_METADATA: &str = "sha256";

const MAX_METADATA_BYTES: usize = 2048;

/// `Content-Type` for a key: `.dcm` is not in the shared MIME table, the rest is.
pub fn content_type_for(key: &Key) -> String {
    match key.extension().as_deref() {
        Some("dcm") => "application/dicom".into(),
        Some(ext) => mime_guess::from_ext(ext)
            .first_raw()
            .unwrap_or("application/octet-stream")
            .into(),
        None => "application/octet-stream".into(),
    }
}

/// The per-extension `Cache-Control` defaults of the API contract.
pub fn cache_control_for(key: &Key) -> String {
    let ext = key.extension();
    let content_type = content_type_for(key);
    if ext.as_deref() == Some("dcm") {
        "public, max-age=2592000, immutable".into()
    } else if content_type.starts_with("image/") {
        "public, max-age=86400".into()
    } else if ext.as_deref() == Some("json") {
        "public, max-age=300".into()
    } else {
        "no-cache".into()
    }
}

/// User metadata must survive S3 (lower-cased header names, ASCII values) and Azure
/// (names are C# identifiers), so only the intersection is accepted.
pub fn validate_metadata(metadata: &BTreeMap<String, String>) -> Result<()> {
    let mut total = 0;
    for (name, value) in metadata {
        let valid_name = name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b == b'_')
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
        if !valid_name {
            return Err(Error::config(
                format!("metadata.{name}"),
                "names must match [a-z_][a-z0-9_]* to round-trip on S3 and Azure",
            ));
        }
        if name == SHA256_METADATA {
            return Err(Error::config(
                "metadata.sha256",
                "the name is reserved by stowage",
            ));
        }
        check_stored(&format!("metadata.{name}"), value)?;
        total += name.len() + value.len();
    }
    if total > MAX_METADATA_BYTES {
        return Err(Error::config("metadata", "larger than 2 KiB"));
    }
    Ok(())
}

/// A value sent as an HTTP header must be printable ASCII: a line break would end the
/// header (object_store panics on one), and other bytes are refused or re-encoded by
/// the servers.
pub fn check_printable(field: &str, value: &str) -> Result<()> {
    match value.bytes().all(|b| (b' '..=b'~').contains(&b)) {
        true => Ok(()),
        false => Err(Error::config(field, "must be printable ASCII")),
    }
}

/// A value stored as an HTTP header comes back as written only if it is printable and
/// has no spaces at either end, which HTTP drops.
fn check_stored(field: &str, value: &str) -> Result<()> {
    check_printable(field, value)?;
    match value.trim() == value {
        true => Ok(()),
        false => Err(Error::config(
            field,
            "must not start or end with spaces: HTTP drops them",
        )),
    }
}

/// A header stored with an object that must have a value (a content type, a cache
/// policy, a storage class).
pub fn check_header_value(field: &str, value: &str) -> Result<()> {
    if value.is_empty() {
        return Err(Error::config(field, "is empty"));
    }
    check_stored(field, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(k: &str) -> Key {
        Key::parse(k).unwrap()
    }

    #[test]
    fn defaults_follow_the_contract() {
        assert_eq!(content_type_for(&key("s/a.DCM")), "application/dicom");
        assert_eq!(
            cache_control_for(&key("s/a.dcm")),
            "public, max-age=2592000, immutable"
        );
        assert_eq!(content_type_for(&key("t/a.webp")), "image/webp");
        assert_eq!(cache_control_for(&key("t/a.webp")), "public, max-age=86400");
        assert_eq!(cache_control_for(&key("a.png")), "public, max-age=86400");
        assert_eq!(content_type_for(&key("a.json")), "application/json");
        assert_eq!(cache_control_for(&key("a.json")), "public, max-age=300");
        assert_eq!(content_type_for(&key("README")), "application/octet-stream");
    }

    #[test]
    fn metadata_rules() {
        let ok: BTreeMap<_, _> = [
            ("patient_id".to_string(), "P-1 x".to_string()),
            ("empty".to_string(), String::new()),
        ]
        .into();
        validate_metadata(&ok).unwrap();
        for (name, value) in [
            ("Upper", "v"),
            ("has-dash", "v"),
            ("sha256", "v"),
            ("9x", "v"),
            ("n", "é"),
            ("n", " lead"),
            ("n", "trail "),
            ("n", "line\nbreak"),
        ] {
            let bad: BTreeMap<_, _> = [(name.to_string(), value.to_string())].into();
            let err = validate_metadata(&bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_CONFIG", "{name}");
        }
    }

    #[test]
    fn header_values_round_trip_over_http() {
        for good in ["text/csv; charset=utf-8", "private, max-age=60", "x"] {
            check_header_value("contentType", good).unwrap();
        }
        for bad in [
            "",
            " text/csv",
            "text/csv ",
            "a\r\nx-evil: 1",
            "tab\there",
            "é",
            "del\u{7f}",
        ] {
            let err = check_header_value("contentType", bad).unwrap_err();
            assert_eq!(err.code(), "INVALID_CONFIG", "{bad:?}");
            assert!(err.to_string().contains("contentType"), "{err}");
        }
    }
}
