//! stowage's own signed URLs, for objects a local store serves over HTTP.
//!
//! A URL is
//!
//! ```text
//! {localBaseUrl}/{key}?X-Stowage-Method={METHOD}&X-Stowage-Expires={expires}&X-Stowage-Signature={signature}
//! ```
//!
//! - `key` is percent-encoded segment by segment: RFC 3986 unreserved characters and
//!   `/` stay, every other byte of its UTF-8 becomes `%XX` (space `%20`, `+` `%2B`).
//! - `METHOD` is `GET` or `PUT`; `expires` is Unix seconds, in decimal; the URL is
//!   refused from that second on.
//! - `signature` is the lower-case hex HMAC-SHA256, keyed with the secret, of
//!   `"{METHOD}\n{key}\n{expires}"` with the key *decoded*, so a client that
//!   re-encodes the path differently still presents the same key.
//! - A `PUT` URL signed for a content type also carries
//!   `&X-Stowage-Content-Type={type}` (percent-encoded), and the signed string gains
//!   `"\n{type}"`: as with S3's signed `Content-Type`, the upload must send that type,
//!   so a URL meant for `image/png` cannot store `text/html` that the app would then
//!   serve from its own origin.

use hmac::Mac;
use percent_encoding::percent_decode_str;

use crate::error::{Error, Result};
use crate::key::Key;

use super::encoding::{encode_component, encode_path};
use super::endpoint::path_of;
use super::mac::{HmacSha256, keyed};
use super::request::Method;

/// Shortest secret accepted: as long as the MAC, so the key is never the weak part.
pub const MIN_SECRET_BYTES: usize = 32;

const SECRET_FIELD: &str = "presign.localSecret";
const BASE_URL_FIELD: &str = "presign.localBaseUrl";
const METHOD_PARAM: &str = "X-Stowage-Method";
const EXPIRES_PARAM: &str = "X-Stowage-Expires";
const SIGNATURE_PARAM: &str = "X-Stowage-Signature";
const CONTENT_TYPE_PARAM: &str = "X-Stowage-Content-Type";

/// What a local signed URL grants: `method` on `key` until `expires_at` (Unix
/// seconds), and for an upload, the content type it must send.
#[derive(Debug, Clone, Copy)]
pub struct LocalGrant<'a> {
    pub method: Method,
    pub key: &'a str,
    pub expires_at: u64,
    pub content_type: Option<&'a str>,
}

/// A URL for `grant` (its key already validated) under `base_url` (absolute, or a path
/// such as `/files` for same-origin use).
pub fn sign_local(base_url: &str, secret: &[u8], grant: &LocalGrant) -> Result<String> {
    check_secret(secret)?;
    let base = base_url_of(base_url)?;
    let signature = hex::encode(mac(secret, grant).finalize().into_bytes());
    let content_type = grant.content_type.map_or_else(String::new, |t| {
        format!("&{CONTENT_TYPE_PARAM}={}", encode_component(t))
    });
    Ok(format!(
        "{base}/{}?{METHOD_PARAM}={}&{EXPIRES_PARAM}={}{content_type}&{SIGNATURE_PARAM}={signature}",
        encode_path(grant.key),
        grant.method.as_str(),
        grant.expires_at,
    ))
}

