//! The manager's configuration (`new StorageManager({...})`), validated up front so
//! that bad settings fail at construction with `INVALID_CONFIG` naming the field.

use std::collections::BTreeMap;
use std::ffi::OsStr;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use crate::dual::PresignSettings;
use crate::error::{Error, Result};
use crate::store::TransferConfig;
use crate::store::headers::check_header_value;
use crate::store::options::{StoreOptions, check_endpoint};
use crate::tier::TierConfig;

/// Where writes go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Today's app: local disk only.
    Local,
    /// Both sides, concurrently; succeeds when at least one side does.
    Dual,
    /// Cloud only; local disk is a read fallback.
    Cloud,
}

/// Which side reads try first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReadPreference {
    CloudFirst,
    LocalFirst,
}

#[derive(Debug, Clone, Default)]
pub struct Config {
    pub local: Option<String>,
    pub cloud: Option<String>,
    pub cloud_options: StoreOptions,
    pub mode: Option<String>,
    pub read: Option<String>,
    pub journal: Option<PathBuf>,
    /// Extension (without the dot) → `Cache-Control`, over the built-in defaults.
    pub cache_control: BTreeMap<String, String>,
    pub concurrency: Option<u32>,
    pub part_size: Option<u64>,
    pub multipart_threshold: Option<u64>,
    /// How long dual mode stops waiting on a cloud found down (default 5 s; 0: never).
    pub outage_cooldown_ms: Option<u32>,
    pub presign: PresignSettings,
    pub tiers: TierConfig,
}

/// S3's limits on multipart parts.
pub const PART_SIZE: RangeInclusive<u64> = 5 * 1024 * 1024..=5 * 1024 * 1024 * 1024;

/// How long dual mode goes without the cloud after finding it down.
pub const OUTAGE_COOLDOWN_MS: u32 = 5_000;

/// Transfers (and a migration's workers) at once.
pub const CONCURRENCY: RangeInclusive<u32> = 1..=256;

impl Config {
    pub fn mode(&self) -> Result<Mode> {
        match self.mode.as_deref() {
            Some("local") => Ok(Mode::Local),
            Some("dual") => Ok(Mode::Dual),
            Some("cloud") => Ok(Mode::Cloud),
            Some(other) => Err(Error::config(
                "mode",
                format!("{other:?} is not 'local', 'dual' or 'cloud'"),
            )),
            None => Ok(match (&self.local, &self.cloud) {
                (Some(_), Some(_)) => Mode::Dual,
                (None, Some(_)) => Mode::Cloud,
                _ => Mode::Local,
            }),
        }
    }

    pub fn read_preference(&self) -> Result<ReadPreference> {
        match self.read.as_deref() {
            None | Some("cloud-first") => Ok(ReadPreference::CloudFirst),
            Some("local-first") => Ok(ReadPreference::LocalFirst),
            Some(other) => Err(Error::config(
                "read",
                format!("{other:?} is not 'cloud-first' or 'local-first'"),
            )),
        }
    }

    pub fn transfer(&self) -> Result<TransferConfig> {
        let d = TransferConfig::default();
        let part_size = self.part_size.unwrap_or(d.part_size as u64);
        if !PART_SIZE.contains(&part_size) {
            return Err(Error::config(
                "partSize",
                "must be between 5 MiB and 5 GiB (S3's part limits)",
            ));
        }
        let concurrency = self.concurrency.unwrap_or(d.concurrency as u32);
        if !CONCURRENCY.contains(&concurrency) {
            return Err(Error::config("concurrency", "must be between 1 and 256"));
        }
        // A part size above the default threshold raises it: a threshold the app never
        // set refused a part size inside its documented range.
        let multipart_threshold = self
            .multipart_threshold
            .unwrap_or(d.multipart_threshold.max(part_size));
        if multipart_threshold < part_size {
            return Err(Error::config(
                "multipartThreshold",
                format!(
                    "{multipart_threshold} is below partSize ({part_size}): set it to at least partSize"
                ),
            ));
        }
        Ok(TransferConfig {
            part_size: part_size as usize,
            multipart_threshold,
            concurrency: concurrency as usize,
            ..d
        })
    }

