//! Builders of the network stores, `s3://bucket[/prefix]` and `az://container[/prefix]`,
//! and of the presigner that signs URLs for the same bucket with the same credentials.

use std::sync::Arc;

use object_store::ObjectStore;
use object_store::aws::AmazonS3Builder;
use object_store::azure::MicrosoftAzureBuilder;
use object_store::prefix::PrefixStore;
use url::Url;

use super::headers::check_printable;
use super::options::{
    AZURE_CONNECTION_STRING, AZURE_ENDPOINT_VARIABLES, S3_ENDPOINT_VARIABLES, StoreOptions,
};
use super::presign::{
    AzurePresigner, AzureSasConfig, Presigner, S3PresignConfig, S3Presigner, check_endpoint,
};
use crate::config::{env_flag, env_var as env};
use crate::error::{Error, Result};

/// The Azure storage emulator's well-known development account.
const AZURITE_ACCOUNT: &str = "devstoreaccount1";
const EMULATOR_VARIABLE: &str = "AZURE_STORAGE_USE_EMULATOR";
const EMULATOR_URL_VARIABLE: &str = "AZURITE_BLOB_STORAGE_URL";
/// The names object_store's builder reads the account key under.
const AZURE_KEY_VARIABLES: &[&str] = &[
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
];
const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// A cloud store and, when its credentials are at hand, its URL signer.
pub struct Cloud {
    pub store: Arc<dyn ObjectStore>,
    pub presigner: Option<Presigner>,
    /// The `/prefix` of the URL, which presigned keys need too.
    pub prefix: String,
}

fn container_of<'a>(url: &'a Url, field: &str, what: &str) -> Result<&'a str> {
    url.host_str()
        .filter(|b| !b.is_empty())
        .ok_or_else(|| Error::config(field, format!("{}:// URL has no {what}", url.scheme())))
}

