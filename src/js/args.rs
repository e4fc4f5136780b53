//! Arguments as JavaScript passed them. napi converts a parameter before the method
//! runs and, on a wrong type, throws its own codes (`StringExpected`, `InvalidArg`)
//! with Rust type names in the message. [`Arg`] keeps that failure instead, so the
//! method reports it as the API's `INVALID_KEY` or `INVALID_CONFIG`, naming the
//! argument or option, the way it reports any other bad input: an async method
//! rejects its promise, a sync one throws.

use std::collections::HashMap;

use napi::bindgen_prelude::{FromNapiValue, Status, TypeName, Utf16String, ValueType};
use napi::sys;

use crate::error::{Error, Result};
use crate::key::Key;

/// A parameter converted by napi, or why it could not be.
pub struct Arg<T> {
    value: std::result::Result<T, napi::Error>,
    /// What the caller passed, as a message names it: `a number`, `null`, …
    got: &'static str,
}

impl<T: FromNapiValue> FromNapiValue for Arg<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let converted = unsafe { T::from_napi_value(env, value) };
        if converted.is_err() {
            unsafe { clear_pending_exception(env) };
        }
        Ok(Arg {
            value: converted,
            got: unsafe { js_type(env, value) },
        })
    }
}

/// An options object read from `null` (`{ window: null }`) fails inside V8, which
/// leaves a `TypeError` pending: it would be thrown, with no `code`, over the API's
/// own error for that option.
pub(super) unsafe fn clear_pending_exception(env: sys::napi_env) {
    let mut pending = false;
    if unsafe { sys::napi_is_exception_pending(env, &mut pending) } == sys::Status::napi_ok
        && pending
    {
        let mut exception = std::ptr::null_mut();
        unsafe { sys::napi_get_and_clear_last_exception(env, &mut exception) };
    }
}

impl<T> Arg<T> {
    /// The value, or `INVALID_CONFIG`: `name` must be `expected`, not what was passed.
    pub fn config(self, name: &str, expected: &str) -> Result<T> {
        let got = self.got;
        self.value
            .map_err(|_| Error::config(name, format!("must be {expected}, not {got}")))
    }

    /// An options object, or `INVALID_CONFIG` naming the argument when it is not an
    /// object, or the option whose value has the wrong type.
    pub fn options(self) -> Result<T> {
        if self.got != "an object" {
            return Err(Error::config(
                "options",
                format!("must be an object, not {}", self.got),
            ));
        }
        self.value.map_err(|e| option_error(e.status, &e.reason))
    }
}

/// Optional options: their defaults when absent (`undefined` or `null`).
pub fn options<T: Default>(arg: Option<Arg<T>>) -> Result<T> {
    arg.map_or_else(|| Ok(T::default()), Arg::options)
}

impl Arg<f64> {
    /// A byte offset or an id: a whole number up to 2⁵³ − 1.
    pub fn safe_integer(self, name: &str) -> Result<u64> {
        self.config(name, "a number")
            .and_then(|n| super::numbers::safe_integer(name, n))
    }
}

impl Arg<String> {
    /// A file's path: `INVALID_CONFIG` when it is not a string or is empty, which the
    /// file system would answer as a missing file, `NOT_FOUND`, as if the object were.
    pub fn path(self, name: &str) -> Result<String> {
        let path = self.config(name, "a string")?;
        match path.is_empty() {
            true => Err(Error::config(name, "is empty")),
            false => Ok(path),
        }
    }
}

/// A string passed as a key. napi reads a JS string as UTF-8 with each lone UTF-16
/// surrogate replaced by U+FFFD, so `'a\ud800'` and `'a\udc00'` would name one
/// object; such a string is refused here instead.
pub struct KeyText(String);

impl FromNapiValue for KeyText {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let text = unsafe { String::from_napi_value(env, value) }?;
        // A replaced surrogate shows as U+FFFD; the string may also hold a real one,
        // so only then is it read again as UTF-16 to tell which.
        if text.contains(char::REPLACEMENT_CHARACTER) {
            let units = unsafe { Utf16String::from_napi_value(env, value) }?;
            if char::decode_utf16(units.iter().copied()).any(|c| c.is_err()) {
                return Err(napi::Error::new(Status::InvalidArg, LONE_SURROGATE));
            }
        }
        Ok(KeyText(text))
    }
}