    /// Checks everything that can be checked without touching a store.
    pub fn validate(&self) -> Result<()> {
        let mode = self.mode()?;
        self.read_preference()?;
        self.transfer()?;
        if self.local.is_none() && self.cloud.is_none() {
            return Err(Error::config(
                "local",
                "give a local folder, a cloud URL, or both",
            ));
        }
        if mode != Mode::Cloud && self.local.is_none() {
            return Err(Error::config("local", "required unless mode is 'cloud'"));
        }
        if mode != Mode::Local && self.cloud.is_none() {
            return Err(Error::config("cloud", "required unless mode is 'local'"));
        }
        if let Some(local) = &self.local {
            check_path("local", local.as_ref())?;
        }
        if let Some(journal) = &self.journal {
            check_path("journal", journal.as_os_str())?;
            // SQLite keeps `:memory:` in memory: the journal would not survive a crash.
            if journal.as_os_str() == ":memory:" {
                return Err(Error::config(
                    "journal",
                    "must be a file: an in-memory journal would not survive a crash",
                ));
            }
        }
        let tiered = self.tiers.warm.is_some() || self.tiers.cold.is_some();
        if tiered && self.journal.is_none() && self.local.is_none() {
            return Err(Error::config(
                "tiers",
                "tiers keep ages in the journal: set `local` or `journal`",
            ));
        }
        self.presign.validate()?;
        for (ext, value) in &self.cache_control {
            check_header_value(&format!("cacheControl.{ext}"), value)?;
        }
        Ok(())
    }

    /// `StorageManager.fromEnv()`: S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET
    /// S3_REGION S3_USE_SSL STOWAGE_LOCAL STOWAGE_MODE; AWS_* and AZURE_STORAGE_* are
    /// read by the store builders themselves.
    pub fn from_env(var: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let mut config = Config {
            local: var("STOWAGE_LOCAL"),
            mode: var("STOWAGE_MODE"),
            ..Config::default()
        };
        config
            .mode()
            .map_err(|_| Error::config("STOWAGE_MODE", "must be local, dual or cloud"))?;
        config.apply_env_cloud(&var)?;
        Ok(config)
    }

    /// Fills an omitted `cloud` from the S3_* variables.
    pub fn apply_env_cloud(&mut self, var: &impl Fn(&str) -> Option<String>) -> Result<()> {
        let Some(bucket) = var("S3_BUCKET").filter(|_| self.cloud.is_none()) else {
            return Ok(());
        };
        // `s3://b` here would be the bucket `s3` with the prefix `b`.
        if bucket.contains("://") || bucket.contains(char::is_whitespace) {
            return Err(Error::config(
                "S3_BUCKET",
                "must be a bucket name (or bucket/prefix), not a URL",
            ));
        }
        self.cloud = Some(format!("s3://{bucket}"));
        let o = &mut self.cloud_options;
        let use_ssl = env_flag("S3_USE_SSL", var("S3_USE_SSL"))?;
        let allow_field = match o.allow_http {
            Some(_) => "cloudOptions.allowHttp",
            None => "S3_USE_SSL",
        };
        let from_variable = o.endpoint.is_none() && var("S3_ENDPOINT").is_some();
        o.endpoint = o.endpoint.take().or_else(|| {
            var("S3_ENDPOINT").map(|e| match (e.contains("://"), use_ssl) {
                (true, _) => e,
                (false, Some(false)) => format!("http://{e}"),
                (false, _) => format!("https://{e}"),
            })
        });
        // Without an endpoint S3_USE_SSL has none to say the scheme of; taken as
        // `allowHttp: false`, it refused AWS_ENDPOINT_URL's `http://` in its name.
        if let (None, Some(endpoint)) = (o.allow_http, &o.endpoint) {
            o.allow_http = Some(use_ssl.map_or_else(|| is_http(endpoint), |ssl| !ssl));
        }
        // Checked here to name the variables: the store would name options the app never set.
        if let (true, Some(endpoint)) = (from_variable, &o.endpoint) {
            check_endpoint(endpoint, o.allow_http, "S3_ENDPOINT", allow_field)?;
        }
        for (option, name) in [
            (&mut o.access_key_id, "S3_ACCESS_KEY"),
            (&mut o.secret_access_key, "S3_SECRET_KEY"),
            (&mut o.region, "S3_REGION"),
        ] {
            if option.is_none() {
                *option = header_variable(var, name)?;
            }
        }
        Ok(())
    }
}

/// Whitespace at either end of a path is a quoting slip far more often than a name
/// (`STOWAGE_LOCAL=" ./uploads"`), and taken as given it makes a folder nobody meant.
fn check_path(field: &str, path: &OsStr) -> Result<()> {
    let text = path.to_string_lossy();
    if text.is_empty() {
        return Err(Error::config(field, "is empty"));
    }
    if text.trim() != text {
        return Err(Error::config(
            field,
            format!("{text:?} has whitespace at its start or end"),
        ));
    }
    Ok(())
}

