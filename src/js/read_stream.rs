//! `createReadStream`: a Node `Readable` that pulls one chunk per `read()` from a
//! native reader, so backpressure is Node's own and errors keep their `code`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use napi::Env;
use napi::bindgen_prelude::{Function, PromiseRaw, Unknown};
use napi_derive::napi;
use tokio::sync::Mutex;

use super::error::promise;
use super::values::JsBytes;
use crate::dual::Storage;
use crate::error::Result;
use crate::key::Key;

/// Wraps a reader in a `Readable`; `process.getBuiltinModule` needs Node ≥ 20.16.
const FACTORY: &str = r#"(function (reader) {
  const { Readable } = process.getBuiltinModule('node:stream');
  return new Readable({
    read() {
      reader.next().then((chunk) => this.push(chunk), (err) => this.destroy(err));
    },
    destroy(err, callback) {
      reader.close();
      callback(err);
    },
  });
})"#;

/// Each state but `Done` holds the storage, so `close()` waits for a stream that has
/// not ended (its file or connection is still open) as for any other call in flight.
enum State {
    Pending(Arc<Storage>, Key, Option<std::ops::Range<u64>>),
    Open {
        _storage: Arc<Storage>,
        stream: BoxStream<'static, Result<Bytes>>,
    },
    Done,
}

/// The native half of a read stream; not constructed from JavaScript.
#[napi]
pub struct ObjectReader {
    state: Arc<Mutex<State>>,
}

#[napi]
impl ObjectReader {
    /// The next chunk, or `null` at the end. The object is opened on the first call.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<JsBytes>>> {
        let state = self.state.clone();
        promise(
            env,
            async move {
                let mut state = state.lock().await;
                if let State::Pending(storage, key, range) = &*state {
                    let stream = storage.stream(key, range.clone()).await?;
                    *state = State::Open {
                        _storage: storage.clone(),
                        stream,
                    };
                }
                let State::Open { stream, .. } = &mut *state else {
                    return Ok(None);
                };
                match stream.next().await.transpose()? {
                    Some(chunk) => Ok(Some(JsBytes::from(chunk))),
                    None => {
                        *state = State::Done;
                        Ok(None)
                    }
                }
            },
            |_, chunk| Ok(chunk),
        )
    }

    /// Releases the object (a file, a connection) and the storage now, rather than
    /// when the collector finds the reader: a stream destroyed early, say by a
    /// client that went away, would otherwise hold both until then.
    #[napi]
    pub fn close(&self) {
        let state = self.state.clone();
        napi::bindgen_prelude::spawn(async move {
            *state.lock().await = State::Done;
        });
    }
}

pub fn create<'env>(
    env: &'env Env,
    storage: Arc<Storage>,
    key: Key,
    range: Option<std::ops::Range<u64>>,
) -> napi::Result<Unknown<'env>> {
    let reader = ObjectReader {
        state: Arc::new(Mutex::new(State::Pending(storage, key, range))),
    };
    let factory: Function<ObjectReader, Unknown> = env.run_script(FACTORY)?;
    factory.call(reader)
}
