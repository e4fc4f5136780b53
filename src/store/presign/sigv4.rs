//! S3 presigned URLs: AWS Signature Version 4 with query-string authentication.
//!
//! Only `host` (plus, for PUT, the content headers the uploader must send) is signed,
//! and the payload is `UNSIGNED-PAYLOAD`, so a URL can be signed without the body.

use std::sync::{Arc, Mutex, PoisonError};

use hmac::Mac;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

use super::encoding::{encode_component, encode_path, push_encoded_path};
use super::endpoint::Endpoint;
use super::mac::{HmacSha256, hmac_sha256, keyed};
use super::request::{Method, PresignRequest, PresignedUrl};
use super::time::amz_date;

const ALGORITHM: &str = "AWS4-HMAC-SHA256";
const SERVICE: &str = "s3";

/// Where and as whom to sign S3 URLs.
#[derive(Clone)]
pub struct S3PresignConfig {
    /// `scheme://host[:port][/prefix]`, e.g. `https://s3.eu-west-1.amazonaws.com` or
    /// `http://127.0.0.1:9000`.
    pub endpoint: String,
    /// `bucket.host/key` rather than `host/bucket/key`.
    pub virtual_hosted_style: bool,
    pub bucket: String,
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: String,
    /// Temporary credentials' token, sent (and signed) as `X-Amz-Security-Token`.
    pub session_token: Option<String>,
}

/// Signs S3 URLs for one bucket. Cheap to share: signing takes `&self`.
pub struct S3Presigner {
    scheme: &'static str,
    host: String,
    /// Endpoint prefix, plus `/bucket` when path-style.
    path_prefix: String,
    region: String,
    access_key_id: String,
    secret_access_key: String,
    session_token: Option<String>,
    keys: SigningKeyCache,
    queries: QueryCache,
}

impl S3Presigner {
    pub fn new(config: S3PresignConfig) -> Result<S3Presigner> {
        let endpoint = Endpoint::parse(&config.endpoint, "endpoint")?;
        for (field, value) in [
            ("bucket", &config.bucket),
            ("region", &config.region),
            ("accessKeyId", &config.access_key_id),
        ] {
            // All three end up in the credential scope or the host, where `/` would shift fields.
            if value.is_empty() || value.contains(['/', '\n']) {
                return Err(Error::config(field, "is empty or contains '/'"));
            }
        }
        if config.secret_access_key.is_empty() {
            return Err(Error::config("secretAccessKey", "is empty"));
        }
        let (host, path_prefix) = if config.virtual_hosted_style {
            // Lower-cased like the endpoint's host: clients send `Host` that way.
            (
                format!("{}.{}", config.bucket.to_ascii_lowercase(), endpoint.host),
                endpoint.path,
            )
        } else {
            let bucket = encode_path(&config.bucket);
            (endpoint.host, format!("{}/{bucket}", endpoint.path))
        };
        Ok(S3Presigner {
            scheme: endpoint.scheme,
            host,
            path_prefix,
            region: config.region,
            access_key_id: config.access_key_id,
            secret_access_key: config.secret_access_key,
            session_token: config.session_token,
            keys: SigningKeyCache::default(),
            queries: QueryCache::default(),
        })
    }

    pub fn presign(&self, req: &PresignRequest) -> Result<PresignedUrl> {
        let batch = self.batch(req)?;
        Ok(PresignedUrl {
            url: batch.url(req.key),
            method: req.method,
            headers: batch.headers,
            expires_at: batch.expires_at,
        })
    }

    /// Prepares everything that URLs with `req`'s method, time and options share
    /// (`req.key` is not used), so each URL of a batch costs one SHA-256 of its
    /// canonical request and one HMAC.
    pub fn batch(&self, req: &PresignRequest) -> Result<S3Batch> {
        let expires_at = req.expires_at()?;
        let amz_date = amz_date(req.now);
        let date = &amz_date[..8];
        let scope = format!("{date}/{}/{SERVICE}/aws4_request", self.region);
        let parts = self.queries.get(req, &amz_date, || {
            let headers = self.signed_headers(req);
            let query = self.canonical_query(req, &amz_date, &scope, &headers);
            SignedParts { headers, query }
        });
        let (headers, query) = (&parts.headers, &parts.query);
        let origin = format!("{}://{}", self.scheme, self.host);
        Ok(S3Batch {
            path_start: origin.len(),
            url_head: format!("{origin}{}/", self.path_prefix),
            url_tail: format!("?{query}&X-Amz-Signature="),
            method: req.method,
            canonical_tail: canonical_tail(query, headers),
            sts_head: sts_head(&amz_date, &scope),
            mac: self.keys.mac(&self.secret_access_key, date, &self.region),
            headers: headers
                .iter()
                .filter(|(name, _)| *name != "host")
                .cloned()
                .collect(),
            expires_at,
        })
    }