/// A variable sent in a header (a key, a region), checked under its own name: the
/// store would name the option the app never set.
fn header_variable(var: &impl Fn(&str) -> Option<String>, name: &str) -> Result<Option<String>> {
    var(name)
        .map(|value| check_header_value(name, &value).map(|()| value))
        .transpose()
}

fn is_http(endpoint: &str) -> bool {
    endpoint
        .get(.."http://".len())
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("http://"))
}

/// A variable of the process's environment; an empty one is unset, as a shell's
/// `S3_BUCKET=` or an empty line of a `.env` file means.
pub fn env_var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// A yes/no variable (S3_USE_SSL, AWS_ALLOW_HTTP…). Anything else is refused rather
/// than read as "yes": `FALSE` or `off` taken for true would send the keys to an
/// `https://` endpoint that is not there, and the app would only learn of it from
/// its first failed request.
pub fn env_flag(name: &str, value: Option<String>) -> Result<Option<bool>> {
    let Some(value) = value else {
        return Ok(None);
    };
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(Some(true)),
        "false" | "0" | "no" | "off" => Ok(Some(false)),
        _ => Err(Error::config(
            name,
            format!("{value:?} is not one of true, false, 1, 0, yes, no, on, off"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(c: &Config) -> String {
        match c.validate() {
            Err(Error::InvalidConfig { field, .. }) => field,
            other => panic!("accepted: {other:?}"),
        }
    }

    #[test]
    fn bad_settings_name_their_field() {
        let base = Config {
            local: Some("./x".into()),
            ..Config::default()
        };
        assert!(base.validate().is_ok());
        assert_eq!(
            field(&Config {
                mode: Some("both".into()),
                ..base.clone()
            }),
            "mode"
        );
        assert_eq!(
            field(&Config {
                read: Some("fast".into()),
                ..base.clone()
            }),
            "read"
        );
        assert_eq!(
            field(&Config {
                part_size: Some(1024),
                ..base.clone()
            }),
            "partSize"
        );
        assert_eq!(
            field(&Config {
                part_size: Some(10 << 20),
                multipart_threshold: Some(6 << 20),
                ..base.clone()
            }),
            "multipartThreshold"
        );
        let large_parts = Config {
            part_size: Some(200 << 20),
            ..base.clone()
        };
        assert_eq!(
            large_parts.transfer().unwrap().multipart_threshold,
            200 << 20
        );
        assert_eq!(
            field(&Config {
                concurrency: Some(0),
                ..base.clone()
            }),
            "concurrency"
        );
        assert_eq!(
            field(&Config {
                mode: Some("dual".into()),
                ..base.clone()
            }),
            "cloud"
        );
        assert_eq!(field(&Config::default()), "local");
        for path in ["", "   ", " ./uploads", "uploads\n"] {
            let local = Config {
                local: Some(path.into()),
                ..base.clone()
            };
            assert_eq!(field(&local), "local", "{path:?}");
            let journal = Config {
                journal: Some(path.into()),
                ..base.clone()
            };
            assert_eq!(field(&journal), "journal", "{path:?}");
        }
        let cloud_only = Config {
            cloud: Some("memory://".into()),
            tiers: TierConfig {
                warm: Some("memory://".into()),
                ..TierConfig::default()
            },
            ..Config::default()
        };
        assert_eq!(field(&cloud_only), "tiers");
        assert!(
            Config {
                journal: Some("/tmp/j.db".into()),
                ..cloud_only
            }
            .validate()
            .is_ok()
        );
    }

    #[test]
    fn env_builds_an_s3_cloud() {
        let env = |k: &str| {
            [
                ("S3_BUCKET", "b"),
                ("S3_ENDPOINT", "127.0.0.1:9000"),
                ("S3_USE_SSL", "false"),
                ("S3_SECRET_KEY", "s"),
                ("STOWAGE_LOCAL", "/tmp/x"),
            ]
            .iter()
            .find(|(n, _)| *n == k)
            .map(|(_, v)| v.to_string())
        };
        let c = Config::from_env(env).unwrap();
        assert_eq!(c.cloud.as_deref(), Some("s3://b"));
        assert_eq!(
            c.cloud_options.endpoint.as_deref(),
            Some("http://127.0.0.1:9000")
        );
        assert_eq!(c.cloud_options.allow_http, Some(true));
        assert_eq!(c.mode().unwrap(), Mode::Dual);
    }
}
