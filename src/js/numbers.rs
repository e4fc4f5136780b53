//! Numbers from JavaScript. Numeric options arrive as `f64` and are checked here,
//! naming the option: napi's own integer conversions wrap or truncate without a word
//! (`-1` became 4294967295 retries, `2 ** 32 + 4` a concurrency of 4, `NaN` zero).

use std::ops::RangeInclusive;
use std::time::Duration;

use crate::error::{Error, Result};

/// The largest integer a JS number holds exactly.
const MAX_SAFE_INTEGER: u64 = (1 << 53) - 1;

/// A whole number in `min..=max`, or `INVALID_CONFIG` naming `field`.
pub fn whole(field: &str, value: f64, min: u64, max: u64) -> Result<u64> {
    // NaN and ±Infinity fail the first test: their fractional part is NaN.
    if value.fract() != 0.0 || value < min as f64 || value > max as f64 {
        return Err(Error::config(
            field,
            format!(
                "must be a whole number in {min}..={max}, got {}",
                as_js(value)
            ),
        ));
    }
    Ok(value as u64)
}

/// How JavaScript prints the number, so the message shows what the caller wrote.
fn as_js(value: f64) -> String {
    match value {
        f64::INFINITY => "Infinity".into(),
        f64::NEG_INFINITY => "-Infinity".into(),
        v => v.to_string(),
    }
}

/// A whole number in `min..=max`, all within `u32`.
pub fn whole_u32(field: &str, value: f64, min: u32, max: u32) -> Result<u32> {
    whole(field, value, min.into(), max.into()).map(|n| n as u32)
}

/// An optional count, size or duration that fits a `u32`.
pub fn u32_option(field: &str, value: Option<f64>) -> Result<Option<u32>> {
    u32_in(field, value, 0..=u32::MAX)
}

/// An optional byte count or limit, up to 2⁵³ − 1.
pub fn u64_option(field: &str, value: Option<f64>) -> Result<Option<u64>> {
    u64_in(field, value, 0..=MAX_SAFE_INTEGER)
}

/// An optional number the core limits to `range`, checked against that range here,
/// so a value past the type's own limit is not reported with the type's range.
pub fn u32_in(field: &str, value: Option<f64>, range: RangeInclusive<u32>) -> Result<Option<u32>> {
    let (min, max) = range.into_inner();
    value.map(|v| whole_u32(field, v, min, max)).transpose()
}

/// [`u32_in`] for byte counts and seconds.
pub fn u64_in(field: &str, value: Option<f64>, range: RangeInclusive<u64>) -> Result<Option<u64>> {
    let (min, max) = range.into_inner();
    value.map(|v| whole(field, v, min, max)).transpose()
}

/// A background service's period: `intervalMs`, else `default_ms`; at least 10 ms,
/// so a service cannot spin.
pub fn interval_ms(value: Option<f64>, default_ms: u32) -> Result<Duration> {
    let ms = value.map_or(Ok(default_ms), |v| whole_u32("intervalMs", v, 0, u32::MAX))?;
    Ok(Duration::from_millis(ms.max(10).into()))
}

/// A byte offset or an id: a whole number up to 2⁵³ − 1.
pub fn safe_integer(field: &str, value: f64) -> Result<u64> {
    whole(field, value, 0, MAX_SAFE_INTEGER)
}

/// The end of a byte range: an offset, or `Infinity` for "to the end", as Node's
/// `fs.createReadStream` takes it.
pub fn range_end(field: &str, value: f64) -> Result<u64> {
    if value == f64::INFINITY {
        return Ok(u64::MAX);
    }
    safe_integer(field, value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_whole_numbers_in_range_pass() {
        assert_eq!(whole("n", 0.0, 0, 10).unwrap(), 0);
        assert_eq!(whole("n", 10.0, 0, 10).unwrap(), 10);
        assert_eq!(
            u64_option("n", Some(2f64.powi(53) - 1.0)).unwrap(),
            Some(MAX_SAFE_INTEGER)
        );
        assert_eq!(u32_option("n", None).unwrap(), None);
        assert_eq!(as_js(f64::INFINITY), "Infinity");
        assert_eq!(as_js(f64::NAN), "NaN");
        for bad in [-1.0, 1.5, 11.0, f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = whole("n", bad, 0, 10).unwrap_err();
            assert_eq!(err.code(), "INVALID_CONFIG", "{bad}");
            assert!(
                err.to_string().contains(&format!("got {}", as_js(bad))),
                "{err}"
            );
        }
        assert!(u32_option("n", Some(2f64.powi(32) + 4.0)).is_err());
        assert!(u64_option("n", Some(2f64.powi(53))).is_err());
        assert_eq!(range_end("end", f64::INFINITY).unwrap(), u64::MAX);
        assert!(range_end("end", f64::NAN).is_err());
    }
}
