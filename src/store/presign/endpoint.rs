//! Store endpoints (`https://host[:port][/prefix]`), parsed once per signer.

use crate::error::{Error, Result};

use super::encoding::encode_path;

/// An endpoint split into what signatures need. The host is lower-cased and a default
/// port dropped, so the URL we print and the `Host` header a client sends agree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Endpoint {
    pub(super) scheme: &'static str,
    /// `host[:port]`, exactly as the client will send it in `Host`.
    pub(super) host: String,
    /// Empty, or `/segments` percent-encoded, with no trailing slash.
    pub(super) path: String,
}

impl Endpoint {
    /// `field` names the option in errors (`endpoint`, `presign.localBaseUrl`…).
    pub(super) fn parse(url: &str, field: &str) -> Result<Endpoint> {
        let invalid = |reason: &str| Error::config(field, format!("{:?} {reason}", shown(url)));
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| invalid("is not an absolute http(s) URL"))?;
        let (scheme, default_port) = match scheme.to_ascii_lowercase().as_str() {
            "https" => ("https", ":443"),
            "http" => ("http", ":80"),
            _ => return Err(invalid("is not an http or https URL")),
        };
        if rest.contains(['?', '#']) || rest.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid("has a query, a fragment or whitespace"));
        }
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        if authority.is_empty() || authority.contains('@') {
            return Err(invalid("has no host, or has user info"));
        }
        // object_store's S3 signer parses each request's URL again, and panicked on one
        // it could not parse (a port past 65535, an unclosed `[`).
        url::Url::parse(url).map_err(|e| invalid(&format!("is not a valid URL: {e}")))?;
        let authority = authority.to_ascii_lowercase();
        let host = authority
            .strip_suffix(default_port)
            .unwrap_or(&authority)
            .to_owned();
        Ok(Endpoint {
            scheme,
            host,
            path: encode_path(path.trim_end_matches('/')),
        })
    }
}

/// Checks an endpoint a store was given, whether or not it signs URLs with it: one
/// without credentials would otherwise first fail on its first request, for another
/// reason (no credentials from the instance metadata service).
pub fn check_endpoint(url: &str, field: &str) -> Result<()> {
    Endpoint::parse(url, field).map(drop)
}

/// `url` as errors may show it: user info, which may hold a password, and the query
/// and fragment, which may hold a signature (`?sig=`, `?X-Amz-Signature=`), are left out.
fn shown(url: &str) -> String {
    let (url, hidden) = match url.find(['?', '#']) {
        Some(end) => (&url[..end], "…"),
        None => (url, ""),
    };
    let Some((scheme, rest)) = url.split_once("://") else {
        return format!("{url}{hidden}");
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://…@{}{hidden}", &rest[at + 1..]),
        None => format!("{url}{hidden}"),
    }
}

/// The path of a full URL or of a path and query (as Express's `req.originalUrl`),
/// without query or fragment, and still percent-encoded.
pub(super) fn path_of(url: &str) -> &str {
    let after_authority = match url.split_once("://") {
        Some((_, rest)) => &rest[rest.find('/').unwrap_or(rest.len())..],
        None => url,
    };
    let end = after_authority
        .find(['?', '#'])
        .unwrap_or(after_authority.len());
    &after_authority[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Endpoint {
        Endpoint::parse(url, "endpoint").unwrap()
    }

    #[test]
    fn splits_scheme_host_and_prefix() {
        assert_eq!(
            parse("http://127.0.0.1:10000/devstoreaccount1/"),
            Endpoint {
                scheme: "http",
                host: "127.0.0.1:10000".into(),
                path: "/devstoreaccount1".into(),
            }
        );
        assert_eq!(
            parse("HTTPS://S3.EU-WEST-1.amazonaws.com"),
            Endpoint {
                scheme: "https",
                host: "s3.eu-west-1.amazonaws.com".into(),
                path: String::new(),
            }
        );
        assert_eq!(parse("http://[::1]:9000/a+b").path, "/a%2Bb");
    }

    #[test]
    fn default_ports_are_dropped_because_clients_omit_them_from_host() {
        assert_eq!(parse("https://minio.local:443").host, "minio.local");
        assert_eq!(parse("http://minio.local:80/").host, "minio.local");
        assert_eq!(parse("http://minio.local:443").host, "minio.local:443");
    }

    #[test]
    fn rejects_what_is_not_a_plain_endpoint() {
        for url in [
            "s3.amazonaws.com",
            "ftp://host",
            "https://",
            "https://user:pw@host",
            "https://host/?a=b",
            "https://host/#x",
            "https://ho st",
            "https://user:pw@host/acct?sig=SECRET%3D",
            "https://host/acct?sv=1&sig=SECRET",
            "http://127.0.0.1:99999",
            "http://[::1:9000",
            "http://host:port",
        ] {
            let err = Endpoint::parse(url, "endpoint").unwrap_err();
            assert!(matches!(err, Error::InvalidConfig { ref field, .. } if field == "endpoint"));
            let message = err.to_string();
            assert!(
                !message.contains("pw@") && !message.contains("SECRET"),
                "{err}"
            );
        }
    }

    #[test]
    fn path_of_urls_and_origin_relative_paths() {
        assert_eq!(path_of("https://h:1/files/a%20b?x=1#f"), "/files/a%20b");
        assert_eq!(path_of("/files/a?x=1"), "/files/a");
        assert_eq!(path_of("https://h"), "");
        assert_eq!(path_of("/a#frag?not-query"), "/a");
    }
}