pub fn s3(url: &Url, field: &str, opts: &StoreOptions) -> Result<Cloud> {
    let bucket = container_of(url, field, "bucket")?;
    let opts = &opts.with_env_endpoint(&options_field(field), &S3_ENDPOINT_VARIABLES)?;
    check_s3_headers(opts, &options_field(field))?;
    let mut b = AmazonS3Builder::from_env()
        .with_bucket_name(bucket)
        .with_retry(opts.retry_config())
        .with_client_options(opts.client_options())
        .with_http_connector(opts.http_connector());
    if let Some(v) = &opts.endpoint {
        // AWS_ENDPOINT_URL_S3 would otherwise win over the endpoint given.
        b = b
            .with_endpoint(v)
            .with_config("aws_endpoint_url_s3".parse().expect("known key"), v);
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
    Ok(Cloud {
        store: with_prefix(Arc::new(store), url),
        presigner: s3_presigner(bucket, opts)?,
        prefix: prefix_of(url),
    })
}

/// Credentials and the region are sent in request headers, given as options or read
/// from the environment (under each name object_store reads): object_store's signer
/// panicked on a line break in one at the first request.
fn check_s3_headers(opts: &StoreOptions, options: &str) -> Result<()> {
    let sent = [
        (
            "accessKeyId",
            &opts.access_key_id,
            &["AWS_ACCESS_KEY_ID"][..],
        ),
        (
            "sessionToken",
            &opts.session_token,
            &["AWS_SESSION_TOKEN", "AWS_TOKEN"],
        ),
        (
            "region",
            &opts.region,
            &["AWS_REGION", "AWS_DEFAULT_REGION"],
        ),
    ];
    for (name, option, variables) in sent {
        match option {
            Some(value) => check_printable(&format!("{options}.{name}"), value)?,
            None => {
                for variable in variables {
                    env(variable).map_or(Ok(()), |value| check_printable(variable, &value))?;
                }
            }
        }
    }
    Ok(())
}

/// Signs with the same credentials the store uses; without static credentials
/// (instance roles) there is nothing to sign with, and presigning says so.
fn s3_presigner(bucket: &str, opts: &StoreOptions) -> Result<Option<Presigner>> {
    let access = opts
        .access_key_id
        .clone()
        .or_else(|| env("AWS_ACCESS_KEY_ID"));
    let secret = opts
        .secret_access_key
        .clone()
        .or_else(|| env("AWS_SECRET_ACCESS_KEY"));
    let (Some(access_key_id), Some(secret_access_key)) = (access, secret) else {
        return Ok(None);
    };
    let region = opts
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".into());
    let aws = opts.endpoint.is_none();
    let endpoint = opts
        .endpoint
        .clone()
        .unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    let config = S3PresignConfig {
        endpoint,
        // AWS itself is addressed virtual-hosted; self-hosted servers path-style.
        virtual_hosted_style: opts.virtual_hosted_style.unwrap_or(aws),
        bucket: bucket.to_owned(),
        region,
        access_key_id,
        secret_access_key,
        session_token: opts
            .session_token
            .clone()
            .or_else(|| env("AWS_SESSION_TOKEN"))
            .or_else(|| env("AWS_TOKEN")),
    };
    S3Presigner::new(config).map(|p| Some(Presigner::S3(Box::new(p))))
}

pub fn azure(url: &Url, field: &str, opts: &StoreOptions) -> Result<Cloud> {
    let container = container_of(url, field, "container")?;
    let account = AzureAccount::from_options(opts, &options_field(field))?;
    let mut b = MicrosoftAzureBuilder::from_env()
        // The emulator's address is in `account`: the builder's own would ignore the endpoint.
        .with_use_emulator(false)
        .with_container_name(container)
        .with_retry(opts.retry_config())
        .with_client_options(opts.client_options())
        .with_http_connector(opts.http_connector());
    if let Some(name) = &account.name {
        b = b.with_account(name);
    }
    if let Some(key) = &account.key {
        b = b.with_access_key(key);
    }
    if let Some(sas) = &account.sas {
        b = b.with_config("azure_storage_sas_key".parse().expect("known key"), sas);
    }
    if let Some(endpoint) = &account.endpoint {
        b = b.with_endpoint(endpoint.clone());
        if endpoint.starts_with("http://") {
            b = b.with_allow_http(true);
        }
    }
    if let Some(v) = opts.allow_http {
        b = b.with_allow_http(v);
    }
    let store = b
        .build()
        .map_err(|e| Error::config(field, opts.secrets().redact(&e.to_string())))?;
    let presigner = match (&account.name, &account.key) {
        (Some(name), Some(key)) => Some(Presigner::Azure(Box::new(AzurePresigner::new(
            AzureSasConfig {
                endpoint: account
                    .endpoint
                    .clone()
                    .unwrap_or_else(|| format!("https://{name}.blob.core.windows.net")),
                account: name.clone(),
                account_key: key.clone(),
                container: container.to_owned(),
            },
        )?))),
        _ => None,
    };
    Ok(Cloud {
        store: with_prefix(Arc::new(store), url),
        presigner,
        prefix: prefix_of(url),
    })
}

/// The account an `az://` store talks to: a connection string, then explicit options,
/// then the `AZURE_STORAGE_*` variables (which the builder also reads itself).
#[derive(Default)]
struct AzureAccount {
    name: Option<String>,
    key: Option<String>,
    sas: Option<String>,
    /// Account URL; an explicit one (Azurite on any port) is used path-style.
    endpoint: Option<String>,
}

impl AzureAccount {
    /// `options` names the options (`cloudOptions`, `tiers.warmOptions`).
    fn from_options(opts: &StoreOptions, options: &str) -> Result<AzureAccount> {
        opts.check_endpoint(options)?;
        // The option, else the variable: object_store reads the other AZURE_STORAGE_*
        // variables itself, but not the connection string.
        let mut account = match (&opts.connection_string, env(AZURE_CONNECTION_STRING)) {
            (Some(cs), _) => Self::parse(cs, &format!("{options}.connectionString"))?,
            (None, Some(cs)) => Self::parse(&cs, AZURE_CONNECTION_STRING)?,
            (None, None) => AzureAccount::default(),
        };
        if let Some(endpoint) = &opts.endpoint {
            account.endpoint = Some(endpoint.clone());
        }
        if account.endpoint.is_none() {
            account.endpoint = opts
                .with_env_endpoint(options, &AZURE_ENDPOINT_VARIABLES)?
                .endpoint;
        }
        account.name = account.name.or_else(|| env("AZURE_STORAGE_ACCOUNT_NAME"));
        account.key = account
            .key
            .or_else(|| AZURE_KEY_VARIABLES.iter().find_map(|v| env(v)));
        let emulator = env_flag(EMULATOR_VARIABLE, env(EMULATOR_VARIABLE))?;
        if account.endpoint.is_none() && emulator == Some(true) {
            account.use_emulator()?;
        }
        account.endpoint = account.endpoint.map(|e| e.trim_end_matches('/').to_owned());
        Ok(account)
    }

    /// What object_store's builder does for `AZURE_STORAGE_USE_EMULATOR`: plain http,
    /// as with `UseDevelopmentStorage=true`.
    fn use_emulator(&mut self) -> Result<()> {
        let name = self.name.get_or_insert_with(|| AZURITE_ACCOUNT.into());
        let base = env(EMULATOR_URL_VARIABLE).unwrap_or_else(|| "http://127.0.0.1:10000".into());
        check_endpoint(&base, EMULATOR_URL_VARIABLE)?;
        self.endpoint = Some(format!("{}/{name}", base.trim_end_matches('/')));
        if self.sas.is_none() {
            self.key.get_or_insert_with(|| AZURITE_KEY.into());
        }
        Ok(())
    }

    /// `field` names the setting `cs` came from.
    fn parse(cs: &str, field: &str) -> Result<AzureAccount> {
        let mut account = AzureAccount::default();
        let (mut protocol, mut suffix) = ("https", None);
        for part in cs.split(';').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, value) = part.split_once('=').ok_or_else(|| {
                Error::config(field, "expected Name=Value pairs separated by ';'")
            })?;
            let value = value.trim();
            if value.is_empty() && matches!(name, "AccountName" | "AccountKey") {
                return Err(Error::config(field, format!("{name} is empty")));
            }
            match name {
                "AccountName" => account.name = Some(value.to_owned()),
                "AccountKey" => account.key = Some(value.to_owned()),
                "BlobEndpoint" => account.endpoint = Some(value.to_owned()),
                "SharedAccessSignature" => account.sas = Some(value.to_owned()),
                "DefaultEndpointsProtocol" if value.eq_ignore_ascii_case("http") => {
                    protocol = "http"
                }
                "EndpointSuffix" => suffix = Some(value.to_owned()),
                "UseDevelopmentStorage" if value.eq_ignore_ascii_case("true") => {
                    account.name = Some(AZURITE_ACCOUNT.into());
                    account.key = Some(AZURITE_KEY.into());
                    account.endpoint = Some(format!("http://127.0.0.1:10000/{AZURITE_ACCOUNT}"));
                }
                _ if KNOWN_SETTINGS.contains(&name) => {}
                // A misspelt AccountKey left the key out, and the store then asked
                // the VM's metadata service for a managed identity instead.
                _ => return Err(Error::config(field, unknown_setting(name))),
            }
        }
        // Sovereign clouds (`core.chinacloudapi.cn`) are named by their suffix alone.
        if let (None, Some(suffix), Some(name)) = (&account.endpoint, suffix, &account.name) {
            account.endpoint = Some(format!("{protocol}://{name}.blob.{suffix}"));
        }
        // Checked here, naming the setting: object_store's builder shows a URL it cannot
        // parse whole, a password in its user info included.
        if let Some(endpoint) = &account.endpoint {
            check_endpoint(endpoint, &format!("{field} BlobEndpoint"))?;
        }
        // The portal's SAS connection strings name the account by its endpoint alone.
        if account.name.is_none() {
            account.name = account.endpoint.as_deref().and_then(account_of_endpoint);
        }
        Ok(account)
    }
}

