//! Presigned URLs, computed locally: no network, no async runtime, so this module also
//! builds for WASM. One signer per kind of store:
//!
//! - [`S3Presigner`]: AWS Signature Version 4 query-string authentication.
//! - [`AzurePresigner`]: Azure Blob service SAS signed with the account key.
//! - [`sign_local`] / [`verify_local`]: stowage's own URLs for files served from local disk.

mod azure_sas;
mod encoding;
mod endpoint;
mod local;
mod mac;
mod request;
mod sigv4;
mod time;

pub use azure_sas::{AzurePresigner, AzureSasConfig, SAS_VERSION};
pub use encoding::encode_path as encode_key_path;
pub use endpoint::check_endpoint;
pub use local::{LocalGrant, MIN_SECRET_BYTES, sign_local, verify_local};
pub use request::{EXPIRES_IN, Method, PresignRequest, PresignedUrl};
pub use sigv4::{S3Batch, S3PresignConfig, S3Presigner};

/// The signer of a cloud store, whichever kind it is.
pub enum Presigner {
    // Boxed: both signers carry their credentials and caches inline.
    S3(Box<S3Presigner>),
    Azure(Box<AzurePresigner>),
}

impl Presigner {
    /// A signer for URLs that share `req`'s method, time and options (`req.key` is
    /// not used); checks those options once.
    pub fn batch<'a>(&'a self, req: &PresignRequest<'a>) -> crate::error::Result<BatchSigner<'a>> {
        match self {
            Presigner::S3(p) => p.batch(req).map(|batch| BatchSigner::S3(Box::new(batch))),
            Presigner::Azure(p) => {
                req.expires_at()?;
                Ok(BatchSigner::Azure(p, *req))
            }
        }
    }
}

/// Signs the URLs of one batch, key by key.
pub enum BatchSigner<'a> {
    // Boxed: made once per call, and the S3 batch carries its MAC state inline.
    S3(Box<S3Batch>),
    Azure(&'a AzurePresigner, PresignRequest<'a>),
}

impl BatchSigner<'_> {
    pub fn url(&self, key: &str) -> crate::error::Result<String> {
        match self {
            BatchSigner::S3(batch) => Ok(batch.url(key)),
            BatchSigner::Azure(presigner, req) => presigner
                .presign(&PresignRequest { key, ..*req })
                .map(|signed| signed.url),
        }
    }
}

/// Holds credentials, so it shows only its kind.
impl std::fmt::Debug for Presigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Presigner::S3(_) => "Presigner::S3",
            Presigner::Azure(_) => "Presigner::Azure",
        })
    }
}
