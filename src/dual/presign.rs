//! Which URL a presign call returns: the CDN for GETs when one is configured, the
//! cloud store's own signature (SigV4, SAS) when it has one, else stowage's local
//! HMAC URL served by the `stowage/express` or `stowage/hono` middleware.

use super::Storage;
use crate::config::Mode;
use crate::error::{Error, Result};
use crate::key::Key;
use crate::store::StoreSigner;
use crate::store::presign::{self, LocalGrant, Method, PresignRequest, encode_key_path};

/// `presign` in the constructor's options.
#[derive(Debug, Clone, Default)]
pub struct PresignSettings {
    /// Default lifetime in seconds (3600).
    pub expires_in: Option<u64>,
    pub cdn_base_url: Option<String>,
    pub local_base_url: Option<String>,
    pub local_secret: Option<String>,
}

const DEFAULT_EXPIRES_IN: u64 = 3600;

impl PresignSettings {
    pub fn validate(&self) -> Result<()> {
        for (field, url) in [
            ("presign.cdnBaseUrl", &self.cdn_base_url),
            ("presign.localBaseUrl", &self.local_base_url),
        ] {
            if let Some(url) = url {
                url::Url::parse(url)
                    .map_err(|e| Error::config(field, format!("not a URL: {e}")))?;
                // Signed URLs end up in pages: a `javascript:` base would run there. The
                // base is used as written, so `http:/host` or ` https://host` (which
                // the parser would mend) are refused too.
                let web = url.starts_with("http://") || url.starts_with("https://");
                if !web || url.contains(char::is_whitespace) {
                    return Err(Error::config(field, "must be an http:// or https:// URL"));
                }
                // Keys are appended as a path: after a query every URL would name one
                // path. Not echoed, as a query may hold a token.
                if url.contains(['?', '#']) {
                    return Err(Error::config(
                        field,
                        "has a ?query or #fragment; keys are appended to it as a path",
                    ));
                }
            }
        }
        if let Some(secret) = &self.local_secret
            && secret.len() < presign::MIN_SECRET_BYTES
        {
            return Err(Error::config(
                "presign.localSecret",
                format!("must be at least {} bytes", presign::MIN_SECRET_BYTES),
            ));
        }
        if let Some(e) = self.expires_in
            && !presign::EXPIRES_IN.contains(&e)
        {
            return Err(Error::config(
                "presign.expiresIn",
                "must be 1..604800 seconds",
            ));
        }
        Ok(())
    }

    fn local(&self) -> Result<(&str, &[u8])> {
        let base = self.local_base_url.as_deref().ok_or_else(|| {
            Error::config(
                "presign.localBaseUrl",
                "needed to sign URLs for the local side",
            )
        })?;
        let secret = self.local_secret.as_deref().ok_or_else(|| {
            Error::config(
                "presign.localSecret",
                "needed to sign URLs for the local side",
            )
        })?;
        Ok((base, secret.as_bytes()))
    }
}

/// What one presign call asks for.
#[derive(Debug, Clone, Copy, Default)]
pub struct PresignOptions<'a> {
    pub expires_in: Option<u64>,
    pub content_type: Option<&'a str>,
    pub content_disposition: Option<&'a str>,
}

/// Below this many keys, starting threads costs more than it saves.
const PARALLEL_BATCH: usize = 2048;

/// Where the URLs of one presign call point, and how they are signed.
enum UrlSigner<'a> {
    Cdn(&'a str),
    Cloud(StoreSigner<'a>),
    Local {
        base: &'a str,
        secret: &'a [u8],
        method: Method,
        expires_at: u64,
        content_type: Option<&'a str>,
    },
}

impl UrlSigner<'_> {
    fn url(&self, key: &str) -> Result<String> {
        match self {
            UrlSigner::Cdn(cdn) => Ok(format!("{cdn}/{}", encode_key_path(key))),
            UrlSigner::Cloud(signer) => signer.url(key),
            UrlSigner::Local {
                base,
                secret,
                method,
                expires_at,
                content_type,
            } => {
                let grant = LocalGrant {
                    method: *method,
                    key,
                    expires_at: *expires_at,
                    content_type: *content_type,
                };
                presign::sign_local(base, secret, &grant)
            }
        }
    }

    /// Checks and signs each key; large batches on every core.
    fn urls(&self, keys: &[String]) -> Result<Vec<String>> {
        let sign = |keys: &[String]| -> Result<Vec<String>> {
            keys.iter()
                .map(|key| {
                    Key::check(key)?;
                    self.url(key)
                })
                .collect()
        };
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        if keys.len() < PARALLEL_BATCH || threads == 1 {
            return sign(keys);
        }
        std::thread::scope(|scope| {
            let chunks: Vec<_> = keys
                .chunks(keys.len().div_ceil(threads))
                .map(|chunk| scope.spawn(move || sign(chunk)))
                .collect();
            let mut urls = Vec::with_capacity(keys.len());
            for chunk in chunks {
                urls.extend(chunk.join().expect("signing does not panic")?);
            }
            Ok(urls)
        })
    }
}

