//! Core errors become JS `Error`s whose `code` is the stable code, both when thrown
//! synchronously and when a promise rejects.

use std::future::Future;

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{Env, JsError};
use napi_derive::napi;

use crate::error::Error;

/// The stable codes an `Error` from stowage carries as `err.code`:
/// `err.code === ErrorCode.NotFound` is `err.code === 'NOT_FOUND'`.
// The core's `Error::code` gives these strings; __test__/errors.test.js holds the
// two lists, and API.md's, to each other.
#[napi(string_enum = "UPPER_SNAKE")]
pub enum ErrorCode {
    NotFound,
    AlreadyExists,
    InvalidKey,
    InvalidConfig,
    AccessDenied,
    NoSuchBucket,
    Timeout,
    Unavailable,
    PreconditionFailed,
    Integrity,
    Aborted,
    SignatureInvalid,
    SignatureExpired,
    DicomInvalid,
    DicomUnsupported,
}

pub fn to_js(env: &Env, err: Error) -> napi::Error {
    let js = JsError::from(napi::Error::new(err.code(), err.to_string()));
    napi::Error::from(js.into_unknown(*env))
}

/// Runs `fut` on the addon's tokio runtime and converts its output on the JS thread.
pub fn promise<'env, T, V, F, C>(
    env: &'env Env,
    fut: F,
    convert: C,
) -> napi::Result<PromiseRaw<'env, V>>
where
    T: Send + 'static,
    V: ToNapiValue,
    F: Future<Output = crate::error::Result<T>> + Send + 'static,
    C: FnOnce(&Env, T) -> napi::Result<V> + 'static,
{
    env.spawn_future_with_callback(async move { Ok(fut.await) }, move |env, out| match out {
        Ok(value) => convert(env, value),
        Err(err) => Err(to_js(env, err)),
    })
}
