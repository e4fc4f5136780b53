//! Connection settings of a cloud store (`cloudOptions` in JavaScript).

use std::time::Duration;

use http::HeaderValue;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::errors::Secrets;
use super::http::{Connector, USER_AGENT};
use crate::config::{env_flag, env_var};
use crate::error::{Error, Result};

pub(super) const AZURE_CONNECTION_STRING: &str = "AZURE_STORAGE_CONNECTION_STRING";

/// Credentials the store builders read from the environment when the options have none.
const SECRET_VARIABLES: &[&str] = &[
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_TOKEN",
    "AZURE_STORAGE_ACCOUNT_KEY",
    "AZURE_STORAGE_ACCESS_KEY",
    "AZURE_STORAGE_MASTER_KEY",
    "AZURE_STORAGE_SAS_KEY",
    "AZURE_STORAGE_SAS_TOKEN",
    "AZURE_STORAGE_TOKEN",
    AZURE_CONNECTION_STRING,
];

#[derive(Debug, Clone, Default)]
pub struct StoreOptions {
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub access_key_id: Option<String>,
    pub secret_access_key: Option<String>,
    pub session_token: Option<String>,
    pub allow_http: Option<bool>,
    pub virtual_hosted_style: Option<bool>,
    /// `AES256`, `aws:kms` or `aws:kms:dsse`.
    pub server_side_encryption: Option<String>,
    pub sse_kms_key_id: Option<String>,
    pub storage_class: Option<String>,
    /// Azure: `AccountName=…;AccountKey=…;BlobEndpoint=…` or `UseDevelopmentStorage=true`.
    pub connection_string: Option<String>,
    /// Attempts after the first for transient failures (default 5).
    pub max_retries: Option<usize>,
    /// Give up retrying after this long (default 30 s).
    pub retry_timeout_ms: Option<u64>,
    /// Per-request timeout (default 60 s).
    pub request_timeout_ms: Option<u64>,
}

impl StoreOptions {
    /// What messages must not show: the options' secrets and those the store builders
    /// take from the environment.
    pub fn secrets(&self) -> Secrets {
        let mut s = Secrets::default();
        let given = [
            &self.secret_access_key,
            &self.session_token,
            &self.connection_string,
        ];
        let from_env = SECRET_VARIABLES
            .iter()
            .filter_map(|v| std::env::var(v).ok());
        for secret in given.into_iter().flatten().cloned().chain(from_env) {
            s.add(Some(&secret));
            // A connection string's key or SAS can surface alone.
            for part in secret.split(';') {
                if let Some((name, value)) = part.split_once('=')
                    && matches!(name.trim(), "AccountKey" | "SharedAccessSignature")
                {
                    s.add(Some(value.trim()));
                }
            }
        }
        s
    }

    /// An endpoint must not carry credentials (they would be sent and shown where the
    /// keys are not), and plain `http://` needs `allowHttp`, as with object_store's own
    /// client: stowage's client would otherwise take it silently. `field` names the
    /// options (`cloudOptions`, `tiers.warmOptions`).
    pub fn check_endpoint(&self, field: &str) -> Result<()> {
        let Some(endpoint) = &self.endpoint else {
            return Ok(());
        };
        check_endpoint(
            endpoint,
            self.allow_http,
            &format!("{field}.endpoint"),
            &format!("{field}.allowHttp"),
        )
    }

    /// These options with the endpoint and allowHttp object_store would otherwise read
    /// from `variables` itself, checked as options are: the store and its presigner are
    /// both given the result, so URLs are signed for the server the store talks to.
    pub(super) fn with_env_endpoint(
        &self,
        field: &str,
        variables: &EndpointVariables,
    ) -> Result<StoreOptions> {
        self.check_endpoint(field)?;
        let found = variables
            .endpoint
            .iter()
            .find_map(|name| env_var(name).map(|value| (*name, value)));
        let (Some((name, endpoint)), None) = (found, &self.endpoint) else {
            return Ok(self.clone());
        };
        let (allow_http, allow_field) = match self.allow_http {
            Some(allow) => (Some(allow), format!("{field}.allowHttp")),
            None => (
                env_flag(variables.allow_http, env_var(variables.allow_http))?,
                variables.allow_http.to_owned(),
            ),
        };
        check_endpoint(&endpoint, allow_http, name, &allow_field)?;
        Ok(StoreOptions {
            endpoint: Some(endpoint),
            allow_http,
            ..self.clone()
        })
    }