/// Checks a request against a URL from [`sign_local`] and returns its key.
///
/// `url` is the full URL or only its path and query (Express's `req.originalUrl`); only
/// the path under `base_url`'s path is read, so proxies may rewrite scheme and host.
/// Anything wrong is `SignatureInvalid`, a `content_type` (the request's) other than
/// the one signed included; `SignatureExpired` comes only once the signature is good,
/// so a forged URL cannot probe expiry.
pub fn verify_local(
    base_url: &str,
    url: &str,
    method: Method,
    secret: &[u8],
    now: u64,
    content_type: Option<&str>,
) -> Result<String> {
    check_secret(secret)?;
    let base_path = path_of(base_url_of(base_url)?);
    let invalid = |reason: &str| Error::SignatureInvalid(reason.to_owned());
    let encoded_key = path_of(url)
        .strip_prefix(base_path)
        .and_then(|rest| rest.strip_prefix('/'))
        .ok_or_else(|| invalid("the path is not under the local base URL"))?;
    let signed = SignedParams::parse(query_of(url)).map_err(invalid)?;
    if signed.method != method.as_str() {
        return Err(invalid("the URL was signed for another method"));
    }
    let key = percent_decode_str(encoded_key)
        .decode_utf8()
        .map_err(|_| invalid("the key is not UTF-8"))?;
    Key::parse(&key).map_err(|_| invalid("the key is not a valid relative key"))?;
    let signed_type = signed
        .content_type
        .map(|t| percent_decode_str(t).decode_utf8())
        .transpose()
        .map_err(|_| invalid("X-Stowage-Content-Type is not UTF-8"))?;
    let grant = LocalGrant {
        method,
        key: &key,
        expires_at: signed.expires_at,
        content_type: signed_type.as_deref(),
    };
    // `verify_slice` compares in constant time.
    mac(secret, &grant)
        .verify_slice(&signed.signature)
        .map_err(|_| invalid("the signature does not match"))?;
    if let Some(signed_type) = grant.content_type
        && content_type.map(str::trim) != Some(signed_type)
    {
        return Err(invalid(
            "the request's content type is not the one the URL was signed for",
        ));
    }
    if now >= signed.expires_at {
        return Err(Error::SignatureExpired(format!(
            "the URL expired at {} (Unix seconds)",
            signed.expires_at
        )));
    }
    Ok(key.into_owned())
}

fn check_secret(secret: &[u8]) -> Result<()> {
    if secret.len() < MIN_SECRET_BYTES {
        return Err(Error::config(
            SECRET_FIELD,
            format!("must be at least {MIN_SECRET_BYTES} bytes"),
        ));
    }
    Ok(())
}

/// The MAC over everything the URL grants, before finalizing.
fn mac(secret: &[u8], grant: &LocalGrant) -> HmacSha256 {
    let mut mac = keyed(secret);
    let LocalGrant {
        method,
        key,
        expires_at,
        content_type,
    } = grant;
    mac.update(format!("{}\n{key}\n{expires_at}", method.as_str()).as_bytes());
    if let Some(content_type) = content_type {
        mac.update(format!("\n{content_type}").as_bytes());
    }
    mac
}

/// `base_url` without a trailing slash, or an error if it carries a query or fragment.
fn base_url_of(base_url: &str) -> Result<&str> {
    if base_url.contains(['?', '#']) || base_url.chars().any(|c| c.is_whitespace()) {
        return Err(Error::config(
            BASE_URL_FIELD,
            "has a query, a fragment or whitespace",
        ));
    }
    Ok(base_url.trim_end_matches('/'))
}

fn query_of(url: &str) -> &str {
    let without_fragment = url.split('#').next().unwrap_or(url);
    without_fragment
        .split_once('?')
        .map_or("", |(_, query)| query)
}

/// The three signed query parameters; others are ignored, as the MAC does not cover them.
struct SignedParams<'a> {
    method: &'a str,
    expires_at: u64,
    signature: Vec<u8>,
    content_type: Option<&'a str>,
}