/// The account an endpoint names: `https://acct.blob.core.windows.net`, or path-style
/// as the emulator is addressed, `http://127.0.0.1:10000/acct`.
fn account_of_endpoint(endpoint: &str) -> Option<String> {
    let url = Url::parse(endpoint).ok()?;
    let first_segment = url.path_segments()?.find(|s| !s.is_empty());
    let account = match url.host()? {
        url::Host::Domain(host) if first_segment.is_none() => host.split('.').next(),
        _ => first_segment,
    };
    account.filter(|a| !a.is_empty()).map(str::to_owned)
}

/// Settings of Azure Storage connection strings that name no blob endpoint or
/// credential of their own, accepted and not needed here.
const KNOWN_SETTINGS: [&str; 10] = [
    "DefaultEndpointsProtocol",
    "UseDevelopmentStorage",
    "DevelopmentStorageProxyUri",
    "QueueEndpoint",
    "TableEndpoint",
    "FileEndpoint",
    "BlobSecondaryEndpoint",
    "QueueSecondaryEndpoint",
    "TableSecondaryEndpoint",
    "FileSecondaryEndpoint",
];

/// Names the setting when it looks like a name: a key pasted without its `=` is a
/// "name" that holds the secret.
fn unknown_setting(name: &str) -> String {
    if !name.is_empty() && name.len() <= 40 && name.chars().all(|c| c.is_ascii_alphabetic()) {
        format!("unknown setting {name}")
    } else {
        "a setting whose name is not one of Azure's (a key without its `=`?)".into()
    }
}

