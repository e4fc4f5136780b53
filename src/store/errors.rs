//! Translation of `object_store` failures into stowage's stable codes, with every
//! configured secret scrubbed from the text.

use crate::error::Error;
use crate::key::Key;

/// Values that must never appear in a message (keys, passwords, connection strings).
#[derive(Debug, Clone, Default)]
pub struct Secrets(Vec<String>);

impl Secrets {
    pub fn add(&mut self, secret: Option<&str>) {
        if let Some(s) = secret.filter(|s| s.len() >= 4) {
            self.0.push(s.to_owned());
        }
    }

    pub fn redact(&self, text: &str) -> String {
        self.0.iter().fold(text.to_owned(), |text, secret| {
            text.replace(secret.as_str(), "[redacted]")
        })
    }
}

/// Maps a store error for `key` (or the whole store when `None`).
pub fn map_store_error(err: object_store::Error, key: Option<&Key>, secrets: &Secrets) -> Error {
    use object_store::Error as E;
    let what = key.map_or_else(String::new, |k| k.to_string());
    let text = secrets.redact(&error_chain(&err));
    match err {
        E::NotFound { .. } if mentions_missing_bucket(&text) => Error::NoSuchBucket(text),
        E::NotFound { .. } => Error::NotFound { key: what },
        // Azure answers a read of an archived blob with 409, which object_store takes
        // for a taken key; S3 answers a Glacier read with 403.
        E::AlreadyExists { .. } if text.contains("BlobArchived") => Error::AccessDenied(format!(
            "{what} is archived: it cannot be read until it is rehydrated ({text})"
        )),
        E::AlreadyExists { .. } => Error::AlreadyExists { key: what },
        E::Precondition { .. } | E::NotModified { .. } => Error::PreconditionFailed(text),
        E::PermissionDenied { .. } | E::Unauthenticated { .. } => Error::AccessDenied(text),
        E::NotImplemented { .. } | E::NotSupported { .. } => Error::Unavailable(text),
        _ if io_kind(&err) == Some(std::io::ErrorKind::PermissionDenied) => {
            Error::AccessDenied(text)
        }
        _ => classify_generic(text),
    }
}

/// `Generic` errors carry the HTTP exchange as text; the server's error code and the
/// transport failure are the only reliable signals in it.
fn classify_generic(text: String) -> Error {
    let lower = text.to_ascii_lowercase();
    if mentions_missing_bucket(&text) {
        Error::NoSuchBucket(text)
    } else if text.contains("InvalidBucketName") || text.contains("InvalidResourceName") {
        // S3's and Azure's answer to a bucket or container name they don't allow: the
        // configuration is wrong, and retrying or queueing a repair cannot help.
        Error::config("bucket", format!("the server refused the name: {text}"))
    } else if REFUSED_REQUESTS.iter().any(|code| text.contains(code)) {
        Error::config("request", format!("the server refused it: {text}"))
    } else if [
        "accessdenied",
        "signaturedoesnotmatch",
        "invalidaccesskeyid",
        "authenticationfailed",
        "403 forbidden",
        "401 unauthorized",
    ]
    .iter()
    .any(|m| lower.contains(m))
    {
        Error::AccessDenied(text)
    } else if lower.contains("connection refused")
        || lower.contains("(connect)")
        || lower.contains("connection reset")
    {
        Error::Unavailable(text)
    } else if lower.contains("timed out") || lower.contains("operation timeout") {
        Error::Timeout(text)
    } else if lower.contains("nosuchkey") || lower.contains("blobnotfound") {
        Error::NotFound { key: text }
    } else {
        Error::Unavailable(text)
    }
}

/// S3's and Azure's codes for a request that can never succeed as sent (a storage
/// class or header the server does not take, a wrong region): not an outage to wait
/// out or queue a repair for. Their other 400s, such as S3's `RequestTimeout` and
/// `IncompleteBody`, are transient.
const REFUSED_REQUESTS: &[&str] = &[
    "<Code>InvalidArgument<",
    "<Code>InvalidStorageClass<",
    "<Code>InvalidRequest<",
    "<Code>EntityTooLarge<",
    "<Code>AuthorizationHeaderMalformed<",
    "<Code>MetadataTooLarge<",
    "<Code>KeyTooLongError<",
    "<Code>InvalidHeaderValue<",
    "<Code>InvalidMetadata<",
    "<Code>InvalidQueryParameterValue<",
];

fn mentions_missing_bucket(text: &str) -> bool {
    text.contains("NoSuchBucket") || text.contains("ContainerNotFound")
}

/// The kind of the file-system error behind a file store's error, if any.
fn io_kind(err: &(dyn std::error::Error + 'static)) -> Option<std::io::ErrorKind> {
    let mut source = Some(err);
    while let Some(s) = source {
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = s.source();
    }
    None
}

/// The full `source()` chain, since the useful part (status, server code) is nested.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_scrubbed() {
        let mut s = Secrets::default();
        s.add(Some("hunter2-secret"));
        s.add(Some("ab")); // too short to scrub safely
        assert_eq!(s.redact("key=hunter2-secret ab"), "key=[redacted] ab");
    }

    #[test]
    fn generic_errors_are_classified() {
        assert_eq!(
            classify_generic("Code: SignatureDoesNotMatch".into()).code(),
            "ACCESS_DENIED"
        );
        assert_eq!(
            classify_generic("<Code>NoSuchBucket</Code>".into()).code(),
            "NO_SUCH_BUCKET"
        );
        assert_eq!(
            classify_generic(
                "400 Bad Request: <Error><Code>InvalidBucketName</Code></Error>".into()
            )
            .code(),
            "INVALID_CONFIG"
        );
        for refused in [
            "400 Bad Request: <Error><Code>InvalidStorageClass</Code></Error>",
            "400 Bad Request: <?xml version=\"1.0\"?><Error><Code>InvalidHeaderValue</Code>",
        ] {
            assert_eq!(classify_generic(refused.into()).code(), "INVALID_CONFIG");
        }
        let transient = "400 Bad Request: <Error><Code>RequestTimeout</Code></Error>";
        assert_eq!(classify_generic(transient.into()).code(), "UNAVAILABLE");
        assert_eq!(
            classify_generic("operation timed out".into()).code(),
            "TIMEOUT"
        );
        assert_eq!(
            classify_generic("Connection refused".into()).code(),
            "UNAVAILABLE"
        );
        let refused = "Error performing PUT in 101ms, after 1 retries, max_retries: 1, retry_timeout: 1s - HTTP error: error sending request: client error (Connect): tcp connect error: Connection refused";
        assert_eq!(classify_generic(refused.into()).code(), "UNAVAILABLE");
    }
}