impl<'a> SignedParams<'a> {
    fn parse(query: &'a str) -> Result<SignedParams<'a>, &'static str> {
        let (mut method, mut expires, mut signature) = (None, None, None);
        let mut content_type = None;
        for pair in query.split('&') {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let slot = match name {
                METHOD_PARAM => &mut method,
                EXPIRES_PARAM => &mut expires,
                SIGNATURE_PARAM => &mut signature,
                CONTENT_TYPE_PARAM => &mut content_type,
                _ => continue,
            };
            // A repeated parameter could be read one way here and another by a proxy.
            if slot.replace(value).is_some() {
                return Err("a signed parameter is repeated");
            }
        }
        let (Some(method), Some(expires), Some(signature)) = (method, expires, signature) else {
            return Err("the URL lacks X-Stowage-Method, -Expires or -Signature");
        };
        // `u64::from_str` alone would also take `+123`.
        if expires.is_empty() || !expires.bytes().all(|b| b.is_ascii_digit()) {
            return Err("X-Stowage-Expires is not a number");
        }
        Ok(SignedParams {
            method,
            expires_at: expires
                .parse()
                .map_err(|_| "X-Stowage-Expires is out of range")?,
            signature: hex::decode(signature).map_err(|_| "X-Stowage-Signature is not hex")?,
            content_type,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"0123456789abcdef0123456789abcdef";
    const BASE: &str = "https://files.example.com/media/";
    const EXPIRES: u64 = 1_700_000_000;

    fn grant(method: Method, key: &str, expires_at: u64) -> LocalGrant<'_> {
        LocalGrant {
            method,
            key,
            expires_at,
            content_type: None,
        }
    }

    fn sign(key: &str) -> String {
        sign_local(BASE, SECRET, &grant(Method::Get, key, EXPIRES)).unwrap()
    }

    fn verify(url: &str) -> Result<String> {
        verify_local(BASE, url, Method::Get, SECRET, EXPIRES - 1, None)
    }

    fn is_invalid(result: Result<String>) -> bool {
        matches!(result, Err(Error::SignatureInvalid(_)))
    }

    #[test]
    fn url_layout_is_the_documented_one() {
        let expected_mac = hex::encode(super::super::mac::hmac_sha256(
            SECRET,
            format!("GET\ndir/a b.txt\n{EXPIRES}").as_bytes(),
        ));
        assert_eq!(
            sign("dir/a b.txt"),
            format!(
                "https://files.example.com/media/dir/a%20b.txt?X-Stowage-Method=GET\
                 &X-Stowage-Expires={EXPIRES}&X-Stowage-Signature={expected_mac}"
            )
        );
    }

    #[test]
    fn round_trips_awkward_keys() {
        for key in [
            "a.txt",
            "dir/a b+c#d%e?f&g=h.txt",
            "年/🙂 naïve",
            "x/~!'()*.bin",
        ] {
            let url = sign(key);
            assert!(!url.contains(' ') && !url.contains('+') && url.matches('?').count() == 1);
            assert_eq!(verify(&url).unwrap(), key);
        }
        assert!(sign("a+b c").contains("/a%2Bb%20c?"));
    }

    #[test]
    fn accepts_path_and_query_as_express_gives_it() {
        let url = sign("dir/a b.txt");
        let origin_relative = url.strip_prefix("https://files.example.com").unwrap();
        assert_eq!(verify(origin_relative).unwrap(), "dir/a b.txt");
        // A proxy may change scheme and host; a fragment or extra parameters don't count.
        let proxied = format!("http://internal:8080{origin_relative}&cache=1#top");
        assert_eq!(verify(&proxied).unwrap(), "dir/a b.txt");
        // Another spelling of the same key still verifies.
        let reencoded = url.replace("a%20b", "%61%20b");
        assert_eq!(verify(&reencoded).unwrap(), "dir/a b.txt");
    }

    #[test]
    fn base_url_may_be_a_bare_path_or_an_origin() {
        for base in ["/files", "https://h.example", "https://h.example/"] {
            let url = sign_local(base, SECRET, &grant(Method::Put, "k.txt", EXPIRES)).unwrap();
            assert_eq!(
                verify_local(base, &url, Method::Put, SECRET, 0, None).unwrap(),
                "k.txt"
            );
        }
    }

    #[test]
    fn tampering_is_invalid() {
        let url = sign("dir/a.txt");
        let signature = url.rsplit('=').next().unwrap();
        let mut flipped = signature.to_owned();
        flipped.replace_range(..1, if signature.starts_with('0') { "1" } else { "0" });
        let tampered = [
            url.replace("/dir/a.txt", "/dir/b.txt"),
            url.replace("/media/", "/other/"),
            url.replace(
                &format!("Expires={EXPIRES}"),
                &format!("Expires={}", EXPIRES + 1),
            ),
            url.replace(
                &format!("Expires={EXPIRES}"),
                &format!("Expires=+{EXPIRES}"),
            ),
            url.replace("Method=GET", "Method=PUT"),
            url.replace(signature, &flipped),
            url.replace(signature, &signature[..62]),
            url.replace(signature, &format!("{}zz", &signature[..62])),
            url.replace(signature, ""),
            url.replace("X-Stowage-Method=GET&", ""),
            url.replace("?X-Stowage-Method=GET&", "?"),
            format!("{url}&X-Stowage-Signature={signature}"),
            url.split('?').next().unwrap().to_owned(),
        ];
        for url in tampered {
            assert!(is_invalid(verify(&url)), "{url}");
        }
    }

    #[test]
    fn wrong_method_or_secret_is_invalid() {
        let url = sign("a.txt");
        assert!(is_invalid(verify_local(
            BASE,
            &url,
            Method::Put,
            SECRET,
            0,
            None
        )));
        let other_secret = b"another secret of at least 32 bytes";
        assert!(is_invalid(verify_local(
            BASE,
            &url,
            Method::Get,
            other_secret,
            0,
            None
        )));
    }

    #[test]
    fn keys_that_escape_the_root_are_invalid_even_if_signed() {
        for key in [
            "../etc/passwd",
            "a/../../b",
            "/abs",
            "a//b",
            "a\\b",
            "nul\0",
            "a/",
        ] {
            let url = sign_local(BASE, SECRET, &grant(Method::Get, key, EXPIRES)).unwrap();
            assert!(is_invalid(verify(&url)), "{key:?}");
        }
        let encoded_traversal = sign("a/b").replace("/a/b?", "/a%2F..%2F..%2Fb?");
        assert!(is_invalid(verify(&encoded_traversal)));
        let not_utf8 = sign("a").replace("/a?", "/%FF?");
        assert!(is_invalid(verify(&not_utf8)));
    }

    #[test]
    fn expiry_is_checked_at_the_second_and_only_after_the_signature() {
        let url = sign("a.txt");
        assert!(verify_local(BASE, &url, Method::Get, SECRET, EXPIRES - 1, None).is_ok());
        for now in [EXPIRES, EXPIRES + 1] {
            let result = verify_local(BASE, &url, Method::Get, SECRET, now, None);
            assert!(matches!(result, Err(Error::SignatureExpired(_))));
        }
        let forged = url.replace("/a.txt", "/b.txt");
        let result = verify_local(BASE, &forged, Method::Get, SECRET, EXPIRES + 1, None);
        assert!(matches!(result, Err(Error::SignatureInvalid(_))));
    }

    #[test]
    fn short_secret_or_bad_base_url_is_a_config_error() {
        let field = |result: Result<String>| match result {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        let short = &SECRET[..31];
        assert_eq!(
            field(sign_local(BASE, short, &grant(Method::Get, "k", 1))),
            SECRET_FIELD
        );
        assert_eq!(
            field(verify_local(BASE, "/media/k", Method::Get, short, 0, None)),
            SECRET_FIELD
        );
        assert_eq!(
            field(sign_local("/f?x=1", SECRET, &grant(Method::Get, "k", 1))),
            BASE_URL_FIELD
        );
    }

    #[test]
    fn an_upload_signed_for_a_content_type_must_send_it() {
        let grant = LocalGrant {
            content_type: Some("image/png; q=1"),
            ..grant(Method::Put, "u/a.png", EXPIRES)
        };
        let url = sign_local(BASE, SECRET, &grant).unwrap();
        assert!(
            url.contains("&X-Stowage-Content-Type=image%2Fpng%3B%20q%3D1&"),
            "{url}"
        );
        let check = |url: &str, sent| verify_local(BASE, url, Method::Put, SECRET, 0, sent);
        assert_eq!(check(&url, Some("image/png; q=1")).unwrap(), "u/a.png");
        for sent in [None, Some("text/html"), Some("image/png")] {
            assert!(is_invalid(check(&url, sent)), "{sent:?}");
        }
        // Dropping or swapping the type breaks the signature.
        let without = url.replace("&X-Stowage-Content-Type=image%2Fpng%3B%20q%3D1", "");
        assert!(is_invalid(check(&without, Some("text/html"))));
        let swapped = url.replace("image%2Fpng%3B%20q%3D1", "text%2Fhtml");
        assert!(is_invalid(check(&swapped, Some("text/html"))));
    }
}
