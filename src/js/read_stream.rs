//! `createReadStream`: a Node `Readable` that pulls one chunk per `read()` from a
//! native reader, so backpressure is Node's own and errors keep their `code`.

use std::sync::Arc;

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use napi::Env;
use napi::bindgen_prelude::{Function, JsObjectValue, Object, PromiseRaw, Unknown};
use napi_derive::napi;
use tokio::sync::Mutex;

use super::error::promise;
use super::values::{JsBytes, JsObjectInfo};
use crate::dual::{Side, Storage};
use crate::error::Result;
use crate::key::Key;
use crate::store::object::ObjectInfo;

/// Wraps a reader in a `Readable` (`create`), or opens it first and resolves with the
/// opened version's description and the `Readable` (`open`); `process.getBuiltinModule`
/// needs Node ≥ 20.16.
const FACTORY: &str = r#"(function () {
  const { Readable } = process.getBuiltinModule('node:stream');
  const create = (reader) => new Readable({
    read() {
      reader.next().then((chunk) => this.push(chunk), (err) => this.destroy(err));
    },
    destroy(err, callback) {
      reader.close();
      callback(err);
    },
  });
  const open = (reader) => reader.open().then(
    (info) => ({ info, stream: create(reader) }),
    (err) => { reader.close(); throw err; },
  );
  return { create, open };
})()"#;

/// Each state but `Done` holds the storage, so `close()` waits for a stream that has
/// not ended (its file or connection is still open) as for any other call in flight.
enum State {
    Pending(Arc<Storage>, Key, Option<std::ops::Range<u64>>),
    Open {
        _storage: Arc<Storage>,
        stream: BoxStream<'static, Result<Bytes>>,
    },
    Done,
    /// Bad arguments to `openReadStream`, whose promise rejects with them.
    Refused(crate::error::Error),
}

/// The native half of a read stream; not constructed from JavaScript.
#[napi]
pub struct ObjectReader {
    state: Arc<Mutex<State>>,
    /// Set by `close()`: a read still waiting on the object ends at once, letting go
    /// of the state it holds locked, so `close()` can drop the connection. A server
    /// that stopped answering kept both until the request timed out.
    closed: tokio::sync::watch::Sender<bool>,
}

#[napi]
impl ObjectReader {
    /// Opens the object; resolves with the description of the version it streams.
    #[napi(ts_return_type = "Promise<ObjectInfo>")]
    pub fn open<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, JsObjectInfo>> {
        let (state, closed) = (self.state.clone(), self.closed.subscribe());
        promise(
            env,
            until_closed(closed, async move {
                let mut state = state.lock().await;
                open(&mut state).await?.ok_or_else(|| {
                    crate::error::Error::config("stream", "the stream is already open")
                })
            }),
            |_, (side, info)| Ok(JsObjectInfo::new(side, info)),
        )
    }

    /// The next chunk, or `null` at the end. The object is opened on the first call.
    #[napi(ts_return_type = "Promise<Buffer | null>")]
    pub fn next<'env>(&self, env: &'env Env) -> napi::Result<PromiseRaw<'env, Option<JsBytes>>> {
        let (state, closed) = (self.state.clone(), self.closed.subscribe());
        promise(
            env,
            until_closed(closed, async move {
                let mut state = state.lock().await;
                open(&mut state).await?;
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
            }),
            |_, chunk| Ok(chunk),
        )
    }

    /// Releases the object (a file, a connection) and the storage now, rather than
    /// when the collector finds the reader: a stream destroyed early, say by a
    /// client that went away, would otherwise hold both until then.
    #[napi]
    pub fn close(&self) {
        self.closed.send_replace(true);
        let state = self.state.clone();
        napi::bindgen_prelude::spawn(async move {
            *state.lock().await = State::Done;
        });
    }
}

/// Runs a read of the reader until `close()` is called; a closed reader's read fails
/// with `ABORTED`, which its destroyed stream no longer hands on.
async fn until_closed<T>(
    mut closed: tokio::sync::watch::Receiver<bool>,
    read: impl std::future::Future<Output = Result<T>>,
) -> Result<T> {
    tokio::select! {
        result = read => result,
        _ = closed.wait_for(|closed| *closed) => {
            Err(crate::error::Error::Aborted("the stream was destroyed".into()))
        }
    }
}

/// Opens a pending reader; returns the side and version opened, or `None` when it
/// was open already (or done).
async fn open(state: &mut State) -> Result<Option<(Side, ObjectInfo)>> {
    if let State::Refused(_) = state {
        let State::Refused(e) = std::mem::replace(state, State::Done) else {
            unreachable!("matched above")
        };
        return Err(e);
    }
    let State::Pending(storage, key, range) = &*state else {
        return Ok(None);
    };
    let (side, info, stream) = storage.stream(key, range.clone()).await?;
    *state = State::Open {
        _storage: storage.clone(),
        stream,
    };
    Ok(Some((side, info)))
}

/// How a reader reaches JavaScript: `Create` as a `Readable`, `Open` as a promise of
/// `{ info, stream }`.
pub enum Wrap {
    Create,
    Open,
}

/// The reader of `key` (or of `range`), or the arguments' error: `Create` throws it,
/// as `fs.createReadStream` does, `Open` rejects with it.
pub fn wrap<'env>(
    env: &'env Env,
    args: Result<(Arc<Storage>, Key, Option<std::ops::Range<u64>>)>,
    how: Wrap,
) -> napi::Result<Unknown<'env>> {
    let state = match (args, &how) {
        (Ok((storage, key, range)), _) => State::Pending(storage, key, range),
        (Err(e), Wrap::Create) => return Err(super::error::to_js(env, e)),
        (Err(e), Wrap::Open) => State::Refused(e),
    };
    let reader = ObjectReader {
        state: Arc::new(Mutex::new(state)),
        closed: tokio::sync::watch::Sender::new(false),
    };
    let factories: Object = env.run_script(FACTORY)?;
    let name = match how {
        Wrap::Create => "create",
        Wrap::Open => "open",
    };
    let factory: Function<ObjectReader, Unknown> = factories.get_named_property(name)?;
    factory.call(reader)
}
