//! Azure Blob service SAS URLs, signed with the storage account key (shared key).

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::Mac;

use crate::error::{Error, Result};

use super::encoding::{encode_component, encode_path};
use super::endpoint::Endpoint;
use super::mac::{HmacSha256, keyed};
use super::request::{Method, PresignRequest, PresignedUrl};
use super::time::iso8601;

/// Signed version (`sv`). 2020-12-06 added the encryption scope to the string to sign;
/// later versions changed only the user delegation SAS, so this layout is current.
pub const SAS_VERSION: &str = "2020-12-06";

/// Where and with which key to sign blob URLs.
#[derive(Clone)]
pub struct AzureSasConfig {
    /// The blob service URL: `https://acct.blob.core.windows.net`, or Azurite's
    /// path-style `http://127.0.0.1:10000/devstoreaccount1`.
    pub endpoint: String,
    pub account: String,
    /// The account key, base64 as the portal and connection strings show it.
    pub account_key: String,
    pub container: String,
}

/// Signs blob URLs for one container. Cheap to share: signing takes `&self`.
pub struct AzurePresigner {
    endpoint: Endpoint,
    account: String,
    container: String,
    key: HmacSha256,
}

/// The values of one SAS that vary; the rest of the string to sign is fixed.
struct SignedFields<'a> {
    permissions: &'static str,
    expiry: String,
    resource: String,
    protocol: &'static str,
    content_disposition: &'a str,
    content_type: &'a str,
}

impl AzurePresigner {
    pub fn new(config: AzureSasConfig) -> Result<AzurePresigner> {
        let endpoint = Endpoint::parse(&config.endpoint, "endpoint")?;
        for (field, value) in [
            ("account", &config.account),
            ("container", &config.container),
        ] {
            if value.is_empty() || value.contains(['/', '\n']) {
                return Err(Error::config(field, "is empty or contains '/'"));
            }
        }
        let key = BASE64
            .decode(config.account_key.trim())
            .map_err(|e| Error::config("accountKey", format!("is not base64: {e}")))?;
        if key.is_empty() {
            return Err(Error::config("accountKey", "is empty"));
        }
        Ok(AzurePresigner {
            endpoint,
            account: config.account,
            container: config.container,
            key: keyed(&key),
        })
    }

    pub fn presign(&self, req: &PresignRequest) -> Result<PresignedUrl> {
        let expires_at = req.expires_at()?;
        let (permissions, headers, response) = match req.method {
            Method::Get => ("r", Vec::new(), (req.content_disposition, req.content_type)),
            // Put Blob needs `x-ms-blob-type`; a service SAS cannot pin the content
            // headers, so they are only handed back for the uploader to send.
            Method::Put => {
                let mut headers = vec![("x-ms-blob-type", "BlockBlob".to_owned())];
                let content = [
                    ("x-ms-blob-content-disposition", req.content_disposition),
                    ("x-ms-blob-content-type", req.content_type),
                ];
                for (name, value) in content {
                    if let Some(value) = value {
                        headers.push((name, value.to_owned()));
                    }
                }
                ("cw", headers, (None, None))
            }
        };
        let fields = SignedFields {
            permissions,
            expiry: iso8601(expires_at),
            resource: format!("/blob/{}/{}/{}", self.account, self.container, req.key),
            // An https endpoint's URLs are refused over plain http.
            protocol: if self.endpoint.scheme == "https" {
                "https"
            } else {
                ""
            },
            content_disposition: response.0.unwrap_or_default(),
            content_type: response.1.unwrap_or_default(),
        };
        let mut mac = self.key.clone();
        mac.update(string_to_sign(&fields).as_bytes());
        let signature = BASE64.encode(mac.finalize().into_bytes());
        Ok(PresignedUrl {
            url: format!(
                "{}://{}{}/{}/{}?{}",
                self.endpoint.scheme,
                self.endpoint.host,
                self.endpoint.path,
                encode_path(&self.container),
                encode_path(req.key),
                query(&fields, &signature)
            ),
            method: req.method,
            headers,
            expires_at,
        })
    }
}

/// The service SAS string to sign for a blob, version 2020-12-06 and later: sixteen
/// fields, one per line, empty when unused.
fn string_to_sign(f: &SignedFields) -> String {
    [
        f.permissions,
        "", // st: valid from issue, so a fast server clock can't refuse a fresh URL
        &f.expiry,
        &f.resource,
        "", // si: no stored access policy
        "", // sip: any client address
        f.protocol,
        SAS_VERSION,
        "b", // sr: one blob
        "",  // snapshot time
        "",  // ses: encryption scope
        "",  // rscc
        f.content_disposition,
        "", // rsce
        "", // rscl
        f.content_type,
    ]
    .join("\n")
}

