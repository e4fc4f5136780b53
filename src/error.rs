//! The one error type of the crate. Each variant has a stable `code` that the Node
//! binding exposes as `err.code`; messages never carry secrets (see `store::redact`).

/// Every failure stowage reports.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    #[error("object not found: {key}")]
    NotFound { key: String },
    #[error("object already exists: {key}")]
    AlreadyExists { key: String },
    /// `key` is already escaped and shortened for messages.
    #[error("invalid key \"{key}\": {reason}")]
    InvalidKey {
        key: String,
        reason: std::borrow::Cow<'static, str>,
    },
    /// What was passed as a key is not a string at all.
    #[error("invalid key: {0}")]
    KeyType(String),
    #[error("invalid {field}: {reason}")]
    InvalidConfig { field: String, reason: String },
    #[error("access denied: {0}")]
    AccessDenied(String),
    #[error("no such bucket or container: {0}")]
    NoSuchBucket(String),
    #[error("timed out: {0}")]
    Timeout(String),
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    #[error("precondition failed: {0}")]
    PreconditionFailed(String),
    #[error("integrity check failed: {0}")]
    Integrity(String),
    #[error("aborted: {0}")]
    Aborted(String),
    #[error("signature is invalid: {0}")]
    SignatureInvalid(String),
    #[error("signature has expired: {0}")]
    SignatureExpired(String),
    #[error("invalid DICOM: {0}")]
    DicomInvalid(String),
    #[error("unsupported DICOM: {0}")]
    DicomUnsupported(String),
    /// A local file outside a store's own objects failed: `putFile`'s source,
    /// `getToFile`'s destination, a file a copy reads or spools through. It keeps its
    /// cause's code, but no store failed, so dual mode neither tries the other side
    /// nor marks the cloud down (a full disk under a download did).
    #[error(transparent)]
    LocalFile(Box<Error>),
}

impl Error {
    /// The stable code a caller can switch on (`err.code` in JavaScript).
    pub fn code(&self) -> &'static str {
        match self {
            Error::NotFound { .. } => "NOT_FOUND",
            Error::AlreadyExists { .. } => "ALREADY_EXISTS",
            Error::InvalidKey { .. } | Error::KeyType(_) => "INVALID_KEY",
            Error::InvalidConfig { .. } => "INVALID_CONFIG",
            Error::AccessDenied(_) => "ACCESS_DENIED",
            Error::NoSuchBucket(_) => "NO_SUCH_BUCKET",
            Error::Timeout(_) => "TIMEOUT",
            Error::Unavailable(_) => "UNAVAILABLE",
            Error::PreconditionFailed(_) => "PRECONDITION_FAILED",
            Error::Integrity(_) => "INTEGRITY",
            Error::Aborted(_) => "ABORTED",
            Error::SignatureInvalid(_) => "SIGNATURE_INVALID",
            Error::SignatureExpired(_) => "SIGNATURE_EXPIRED",
            Error::DicomInvalid(_) => "DICOM_INVALID",
            Error::DicomUnsupported(_) => "DICOM_UNSUPPORTED",
            Error::LocalFile(cause) => cause.code(),
        }
    }

    pub fn config(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::InvalidConfig {
            field: field.into(),
            reason: reason.into(),
        }
    }

    /// A task on the blocking pool that panicked or was cancelled; `what` names its work.
    pub fn task_failed(what: &str, err: impl std::fmt::Display) -> Self {
        Error::Unavailable(format!("{what} task failed: {err}"))
    }

    /// Local file-system failures, classified by what the caller can do about them.
    pub fn from_io(err: std::io::Error, what: &str) -> Self {
        use std::io::ErrorKind;
        match err.kind() {
            // A path through a file cannot exist either.
            ErrorKind::NotFound | ErrorKind::NotADirectory => Error::NotFound { key: what.into() },
            _ if names_no_possible_file(&err) => Error::config("path", format!("{what}: {err}")),
            ErrorKind::PermissionDenied => Error::AccessDenied(format!("{what}: {err}")),
            ErrorKind::AlreadyExists => Error::AlreadyExists { key: what.into() },
            ErrorKind::TimedOut => Error::Timeout(format!("{what}: {err}")),
            _ => Error::Unavailable(format!("{what}: {err}")),
        }
    }

    /// [`Self::from_io`] for a local file that is no store's object.
    pub fn from_file_io(err: std::io::Error, what: &str) -> Self {
        Error::LocalFile(Box::new(Self::from_io(err, what)))
    }

    /// Whether another attempt (or the other side of a dual store) may succeed.
    pub fn is_outage(&self) -> bool {
        matches!(self, Error::Timeout(_) | Error::Unavailable(_))
    }
}

/// A name too long, a symlink loop or a NUL byte: no retry or fallback can help.
fn names_no_possible_file(err: &std::io::Error) -> bool {
    use std::io::ErrorKind;
    matches!(
        err.kind(),
        ErrorKind::InvalidFilename | ErrorKind::InvalidInput
    ) || err.raw_os_error() == Some(libc::ELOOP)
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