impl Storage {
    /// Signs without any network call; `now` is Unix seconds.
    pub fn presign(
        &self,
        key: &Key,
        method: Method,
        opts: &PresignOptions,
        now: u64,
    ) -> Result<String> {
        let signer = self.url_signer(method, opts, now)?;
        match self.waits_for_repair(&signer, method, key.as_str()) {
            true => self
                .repair_signer(key.as_str(), opts, now)?
                .url(key.as_str()),
            false => signer.url(key.as_str()),
        }
    }

    /// [`Storage::presign`] for many keys that share one method and set of options,
    /// each key checked as [`Key::parse`] would.
    pub fn presign_many(
        &self,
        keys: &[String],
        method: Method,
        opts: &PresignOptions,
        now: u64,
    ) -> Result<Vec<String>> {
        let signer = self.url_signer(method, opts, now)?;
        let mut urls = signer.urls(keys)?;
        for (key, url) in keys.iter().zip(&mut urls) {
            if self.waits_for_repair(&signer, method, key) {
                *url = self.repair_signer(key, opts, now)?.url(key)?;
            }
        }
        Ok(urls)
    }

    /// Until its repair, a key whose write or delete did not reach the cloud is read
    /// from the side that took it; a URL to the cloud (or a CDN in front of it) would
    /// serve the bytes or the object it replaced. This process's queued intents tell;
    /// another process's show once this one has read since (as reads see them).
    fn waits_for_repair(&self, signer: &UrlSigner, method: Method, key: &str) -> bool {
        method == Method::Get
            && !matches!(signer, UrlSigner::Local { .. })
            && self.queued.known(key)
    }

    /// A local signed URL for a key that waits for a repair: the middleware serving it
    /// reads as `get` does. Without local signing there is no URL to give yet.
    fn repair_signer<'a>(
        &'a self,
        key: &str,
        opts: &PresignOptions<'a>,
        now: u64,
    ) -> Result<UrlSigner<'a>> {
        let req = self.request(Method::Get, opts, now);
        self.local_signer(Method::Get, opts, &req).map_err(|_| {
            Error::Unavailable(format!(
                "{key} waits for a repair, and its cloud copy may be stale until then; \
                 with presign.localBaseUrl and presign.localSecret its URL is a local one"
            ))
        })
    }

    fn request<'a>(
        &self,
        method: Method,
        opts: &PresignOptions<'a>,
        now: u64,
    ) -> PresignRequest<'a> {
        PresignRequest {
            method,
            key: "",
            expires_in: opts
                .expires_in
                .or(self.presign.expires_in)
                .unwrap_or(DEFAULT_EXPIRES_IN),
            now,
            content_type: opts.content_type,
            content_disposition: opts.content_disposition,
        }
    }

    /// The CDN for GETs when one is configured, else the cloud's own signature when it
    /// has one, else a local signed URL. A dual-mode upload goes through the app, whose
    /// middleware writes both sides: one straight to the cloud missed the local side,
    /// whose old bytes local-first reads then served and a migration copied back over it.
    fn url_signer<'a>(
        &'a self,
        method: Method,
        opts: &PresignOptions<'a>,
        now: u64,
    ) -> Result<UrlSigner<'a>> {
        if let (Method::Get, Some(cdn)) = (method, &self.presign.cdn_base_url) {
            return Ok(UrlSigner::Cdn(cdn.trim_end_matches('/')));
        }
        let req = self.request(method, opts, now);
        let cloud = self.cloud.as_ref().filter(|_| match method {
            Method::Put => self.mode == Mode::Cloud,
            _ => self.mode != Mode::Local,
        });
        if let Some(signer) = cloud.and_then(|c| c.presigner(&req)) {
            return signer.map(UrlSigner::Cloud);
        }
        self.local_signer(method, opts, &req)
    }

    fn local_signer<'a>(
        &'a self,
        method: Method,
        opts: &PresignOptions<'a>,
        req: &PresignRequest,
    ) -> Result<UrlSigner<'a>> {
        let (base, secret) = self.presign.local()?;
        Ok(UrlSigner::Local {
            base,
            secret,
            method,
            expires_at: req.expires_at()?,
            // A download is served with the type stored at upload.
            content_type: opts.content_type.filter(|_| method == Method::Put),
        })
    }

    /// The key a local signed URL grants, or `SIGNATURE_INVALID` / `SIGNATURE_EXPIRED`.
    /// `content_type` is the request's, which an upload URL signed for one must send.
    pub fn verify_signed_url(
        &self,
        url: &str,
        method: Method,
        now: u64,
        content_type: Option<&str>,
    ) -> Result<Key> {
        let (base, secret) = self.presign.local()?;
        let key = presign::verify_local(base, url, method, secret, now, content_type)?;
        Key::parse(&key).map_err(|_| Error::SignatureInvalid("the key is not valid".into()))
    }
}