/// Where the options of the store given as `field` come from: `cloudOptions` for
/// `cloud`, `tiers.warmOptions` for `tiers.warm`.
fn options_field(field: &str) -> String {
    match field {
        "cloud" => "cloudOptions".into(),
        tier => format!("{tier}Options"),
    }
}

/// The URL's path as the store reads it: object_store drops empty segments, so
/// `s3://b//scans/` is the prefix `scans`, and presigned URLs must say the same.
fn prefix_of(url: &Url) -> String {
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    segments.join("/")
}

/// Where a bucket store's objects are, as far as its URL tells (see [`super::Place`]).
pub fn place_of(url: &Url) -> String {
    let family = match url.scheme() {
        "s3" | "s3a" => "s3",
        _ => "az",
    };
    let bucket = url.host_str().unwrap_or_default();
    format!("{family}://{bucket}/{}", prefix_of(url))
}

/// `s3://bucket/some/prefix` scopes every key under `some/prefix/`.
fn with_prefix(store: Arc<dyn ObjectStore>, url: &Url) -> Arc<dyn ObjectStore> {
    let prefix = prefix_of(url);
    if prefix.is_empty() {
        store
    } else {
        Arc::new(PrefixStore::new(store, prefix))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(cs: &str) -> Result<AzureAccount> {
        AzureAccount::parse(cs, "cloudOptions.connectionString")
    }

    #[test]
    fn connection_strings_name_the_account_and_endpoint_as_azure_does() {
        let portal = parse(
            "BlobEndpoint=https://acct.blob.core.windows.net/;QueueEndpoint=https://acct.queue.core.windows.net/;SharedAccessSignature=sv=2022&sig=x",
        )
        .unwrap();
        assert_eq!(portal.name.as_deref(), Some("acct"));
        let emulator =
            parse("BlobEndpoint=http://127.0.0.1:10000/devacct;SharedAccessSignature=sv=1")
                .unwrap();
        assert_eq!(emulator.name.as_deref(), Some("devacct"));
        let sovereign = parse(
            "DefaultEndpointsProtocol=HTTP;AccountName=acct;AccountKey=a2V5;EndpointSuffix=core.chinacloudapi.cn",
        )
        .unwrap();
        assert_eq!(
            sovereign.endpoint.as_deref(),
            Some("http://acct.blob.core.chinacloudapi.cn")
        );
    }

    #[test]
    fn a_mistyped_setting_is_refused_without_echoing_a_key() {
        let typo = parse("AccountName=acct;AcountKey=a2V5").err().unwrap();
        assert!(
            typo.to_string().contains("unknown setting AcountKey"),
            "{typo}"
        );
        let pasted = parse("AccountName=acct;AccountKeyc2VjcmV0a2V5==")
            .err()
            .unwrap();
        assert!(!pasted.to_string().contains("c2VjcmV0a2V5"), "{pasted}");
    }
}