const LONE_SURROGATE: &str = "holds a lone UTF-16 surrogate, which no store can name";

impl Arg<KeyText> {
    /// A key: `INVALID_KEY` when it is not a string, or breaks a rule of [`Key::parse`].
    pub fn key(self, name: &str) -> Result<Key> {
        Key::parse(&self.text(name)?)
    }

    /// The key's text, not yet checked against the key rules: `INVALID_KEY` when it
    /// is not a string, or not one that UTF-8 can hold.
    pub fn text(self, name: &str) -> Result<String> {
        let got = self.got;
        match self.value {
            Ok(KeyText(text)) => Ok(text),
            Err(_) if got == "a string" => {
                Err(Error::KeyType(format!("`{name}` {LONE_SURROGATE}")))
            }
            Err(_) => Err(Error::KeyType(format!(
                "`{name}` must be a string, not {got}"
            ))),
        }
    }
}

/// An object nested in options (`cloudOptions`, `tiers`, `metadata`, …). napi's own
/// conversion reads the fields of whatever it is given, so `tiers: 'cold'` passed for
/// an empty object, and its map conversion took a number for an empty map and threw a
/// bare `TypeError` on `null`; anything but an object is `INVALID_CONFIG` naming the
/// option here. Fields of this type give their TypeScript type with `ts_type`.
#[derive(Debug, Default)]
pub struct Nested<T>(pub T);

/// A `Record<string, string>` option (metadata, cache policies).
pub type StringMap = Nested<HashMap<String, String>>;

impl<T> TypeName for Nested<T> {
    fn type_name() -> &'static str {
        "object"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl<T: FromNapiValue> FromNapiValue for Nested<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        if unsafe { js_type(env, value) } != "an object" {
            return Err(napi::Error::new(
                Status::ObjectExpected,
                "expected an object",
            ));
        }
        Ok(Nested(unsafe { T::from_napi_value(env, value) }?))
    }
}

/// An option where `null` says "none" and `undefined` "the default": `cloud: null` is
/// no cloud, where an omitted `cloud` is `S3_BUCKET`'s. napi reads both as `None`.
#[derive(Debug)]
pub enum OrNull<T> {
    Value(T),
    Null,
}

impl<T> TypeName for OrNull<T> {
    fn type_name() -> &'static str {
        "value or null"
    }

    fn value_type() -> ValueType {
        ValueType::Unknown
    }
}

impl<T: FromNapiValue> FromNapiValue for OrNull<T> {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        match unsafe { js_type(env, value) } {
            "null" => Ok(OrNull::Null),
            _ => Ok(OrNull::Value(unsafe { T::from_napi_value(env, value) }?)),
        }
    }
}

/// A `Date` option, in milliseconds since the epoch. napi's own conversion read an
/// invalid date (`new Date('garbage')`) as 1970.
#[derive(Debug)]
pub struct ValidDate(pub i64);

impl TypeName for ValidDate {
    fn type_name() -> &'static str {
        "Date"
    }

    fn value_type() -> ValueType {
        ValueType::Object
    }
}

impl FromNapiValue for ValidDate {
    unsafe fn from_napi_value(env: sys::napi_env, value: sys::napi_value) -> napi::Result<Self> {
        let mut is_date = false;
        let mut ms = f64::NAN;
        let _ = unsafe { sys::napi_is_date(env, value, &mut is_date) };
        if is_date {
            let _ = unsafe { sys::napi_get_date_value(env, value, &mut ms) };
        }
        // JS dates reach 275,760 years either side of 1970, past what reports carry.
        let valid = ms.is_finite() && chrono::DateTime::from_timestamp_millis(ms as i64).is_some();
        if !valid {
            let what = if is_date { "a valid Date" } else { "a Date" };
            return Err(napi::Error::new(
                Status::DateExpected,
                format!("expected {what}"),
            ));
        }
        Ok(ValidDate(ms as i64))
    }
}