/// The SAS token: every signed field that is set, plus the signature.
fn query(f: &SignedFields, signature: &str) -> String {
    let params = [
        ("sv", SAS_VERSION),
        ("spr", f.protocol),
        ("se", &f.expiry),
        ("sr", "b"),
        ("sp", f.permissions),
        ("rscd", f.content_disposition),
        ("rsct", f.content_type),
        ("sig", signature),
    ];
    params
        .iter()
        .filter(|(_, value)| !value.is_empty())
        .map(|(name, value)| format!("{name}={}", encode_component(value)))
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::presign::request::tests::get;

    /// Azurite's published development account key.
    const AZURITE_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";
    const NOW: u64 = 1_709_251_199; // 2024-02-29T23:59:59Z; +1 h crosses into March
    const KEY: &str = "dir/a b+c#年.txt";

    fn azurite() -> AzurePresigner {
        AzurePresigner::new(AzureSasConfig {
            endpoint: "http://127.0.0.1:10000/devstoreaccount1".into(),
            account: "devstoreaccount1".into(),
            account_key: AZURITE_KEY.into(),
            container: "container".into(),
        })
        .unwrap()
    }

    fn read_with_overrides() -> PresignRequest<'static> {
        PresignRequest {
            content_disposition: Some("attachment; filename=\"a b+c.txt\""),
            content_type: Some("text/plain"),
            ..get(KEY, NOW)
        }
    }

    #[test]
    fn string_to_sign_has_the_sixteen_fields_of_version_2020_12_06() {
        let fields = SignedFields {
            permissions: "r",
            expiry: iso8601(NOW + 3600),
            resource: format!("/blob/devstoreaccount1/container/{KEY}"),
            protocol: "https",
            content_disposition: "attachment",
            content_type: "text/plain",
        };
        let sts = string_to_sign(&fields);
        let lines: Vec<&str> = sts.split('\n').collect();
        assert_eq!(
            lines,
            [
                "r",                                                 // sp
                "",                                                  // st
                "2024-03-01T00:59:59Z",                              // se
                "/blob/devstoreaccount1/container/dir/a b+c#年.txt", // canonicalizedResource
                "",                                                  // si
                "",                                                  // sip
                "https",                                             // spr
                "2020-12-06",                                        // sv
                "b",                                                 // sr
                "",                                                  // snapshot time
                "",                                                  // ses
                "",                                                  // rscc
                "attachment",                                        // rscd
                "",                                                  // rsce
                "",                                                  // rscl
                "text/plain",                                        // rsct
            ]
        );
    }

    #[test]
    fn azurite_read_url_matches_the_azure_sdk() {
        let signed = azurite().presign(&read_with_overrides()).unwrap();
        // Signature from azure-storage-blob 12.x `generate_blob_sas` (sv pinned to
        // 2020-12-06) for the same account, key, blob, expiry and overrides.
        assert_eq!(
            signed.url,
            "http://127.0.0.1:10000/devstoreaccount1/container/dir/a%20b%2Bc%23%E5%B9%B4.txt\
             ?sv=2020-12-06&se=2024-03-01T00%3A59%3A59Z&sr=b&sp=r\
             &rscd=attachment%3B%20filename%3D%22a%20b%2Bc.txt%22&rsct=text%2Fplain\
             &sig=wLajGsmNnj%2BqLntvbWFastEF1hLbpoGg8VrRemAiztQ%3D"
        );
        assert_eq!(signed.expires_at, NOW + 3600);
        assert!(signed.headers.is_empty());
    }

    #[test]
    fn https_write_url_matches_the_azure_sdk_and_names_the_headers_to_send() {
        let signer = AzurePresigner::new(AzureSasConfig {
            endpoint: "https://acct.blob.core.windows.net/".into(),
            account: "acct".into(),
            account_key: AZURITE_KEY.into(),
            container: "media".into(),
        })
        .unwrap();
        let req = PresignRequest {
            method: Method::Put,
            content_type: Some("application/octet-stream"),
            ..get("x/y.bin", NOW)
        };
        let signed = signer.presign(&req).unwrap();
        // Same SDK, with create+write permissions and protocol "https".
        assert_eq!(
            signed.url,
            "https://acct.blob.core.windows.net/media/x/y.bin\
             ?sv=2020-12-06&spr=https&se=2024-03-01T00%3A59%3A59Z&sr=b&sp=cw\
             &sig=cenP60Zw7gO5BJG%2FQDag0CQDCpvASSE7Gk06Ya%2FJSic%3D"
        );
        assert_eq!(
            signed.headers,
            [
                ("x-ms-blob-type", "BlockBlob".to_string()),
                (
                    "x-ms-blob-content-type",
                    "application/octet-stream".to_string()
                ),
            ]
        );
    }

    #[test]
    fn one_presigner_can_serve_every_thread() {
        fn shareable<T: Send + Sync>() {}
        shareable::<AzurePresigner>();
    }

    #[test]
    fn rejects_bad_configuration() {
        let config = AzureSasConfig {
            endpoint: "http://127.0.0.1:10000/devstoreaccount1".into(),
            account: "devstoreaccount1".into(),
            account_key: AZURITE_KEY.into(),
            container: "container".into(),
        };
        let field = |config: AzureSasConfig| match AzurePresigner::new(config) {
            Err(Error::InvalidConfig { field, .. }) => field,
            Err(other) => panic!("{other:?}"),
            Ok(_) => panic!("accepted"),
        };
        let not_base64 = AzureSasConfig {
            account_key: "not base64!".into(),
            ..config.clone()
        };
        assert_eq!(field(not_base64), "accountKey");
        assert_eq!(
            field(AzureSasConfig {
                account_key: String::new(),
                ..config.clone()
            }),
            "accountKey"
        );
        assert_eq!(
            field(AzureSasConfig {
                container: "a/b".into(),
                ..config.clone()
            }),
            "container"
        );
        assert_eq!(
            field(AzureSasConfig {
                endpoint: "127.0.0.1:10000".into(),
                ..config
            }),
            "endpoint"
        );
        let too_long = PresignRequest {
            expires_in: 604_801,
            ..get(KEY, NOW)
        };
        let err = azurite().presign(&too_long).unwrap_err();
        assert!(matches!(err, Error::InvalidConfig { field, .. } if field == "expiresIn"));
    }
}
