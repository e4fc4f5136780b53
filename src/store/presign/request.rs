//! What every signer is asked for, and what it hands back.

use std::ops::RangeInclusive;
use std::str::FromStr;

use crate::error::{Error, Result};
use crate::store::headers::check_printable;

/// Longest lifetime of a presigned URL: S3's own limit (7 days), applied to every store
/// so a URL behaves the same whichever side of a dual store signed it.
pub const MAX_EXPIRES_IN: u64 = 604_800;

/// The lifetimes a presigned URL may have, in seconds.
pub const EXPIRES_IN: RangeInclusive<u64> = 1..=MAX_EXPIRES_IN;

/// The HTTP method a presigned URL is good for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    Get,
    Put,
}

impl Method {
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Put => "PUT",
        }
    }
}

impl FromStr for Method {
    type Err = Error;

    fn from_str(s: &str) -> Result<Method> {
        match s {
            "GET" => Ok(Method::Get),
            "PUT" => Ok(Method::Put),
            _ => Err(Error::config("method", format!("{s:?} is not GET or PUT"))),
        }
    }
}

/// One URL to sign.
///
/// `content_type` and `content_disposition` are the headers the object is served with:
/// for `GET` they override the stored ones in the response (S3 `response-content-*`,
/// Azure `rsct`/`rscd`); for `PUT` they are headers the uploader must send, and S3 signs
/// them so it cannot send others.
#[derive(Debug, Clone, Copy)]
pub struct PresignRequest<'a> {
    pub method: Method,
    /// An already validated key.
    pub key: &'a str,
    /// Seconds the URL stays valid, 1..=[`MAX_EXPIRES_IN`].
    pub expires_in: u64,
    /// Unix seconds; injected so tests are deterministic.
    pub now: u64,
    pub content_type: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
}

impl PresignRequest<'_> {
    /// Checks what the caller chose; returns when the URL stops working (Unix seconds).
    pub fn expires_at(&self) -> Result<u64> {
        if !EXPIRES_IN.contains(&self.expires_in) {
            return Err(Error::config(
                "expiresIn",
                format!("{} s is outside 1..={MAX_EXPIRES_IN} s", self.expires_in),
            ));
        }
        check_sent("contentType", self.content_type)?;
        check_sent("responseContentDisposition", self.content_disposition)?;
        self.now
            .checked_add(self.expires_in)
            .ok_or_else(|| Error::config("expiresIn", "the expiry is past the end of time"))
    }
}

/// These values become HTTP headers, and the signers join signed fields with newlines,
/// so only printable ASCII is accepted (RFC 5987 `filename*=` covers non-ASCII names).
fn check_sent(field: &str, value: Option<&str>) -> Result<()> {
    match value {
        Some(v) if v.trim().is_empty() => Err(Error::config(field, "is empty")),
        Some(v) => check_printable(field, v),
        None => Ok(()),
    }
}

/// A signed URL and how to use it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUrl {
    pub url: String,
    pub method: Method,
    /// Headers the request must carry or the store refuses it (lower-case names).
    pub headers: Vec<(&'static str, String)>,
    /// Unix seconds after which the store refuses the URL.
    pub expires_at: u64,
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A GET request for `key` issued at `now`, valid one hour.
    pub(crate) fn get(key: &str, now: u64) -> PresignRequest<'_> {
        PresignRequest {
            method: Method::Get,
            key,
            expires_in: 3600,
            now,
            content_type: None,
            content_disposition: None,
        }
    }

    fn field_of(err: Error) -> String {
        match err {
            Error::InvalidConfig { field, .. } => field,
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }

    #[test]
    fn methods_parse_from_their_http_names() {
        assert_eq!("GET".parse::<Method>().unwrap(), Method::Get);
        assert_eq!("PUT".parse::<Method>().unwrap(), Method::Put);
        assert_eq!(field_of("DELETE".parse::<Method>().unwrap_err()), "method");
        assert_eq!(Method::Put.as_str(), "PUT");
    }

    #[test]
    fn expires_in_must_be_one_second_to_seven_days() {
        for expires_in in [1, MAX_EXPIRES_IN] {
            let req = PresignRequest {
                expires_in,
                ..get("k", 100)
            };
            assert_eq!(req.expires_at().unwrap(), 100 + expires_in);
        }
        for expires_in in [0, MAX_EXPIRES_IN + 1] {
            let req = PresignRequest {
                expires_in,
                ..get("k", 100)
            };
            assert_eq!(field_of(req.expires_at().unwrap_err()), "expiresIn");
        }
        let req = get("k", u64::MAX);
        assert_eq!(field_of(req.expires_at().unwrap_err()), "expiresIn");
    }

    #[test]
    fn header_values_must_be_printable_ascii() {
        let bad_type = PresignRequest {
            content_type: Some("text/plain\nx-amz-acl: public-read"),
            ..get("k", 0)
        };
        assert_eq!(field_of(bad_type.expires_at().unwrap_err()), "contentType");
        let bad_disposition = PresignRequest {
            content_disposition: Some("attachment; filename=\"é.txt\""),
            ..get("k", 0)
        };
        assert_eq!(
            field_of(bad_disposition.expires_at().unwrap_err()),
            "responseContentDisposition"
        );
        let empty = PresignRequest {
            content_type: Some(" "),
            ..get("k", 0)
        };
        assert_eq!(field_of(empty.expires_at().unwrap_err()), "contentType");
    }
}