    /// Transient failures (5xx, timeouts, refused connections) are retried with
    /// exponential backoff before they surface as `TIMEOUT` / `UNAVAILABLE`.
    pub fn retry_config(&self) -> RetryConfig {
        RetryConfig {
            max_retries: self.max_retries.unwrap_or(5),
            retry_timeout: Duration::from_millis(self.retry_timeout_ms.unwrap_or(30_000)),
            backoff: BackoffConfig {
                init_backoff: Duration::from_millis(100),
                max_backoff: Duration::from_secs(5),
                base: 2.0,
            },
        }
    }

    /// Settings of the reqwest client, which TLS and proxied endpoints go through.
    pub fn client_options(&self) -> ClientOptions {
        let http = self.http_connector();
        ClientOptions::new()
            .with_user_agent(HeaderValue::from_static(USER_AGENT))
            .with_allow_http(self.allow_http.unwrap_or(false))
            .with_connect_timeout(http.connect_timeout)
            .with_timeout(http.request_timeout)
            .with_pool_max_idle_per_host(http.pool_max_idle_per_host)
    }

    /// The client of every cloud store; see [`http`](super::http) for why it is ours.
    pub(super) fn http_connector(&self) -> Connector {
        let defaults = Connector::default();
        Connector {
            request_timeout: self
                .request_timeout_ms
                .map_or(defaults.request_timeout, Duration::from_millis),
            ..defaults
        }
    }
}

/// Where a store builder's `from_env` finds an endpoint when the options give none.
pub(super) struct EndpointVariables {
    /// In order of precedence.
    pub endpoint: &'static [&'static str],
    pub allow_http: &'static str,
}

pub(super) const S3_ENDPOINT_VARIABLES: EndpointVariables = EndpointVariables {
    endpoint: &["AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "AWS_ENDPOINT"],
    allow_http: "AWS_ALLOW_HTTP",
};

pub(super) const AZURE_ENDPOINT_VARIABLES: EndpointVariables = EndpointVariables {
    endpoint: &["AZURE_STORAGE_ENDPOINT", "AZURE_ENDPOINT"],
    allow_http: "AZURE_ALLOW_HTTP",
};

/// `endpoint_field` and `allow_field` name where the two settings came from, an
/// option or a variable.
pub(crate) fn check_endpoint(
    endpoint: &str,
    allow_http: Option<bool>,
    endpoint_field: &str,
    allow_field: &str,
) -> Result<()> {
    let authority = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split('/')
        .next()
        .unwrap_or_default();
    if authority.contains('@') {
        return Err(Error::config(
            endpoint_field,
            "must not carry user:password@; give accessKeyId and secretAccessKey",
        ));
    }
    let plain = endpoint
        .get(..7)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"));
    if plain && allow_http != Some(true) {
        return Err(Error::config(
            allow_field,
            format!("{endpoint_field} is plain http://: set allowHttp: true to use it"),
        ));
    }
    super::presign::check_endpoint(endpoint, endpoint_field)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_endpoint(endpoint: &str, allow_http: Option<bool>) -> StoreOptions {
        StoreOptions {
            endpoint: Some(endpoint.into()),
            allow_http,
            ..Default::default()
        }
    }

    #[test]
    fn endpoints_carry_no_credentials_and_need_allow_http_for_http() {
        let check = |e, allow| with_endpoint(e, allow).check_endpoint("cloudOptions");
        check("https://minio.internal:9000", None).unwrap();
        check("http://127.0.0.1:9000", Some(true)).unwrap();
        check("https://host/path@version", None).unwrap();
        for (endpoint, allow, field) in [
            ("http://127.0.0.1:9000", None, "cloudOptions.allowHttp"),
            (
                "HTTP://127.0.0.1:9000",
                Some(false),
                "cloudOptions.allowHttp",
            ),
            (
                "https://minio:Sup3rS3cret@minio.internal",
                None,
                "cloudOptions.endpoint",
            ),
        ] {
            let err = check(endpoint, allow).unwrap_err();
            let text = err.to_string();
            assert!(text.contains(field), "{text}");
            assert!(!text.contains("Sup3rS3cret"), "{text}");
        }
    }
}