/// The JS type of `value` in words, for messages.
unsafe fn js_type(env: sys::napi_env, value: sys::napi_value) -> &'static str {
    let mut kind = 0;
    if unsafe { sys::napi_typeof(env, value, &mut kind) } != sys::Status::napi_ok {
        return "a value of unknown type";
    }
    match kind {
        sys::ValueType::napi_undefined => "undefined",
        sys::ValueType::napi_null => "null",
        sys::ValueType::napi_boolean => "a boolean",
        sys::ValueType::napi_number => "a number",
        sys::ValueType::napi_string => "a string",
        sys::ValueType::napi_symbol => "a symbol",
        sys::ValueType::napi_function => "a function",
        sys::ValueType::napi_bigint => "a bigint",
        _ => {
            let mut array = false;
            let _ = unsafe { sys::napi_is_array(env, value, &mut array) };
            if array { "an array" } else { "an object" }
        }
    }
}

/// `INVALID_CONFIG` for a field of an options object. napi names the field only in
/// its message, as `… on PutOpts.contentType`, once per level of nesting
/// (`… on CloudOptions.endpoint on StorageOptions.cloudOptions`); a missing
/// required field reads ``Missing field `width` …``.
fn option_error(status: Status, reason: &str) -> Error {
    let mut rest = reason;
    let mut path = Vec::new();
    while let Some((head, at)) = rest.rsplit_once(" on ") {
        match at.split_once('.') {
            Some((_, field)) if is_identifier(field) => path.push(field),
            _ => break,
        }
        rest = head;
    }
    let missing = rest
        .strip_prefix("Missing field `")
        .and_then(|r| r.strip_suffix('`'));
    path.extend(missing);
    let field = if path.is_empty() {
        "options".to_owned()
    } else {
        path.join(".")
    };
    // A map's or an array's element names the field too: "expected", not "must be".
    let reason = match (missing, expected(status, rest)) {
        (Some(_), _) => "is required".to_owned(),
        (None, Some(kind)) => format!("expected {kind}"),
        (None, None) => "has the wrong type".to_owned(),
    };
    Error::config(field, reason)
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// The type napi wanted, by its status; a callback fails to become a threadsafe
/// function with a plain `InvalidArg`.
fn expected(status: Status, reason: &str) -> Option<&'static str> {
    Some(match status {
        Status::InvalidArg if reason.contains("threadsafe function") => "a function",
        Status::StringExpected => "a string",
        Status::NumberExpected => "a number",
        Status::BooleanExpected => "a boolean",
        Status::ObjectExpected => "an object",
        Status::FunctionExpected => "a function",
        Status::ArrayExpected => "an array",
        Status::BigintExpected => "a bigint",
        Status::DateExpected if reason.contains("valid Date") => "a valid Date",
        Status::DateExpected => "a Date",
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(status: Status, reason: &str) -> String {
        option_error(status, reason).to_string()
    }

    #[test]
    fn names_the_field_through_every_level() {
        assert_eq!(
            message(
                Status::StringExpected,
                "Failed to convert JavaScript value `Number 5 ` into rust type `String` \
                 on CloudOptions.endpoint on StorageOptions.cloudOptions"
            ),
            "invalid cloudOptions.endpoint: expected a string"
        );
    }

    #[test]
    fn a_callback_is_a_function() {
        assert_eq!(
            message(
                Status::InvalidArg,
                "Create threadsafe function in ThreadsafeFunction::create failed \
                 on PutOpts.onProgress"
            ),
            "invalid onProgress: expected a function"
        );
    }

    #[test]
    fn a_missing_field_is_required() {
        assert_eq!(
            message(
                Status::InvalidArg,
                "Missing field `width` on DicomRenderOptions.window"
            ),
            "invalid window.width: is required"
        );
    }

    #[test]
    fn an_unplaced_failure_names_the_options() {
        assert_eq!(
            message(Status::InvalidArg, "Value is none of these types"),
            "invalid options: has the wrong type"
        );
    }
}
