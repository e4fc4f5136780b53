//! Builders of the network stores: `s3://bucket[/prefix]` and `az://container[/prefix]`.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::prefix::PrefixStore;
use url::Url;

use super::options::StoreOptions;
use crate::error::{Error, Result};

/// The Azure storage emulator's well-known development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

pub fn s3(url: &Url, field: &str, opts: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let bucket = url
        .host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::config(field, "s3:// URL has no bucket"))?;
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(opts.retry_config())
        .with_client_options(opts.client_options());
    if let Some(v) = &opts.endpoint {
        b = b.with_endpoint(v);
    }
    if let Some(v) = &opts.region {
        b = b.with_region(v);
    }
    if let Some(v) = &opts.access_key_id {
        b = b.with_access_key_id(v);
    }
    if let Some(v) = &opts.secret_access_key {
        b = b.with_secret_access_key(v);
    }
    if let Some(v) = &opts.session_token {
        b = b.with_token(v);
    }
    if let Some(v) = opts.allow_http {
        b = b.with_allow_http(v);
    }
    // Self-hosted S3 servers are addressed path-style unless told otherwise.
    b = b.with_virtual_hosted_style_request(opts.virtual_hosted_style.unwrap_or(false));
    b = match (opts.server_side_encryption.as_deref(), &opts.sse_kms_key_id) {
        (None, _) => b,
        (Some("AES256"), _) => b.with_config(
            "aws_server_side_encryption".parse().expect("known key"),
            "AES256",
        ),
        (Some("aws:kms"), Some(id)) => b.with_sse_kms_encryption(id),
        (Some("aws:kms:dsse"), Some(id)) => b.with_dsse_kms_encryption(id),
        (Some(_), _) => {
            return Err(Error::config(
                "cloudOptions.serverSideEncryption",
                "expected AES256, or aws:kms / aws:kms:dsse with sseKmsKeyId",
            ));
        }
    };
    let store = b
        .build()
        .map_err(|e| Error::config(field, opts.secrets().redact(&e.to_string())))?;
    Ok(with_prefix(Arc::new(store), url))
}

pub fn azure(url: &Url, field: &str, opts: &StoreOptions) -> Result<Arc<dyn ObjectStore>> {
    let container = url
        .host_str()
        .filter(|c| !c.is_empty())
        .ok_or_else(|| Error::config(field, "az:// URL has no container"))?;
    let mut b = MicrosoftAzureBuilder::from_env()
        .with_container_name(container)
        .with_retry(opts.retry_config())
        .with_client_options(opts.client_options());
    if let Some(cs) = &opts.connection_string {
        b = apply_connection_string(b, cs)?;
    }
    if let Some(v) = &opts.endpoint {
        b = b.with_endpoint(v.clone());
    }
    if let Some(v) = opts.allow_http {
        b = b.with_allow_http(v);
    }
    let store = b
        .build()
        .map_err(|e| Error::config(field, opts.secrets().redact(&e.to_string())))?;
    Ok(with_prefix(Arc::new(store), url))
}

/// Reads the parts of a connection string object_store needs. An explicit
/// `BlobEndpoint` (Azurite on any port) is used as the account URL, path-style.
fn apply_connection_string(
    mut b: MicrosoftAzureBuilder,
    cs: &str,
) -> Result<MicrosoftAzureBuilder> {
    let field = "cloudOptions.connectionString";
    let mut development = false;
    for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
        let (name, value) = part
            .split_once('=')
            .ok_or_else(|| Error::config(field, "expected Name=Value pairs separated by ';'"))?;
        match name {
            "AccountName" => b = b.with_account(value),
            "AccountKey" => b = b.with_access_key(value),
            "BlobEndpoint" => {
                b = b.with_endpoint(value.trim_end_matches('/').to_owned());
                if value.starts_with("http://") {
                    b = b.with_allow_http(true);
                }
            }
            "SharedAccessSignature" => {
                b = b.with_config("azure_storage_sas_key".parse().expect("known key"), value)
            }
            "UseDevelopmentStorage" => development = value.eq_ignore_ascii_case("true"),
            _ => {}
        }
    }
    if development {
        b = b
            .with_account(AZURITE_ACCOUNT)
            .with_access_key(AZURITE_KEY)
            .with_endpoint(format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}"))
            .with_allow_http(true);
    }
    Ok(b)
}

/// `s3://bucket/some/prefix` scopes every key under `some/prefix/`.
fn with_prefix(store: Arc<dyn ObjectStore>, url: &Url) -> Arc<dyn ObjectStore> {
    let prefix = url.path().trim_matches('/');
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}
