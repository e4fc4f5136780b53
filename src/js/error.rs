//! Core errors become JS `Error`s whose `code` is the stable code, both when thrown
//! synchronously and when a promise rejects.

use std::future::Future;

use napi::bindgen_prelude::{PromiseRaw, ToNapiValue};
use napi::{Env, JsError};

use crate::error::Error;

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