    /// Signed headers with canonical values, sorted by name as SigV4 lists them.
    fn signed_headers(&self, req: &PresignRequest) -> Vec<(&'static str, String)> {
        let mut headers = Vec::with_capacity(3);
        if req.method == Method::Put {
            let wanted = [
                ("content-disposition", req.content_disposition),
                ("content-type", req.content_type),
            ];
            for (name, value) in wanted {
                if let Some(value) = value {
                    headers.push((name, canonical_header_value(value)));
                }
            }
        }
        headers.push(("host", self.host.clone()));
        headers
    }

    /// Query parameters, encoded and sorted by encoded name: SigV4's canonical query
    /// string, and the URL's query but for `X-Amz-Signature`.
    fn canonical_query(
        &self,
        req: &PresignRequest,
        amz_date: &str,
        scope: &str,
        headers: &[(&str, String)],
    ) -> String {
        let credential = format!("{}/{scope}", self.access_key_id);
        let signed_headers = signed_header_names(headers);
        let expires_in = req.expires_in.to_string();
        let mut params = vec![
            ("X-Amz-Algorithm", ALGORITHM),
            ("X-Amz-Credential", &credential),
            ("X-Amz-Date", amz_date),
            ("X-Amz-Expires", &expires_in),
            ("X-Amz-SignedHeaders", &signed_headers),
        ];
        if let Some(token) = &self.session_token {
            params.push(("X-Amz-Security-Token", token));
        }
        if req.method == Method::Get {
            let overrides = [
                ("response-content-disposition", req.content_disposition),
                ("response-content-type", req.content_type),
            ];
            for (name, value) in overrides {
                if let Some(value) = value {
                    params.push((name, value));
                }
            }
        }
        let mut encoded: Vec<(String, String)> = params
            .into_iter()
            .map(|(name, value)| (encode_component(name), encode_component(value)))
            .collect();
        encoded.sort();
        encoded
            .iter()
            .map(|(name, value)| format!("{name}={value}"))
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// SigV4 compares header values trimmed, with runs of spaces folded to one; the value we
/// hand back is already in that form so what the client sends is what was signed.
fn canonical_header_value(value: &str) -> String {
    value
        .split(' ')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

fn signed_header_names(headers: &[(&str, String)]) -> String {
    headers
        .iter()
        .map(|(name, _)| *name)
        .collect::<Vec<_>>()
        .join(";")
}

/// The canonical request after its method and path: query, headers, signed header
/// names and the payload hash.
fn canonical_tail(query: &str, headers: &[(&str, String)]) -> String {
    let canonical_headers: String = headers
        .iter()
        .map(|(name, value)| format!("{name}:{value}\n"))
        .collect();
    format!(
        "\n{query}\n{canonical_headers}\n{}\nUNSIGNED-PAYLOAD",
        signed_header_names(headers)
    )
}

/// The string to sign up to the canonical request's hash.
fn sts_head(amz_date: &str, scope: &str) -> String {
    format!("{ALGORITHM}\n{amz_date}\n{scope}\n")
}

/// URLs for one method, time and set of options, signed key by key. `Send + Sync`,
/// so a large batch can be signed on every core.
pub struct S3Batch {
    /// `scheme://host/prefix/`: the URL up to the encoded key.
    url_head: String,
    /// Where the canonical path starts in `url_head`.
    path_start: usize,
    /// `?query&X-Amz-Signature=`.
    url_tail: String,
    method: Method,
    canonical_tail: String,
    sts_head: String,
    /// HMAC with the day's signing key absorbed.
    mac: HmacSha256,
    headers: Vec<(&'static str, String)>,
    expires_at: u64,
}

impl S3Batch {
    pub fn url(&self, key: &str) -> String {
        let mut url = String::with_capacity(
            self.url_head.len() + 3 * key.len() + self.url_tail.len() + SIGNATURE_HEX,
        );
        url.push_str(&self.url_head);
        push_encoded_path(&mut url, key);
        let mut canonical = Sha256::new();
        canonical.update(self.method.as_str());
        canonical.update(b"\n");
        canonical.update(&url[self.path_start..]);
        canonical.update(&self.canonical_tail);
        let mut hash = [0u8; SIGNATURE_HEX];
        hex::encode_to_slice(canonical.finalize(), &mut hash).expect("64 hex digits");
        let mut mac = self.mac.clone();
        mac.update(self.sts_head.as_bytes());
        mac.update(&hash);
        let mut signature = [0u8; SIGNATURE_HEX];
        hex::encode_to_slice(mac.finalize().into_bytes(), &mut signature).expect("64 hex digits");
        url.push_str(&self.url_tail);
        url.push_str(std::str::from_utf8(&signature).expect("hex is ASCII"));
        url
    }
}

/// Length of a SHA-256 in hex.
const SIGNATURE_HEX: usize = 64;

/// `kSigning`: four chained HMACs from the secret over date, region, service.
fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k_date = hmac_sha256(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k_region = hmac_sha256(&k_date, region.as_bytes());
    let k_service = hmac_sha256(&k_region, service.as_bytes());
    hmac_sha256(&k_service, b"aws4_request")
}

/// The signed headers and canonical query depend on the request's time, lifetime and
/// overrides, never on the key; a batch signed in one second shares them.
#[derive(Default)]
struct QueryCache {
    latest: Mutex<Option<(QueryInputs, Arc<SignedParts>)>>,
}

#[derive(PartialEq)]
struct QueryInputs {
    method: Method,
    amz_date: String,
    expires_in: u64,
    content_type: Option<String>,
    content_disposition: Option<String>,
}

struct SignedParts {
    headers: Vec<(&'static str, String)>,
    query: String,
}

impl QueryCache {
    fn get(
        &self,
        req: &PresignRequest,
        amz_date: &str,
        build: impl FnOnce() -> SignedParts,
    ) -> Arc<SignedParts> {
        let inputs = QueryInputs {
            method: req.method,
            amz_date: amz_date.to_owned(),
            expires_in: req.expires_in,
            content_type: req.content_type.map(str::to_owned),
            content_disposition: req.content_disposition.map(str::to_owned),
        };
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        match &*latest {
            Some((cached, parts)) if *cached == inputs => parts.clone(),
            _ => latest.insert((inputs, Arc::new(build()))).1.clone(),
        }
    }
}

/// The last derived signing key (the service is always `s3`), ready-keyed: a batch
/// starts from it instead of four more HMACs to re-derive the key. One entry is
/// enough, since the key changes only with the UTC date or the credentials.
#[derive(Default)]
struct SigningKeyCache {
    latest: Mutex<Option<CachedKey>>,
}

struct CachedKey {
    secret: String,
    date: String,
    region: String,
    mac: HmacSha256,
}

impl SigningKeyCache {
    /// An HMAC keyed with the signing key of this scope.
    fn mac(&self, secret: &str, date: &str, region: &str) -> HmacSha256 {
        // The entry is replaced whole, so a panic elsewhere can't leave it half-written.
        let mut latest = self.latest.lock().unwrap_or_else(PoisonError::into_inner);
        let key = match latest.take() {
            Some(k) if k.date == date && k.region == region && k.secret == secret => k,
            _ => CachedKey {
                secret: secret.to_owned(),
                date: date.to_owned(),
                region: region.to_owned(),
                mac: keyed(&signing_key(secret, date, region, SERVICE)),
            },
        };
        latest.insert(key).mac.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::presign::request::tests::get;

    fn canonical_request(
        method: Method,
        path: &str,
        query: &str,
        headers: &[(&str, String)],
    ) -> String {
        format!(
            "{}\n{path}{}",
            method.as_str(),
            canonical_tail(query, headers)
        )
    }

    fn string_to_sign(amz_date: &str, scope: &str, canonical_request: &str) -> String {
        let hash = hex::encode(Sha256::digest(canonical_request.as_bytes()));
        format!("{}{hash}", sts_head(amz_date, scope))
    }

    // The S3 docs' presigned-URL example: "Authenticating Requests: Using Query
    // Parameters (AWS Signature Version 4)", GET examplebucket/test.txt.
    const EXAMPLE_SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EXAMPLE_NOW: u64 = 1_369_353_600; // 2013-05-24T00:00:00Z

    fn config() -> S3PresignConfig {
        S3PresignConfig {
            endpoint: "https://s3.amazonaws.com".into(),
            virtual_hosted_style: true,
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIAIOSFODNN7EXAMPLE".into(),
            secret_access_key: EXAMPLE_SECRET.into(),
            session_token: None,
        }
    }

    fn presign(config: S3PresignConfig, req: &PresignRequest) -> PresignedUrl {
        S3Presigner::new(config).unwrap().presign(req).unwrap()
    }

    fn example_request() -> PresignRequest<'static> {
        PresignRequest {
            expires_in: 86_400,
            ..get("test.txt", EXAMPLE_NOW)
        }
    }

    /// The value of query parameter `name` in `url`, still encoded.
    fn param<'a>(url: &'a str, name: &str) -> Option<&'a str> {
        let query = url.split_once('?')?.1;
        query
            .split('&')
            .find_map(|p| p.strip_prefix(name)?.strip_prefix('='))
    }

    #[test]
    fn aws_s3_docs_presigned_url_example() {
        let signer = S3Presigner::new(config()).unwrap();
        let req = example_request();
        let amz_date = amz_date(req.now);
        assert_eq!(amz_date, "20130524T000000Z");
        let scope = "20130524/us-east-1/s3/aws4_request";
        let headers = signer.signed_headers(&req);
        let query = signer.canonical_query(&req, &amz_date, scope, &headers);
        let canonical = canonical_request(req.method, "/test.txt", &query, &headers);
        assert_eq!(
            canonical,
            "GET\n\
             /test.txt\n\
             X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\n\
             host:examplebucket.s3.amazonaws.com\n\
             \n\
             host\n\
             UNSIGNED-PAYLOAD"
        );
        let sts = string_to_sign(&amz_date, scope, &canonical);
        assert_eq!(
            sts,
            "AWS4-HMAC-SHA256\n\
             20130524T000000Z\n\
             20130524/us-east-1/s3/aws4_request\n\
             3bfa292879f6447bbcda7001decf97f4a54dc650c8942174ae0a9121cf58ad04"
        );
        let signed = signer.presign(&req).unwrap();
        assert_eq!(
            signed.url,
            "https://examplebucket.s3.amazonaws.com/test.txt\
             ?X-Amz-Algorithm=AWS4-HMAC-SHA256\
             &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
             &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
             &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
        );
        assert_eq!(signed.expires_at, EXAMPLE_NOW + 86_400);
        assert!(signed.headers.is_empty());
    }

    #[test]
    fn aws_docs_signing_key_derivation_examples() {
        // AWS General Reference, "Examples of how to derive a signing key" (2012-02-15)
        // and the SigV4 signing walkthrough's IAM example (2015-08-30).
        let secret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
        assert_eq!(
            hex::encode(signing_key(secret, "20120215", "us-east-1", "iam")),
            "f4780e2d9f65fa895f9c67b32ce1baf0b0d8a43505a000a1a9e090d414db404d"
        );
        assert_eq!(
            hex::encode(signing_key(secret, "20150830", "us-east-1", "iam")),
            "c4afb1cc5771d871763a393e44b703571b55cc28424d1a5e86da6ed3c154a4b9"
        );
    }

    #[test]
    fn one_presigner_can_serve_every_thread() {
        fn shareable<T: Send + Sync>() {}
        shareable::<S3Presigner>();
    }

    #[test]
    fn cache_rederives_when_date_region_or_secret_change() {
        let cache = SigningKeyCache::default();
        let fresh = |secret: &str, date: &str, region: &str| {
            let mut mac = keyed(&signing_key(secret, date, region, SERVICE));
            mac.update(b"sts");
            hex::encode(mac.finalize().into_bytes())
        };
        for (secret, date, region) in [
            ("s1", "20240101", "us-east-1"),
            ("s1", "20240101", "us-east-1"),
            ("s1", "20240102", "us-east-1"),
            ("s1", "20240102", "eu-west-1"),
            ("s2", "20240102", "eu-west-1"),
            ("s1", "20240101", "us-east-1"),
        ] {
            let mut mac = cache.mac(secret, date, region);
            mac.update(b"sts");
            assert_eq!(
                hex::encode(mac.finalize().into_bytes()),
                fresh(secret, date, region)
            );
        }
    }

    #[test]
    fn path_style_with_port_and_prefix() {
        let config = S3PresignConfig {
            endpoint: "http://127.0.0.1:9000/s3/".into(),
            virtual_hosted_style: false,
            ..config()
        };
        let signed = presign(config, &get("a/b.txt", EXAMPLE_NOW));
        assert!(
            signed.url.starts_with(
                "http://127.0.0.1:9000/s3/examplebucket/a/b.txt?X-Amz-Algorithm=AWS4-HMAC-SHA256&"
            ),
            "{}",
            signed.url
        );
    }

    #[test]
    fn virtual_hosted_puts_bucket_in_host_and_keeps_port() {
        let config = S3PresignConfig {
            endpoint: "https://minio.local:9443".into(),
            ..config()
        };
        let signed = presign(config, &get("k", EXAMPLE_NOW));
        assert!(
            signed
                .url
                .starts_with("https://examplebucket.minio.local:9443/k?")
        );
    }

    #[test]
    fn keys_are_encoded_once_per_segment() {
        let signer = S3Presigner::new(config()).unwrap();
        let key = "dir/a b+c#d%e~f/年.txt";
        let signed = signer.presign(&get(key, EXAMPLE_NOW)).unwrap();
        let path = "/dir/a%20b%2Bc%23d%25e~f/%E5%B9%B4.txt";
        assert!(
            signed
                .url
                .starts_with(&format!("https://examplebucket.s3.amazonaws.com{path}?"))
        );
        // The canonical URI is that same path: S3 does not encode twice.
        let req = get(key, EXAMPLE_NOW);
        let headers = signer.signed_headers(&req);
        let canonical = canonical_request(req.method, path, "", &headers);
        assert_eq!(canonical.lines().nth(1), Some(path));
    }

    #[test]
    fn session_token_is_in_the_signed_query() {
        let with_token = S3PresignConfig {
            session_token: Some("FQoG/token+=".into()),
            ..config()
        };
        let signer = S3Presigner::new(with_token).unwrap();
        let req = example_request();
        let headers = signer.signed_headers(&req);
        let query = signer.canonical_query(&req, "20130524T000000Z", "scope", &headers);
        // Sorted by encoded name: Security-Token falls between Expires and SignedHeaders.
        assert!(query.contains(
            "&X-Amz-Expires=86400&X-Amz-Security-Token=FQoG%2Ftoken%2B%3D&X-Amz-SignedHeaders=host"
        ));
        let signed = signer.presign(&req).unwrap();
        assert_eq!(
            param(&signed.url, "X-Amz-Security-Token"),
            Some("FQoG%2Ftoken%2B%3D")
        );
        let unsigned = presign(config(), &req);
        assert_ne!(
            param(&signed.url, "X-Amz-Signature"),
            param(&unsigned.url, "X-Amz-Signature")
        );
    }

    #[test]
    fn put_signs_the_content_headers_the_uploader_must_send() {
        let req = PresignRequest {
            method: Method::Put,
            content_type: Some(" text/plain;  charset=utf-8 "),
            content_disposition: Some("attachment"),
            ..get("up.txt", EXAMPLE_NOW)
        };
        let signer = S3Presigner::new(config()).unwrap();
        let headers = signer.signed_headers(&req);
        let query = signer.canonical_query(&req, "20130524T000000Z", "scope", &headers);
        let canonical = canonical_request(req.method, "/up.txt", &query, &headers);
        assert!(canonical.starts_with("PUT\n/up.txt\n"));
        assert!(canonical.ends_with(
            "\ncontent-disposition:attachment\n\
             content-type:text/plain; charset=utf-8\n\
             host:examplebucket.s3.amazonaws.com\n\
             \n\
             content-disposition;content-type;host\n\
             UNSIGNED-PAYLOAD"
        ));
        let signed = signer.presign(&req).unwrap();
        assert_eq!(
            param(&signed.url, "X-Amz-SignedHeaders"),
            Some("content-disposition%3Bcontent-type%3Bhost")
        );
        assert_eq!(
            signed.headers,
            [
                ("content-disposition", "attachment".to_string()),
                ("content-type", "text/plain; charset=utf-8".to_string()),
            ]
        );
        assert!(param(&signed.url, "response-content-type").is_none());
    }

    #[test]
    fn get_signs_response_overrides_as_query_parameters() {
        let req = PresignRequest {
            content_type: Some("image/png"),
            content_disposition: Some("attachment; filename=\"a b+c.png\""),
            ..get("p.png", EXAMPLE_NOW)
        };
        let signer = S3Presigner::new(config()).unwrap();
        let headers = signer.signed_headers(&req);
        assert_eq!(signed_header_names(&headers), "host");
        let query = signer.canonical_query(&req, "20130524T000000Z", "scope", &headers);
        // Upper-case `X-Amz-*` sorts before lower-case `response-*`.
        let overrides = "&X-Amz-SignedHeaders=host\
             &response-content-disposition=attachment%3B%20filename%3D%22a%20b%2Bc.png%22\
             &response-content-type=image%2Fpng";
        assert!(query.ends_with(overrides));
        let signed = signer.presign(&req).unwrap();
        assert!(
            signed
                .url
                .contains(&format!("{overrides}&X-Amz-Signature="))
        );
        assert!(signed.headers.is_empty());
    }

    #[test]
    fn signatures_match_botocore() {
        // Expected values from botocore 1.x `S3SigV4QueryAuth` with its clock pinned to
        // 2024-02-29T23:59:59Z: an implementation independent of this one.
        const NOW: u64 = 1_709_251_199;
        let key = "dir/a b+c#d%e~f/年.txt";
        let cases = [
            (
                config(),
                PresignRequest {
                    expires_in: 86_400,
                    ..get("test.txt", NOW)
                },
                "430a233b45964cd7bdf30f5b9751483009cbb7c288223e17b4c2cc99d3fd125f",
            ),
            (
                S3PresignConfig {
                    endpoint: "http://127.0.0.1:9000".into(),
                    virtual_hosted_style: false,
                    bucket: "bucket".into(),
                    region: "eu-west-1".into(),
                    access_key_id: "minioadmin".into(),
                    secret_access_key: "minioadmin".into(),
                    session_token: Some("FQoG/token+=".into()),
                },
                PresignRequest {
                    method: Method::Put,
                    expires_in: 900,
                    content_type: Some("text/plain; charset=utf-8"),
                    ..get(key, NOW)
                },
                "3bd7bf397dd88d739ab875e7e8e38d6b1b50bbac8c550f5cbbf511e848783de4",
            ),
            (
                S3PresignConfig {
                    endpoint: "https://s3.eu-west-1.amazonaws.com".into(),
                    bucket: "bucket".into(),
                    region: "eu-west-1".into(),
                    access_key_id: "AKID".into(),
                    secret_access_key: "secret/+=".into(),
                    ..config()
                },
                PresignRequest {
                    content_disposition: Some("attachment; filename=\"a b+c.png\""),
                    content_type: Some("image/png"),
                    ..get(key, NOW)
                },
                "ad66f930bf49342d68c44117561f24ba75d8089c5881158e8915eb2050d19a6e",
            ),
        ];
        for (config, req, signature) in cases {
            let signed = presign(config, &req);
            assert_eq!(
                param(&signed.url, "X-Amz-Signature"),
                Some(signature),
                "{}",
                signed.url
            );
        }
    }

    #[test]
    fn rejects_bad_configuration() {
        let field = |config: S3PresignConfig| match S3Presigner::new(config) {
            Err(Error::InvalidConfig { field, .. }) => field,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
        assert_eq!(
            field(S3PresignConfig {
                endpoint: "s3.amazonaws.com".into(),
                ..config()
            }),
            "endpoint"
        );
        assert_eq!(
            field(S3PresignConfig {
                region: "a/b".into(),
                ..config()
            }),
            "region"
        );
        assert_eq!(
            field(S3PresignConfig {
                bucket: String::new(),
                ..config()
            }),
            "bucket"
        );
        assert_eq!(
            field(S3PresignConfig {
                secret_access_key: String::new(),
                ..config()
            }),
            "secretAccessKey"
        );
        let too_long = PresignRequest {
            expires_in: 604_801,
            ..example_request()
        };
        let err = S3Presigner::new(config())
            .unwrap()
            .presign(&too_long)
            .unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { field, .. } if field == "expiresIn"));
    }
}
