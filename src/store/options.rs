//! Connection settings of a cloud store (`cloudOptions` in JavaScript).

use std::time::Duration;

use http::HeaderValue;
use object_store::{BackoffConfig, ClientOptions, RetryConfig};

use super::errors::Secrets;
use super::http::{Connector, USER_AGENT};

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
    pub fn secrets(&self) -> Secrets {
        let mut s = Secrets::default();
        s.add(self.secret_access_key.as_deref());
        s.add(self.session_token.as_deref());
        s.add(self.connection_string.as_deref());
        if let Some(cs) = &self.connection_string {
            for part in cs.split(';') {
                if let Some((name, value)) = part.split_once('=')
                    && matches!(name.trim(), "AccountKey" | "SharedAccessSignature")
                {
                    s.add(Some(value.trim()));
                }
            }
        }
        s
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
