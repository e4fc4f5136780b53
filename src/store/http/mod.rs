//! The HTTP client under the cloud stores. Plain-HTTP endpoints (on-premises S3
//! servers, emulators) are spoken to through hyper directly, on sockets that
//! acknowledge a response as soon as they read it and read large bodies in bulk
//! (`socket.rs`); TLS endpoints, and every endpoint while a proxy is configured, go
//! through object_store's reqwest client.
//!
//! Why: a server that leaves Nagle's algorithm on (s3s and plain hyper servers do)
//! sends a response's headers, then holds the rest until the client acknowledges
//! them. Linux delays that acknowledgement by up to 40 ms on a connection that
//! answers quickly ("pingpong" mode), and a kept-alive connection reused at once for
//! the next request is in that mode: every small GET then took ~42 ms instead of
//! ~1 ms (bench/RESULTS.md). `TCP_QUICKACK`, set after every read, leaves that mode
//! and sends the acknowledgement. reqwest exposes no hook on its sockets, hence this
//! client.

use std::error::Error as StdError;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use http::HeaderValue;
use http::uri::Scheme;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use object_store::client::{
    ClientOptions, HttpClient, HttpConnector as StoreConnector, HttpError, HttpErrorKind,
    HttpRequest, HttpRequestBody, HttpResponse, HttpResponseBody, HttpService, ReqwestConnector,
};
use tokio::time::{Instant, Sleep};

use socket::SocketConnector;

mod framing;
mod socket;

/// Sent on both paths, in place of object_store's own.
pub const USER_AGENT: &str = concat!("stowage/", env!("CARGO_PKG_VERSION"));

/// Builds the client of one store (object_store calls it once per store).
#[derive(Debug, Clone, Copy)]
pub struct Connector {
    pub connect_timeout: Duration,
    /// The whole exchange, body included, as reqwest's `timeout`.
    pub request_timeout: Duration,
    pub pool_max_idle_per_host: usize,
}

/// stowage's defaults: 5 s to connect, 60 s per request, 64 idle connections per host.
impl Default for Connector {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(60),
            pool_max_idle_per_host: 64,
        }
    }
}

impl StoreConnector for Connector {
    fn connect(&self, options: &ClientOptions) -> object_store::Result<HttpClient> {
        Ok(HttpClient::new(Routed {
            direct: (!proxy_configured()).then(|| Direct::new(self)),
            reqwest: ReqwestConnector::default().connect(options)?,
        }))
    }
}

/// reqwest sends plain-HTTP requests through these (minus `NO_PROXY`); while one is
/// set, every request keeps going through reqwest.
fn proxy_configured() -> bool {
    ["http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"]
        .iter()
        .any(|name| std::env::var_os(name).is_some_and(|v| !v.is_empty()))
}

#[derive(Debug)]
struct Routed {
    direct: Option<Direct>,
    reqwest: HttpClient,
}

#[async_trait]
impl HttpService for Routed {
    async fn call(&self, req: HttpRequest) -> Result<HttpResponse, HttpError> {
        match &self.direct {
            Some(direct) if req.uri().scheme() == Some(&Scheme::HTTP) => direct.call(req).await,
            _ => self.reqwest.execute(req).await,
        }
    }
}

#[derive(Debug)]
struct Direct {
    client: Client<SocketConnector, HttpRequestBody>,
    timeout: Duration,
}

impl Direct {
    /// The socket and pool settings reqwest uses by default.
    fn new(c: &Connector) -> Self {
        let mut tcp = HttpConnector::new();
        tcp.set_nodelay(true);
        tcp.set_connect_timeout(Some(c.connect_timeout));
        tcp.set_keepalive(Some(Duration::from_secs(15)));
        let client = Client::builder(TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(c.pool_max_idle_per_host)
            .build(SocketConnector(tcp));
        Self {
            client,
            timeout: c.request_timeout,
        }
    }

    async fn call(&self, mut req: HttpRequest) -> Result<HttpResponse, HttpError> {
        let deadline = Instant::now() + self.timeout;
        req.headers_mut()
            .entry(http::header::USER_AGENT)
            .or_insert(HeaderValue::from_static(USER_AGENT));
        let response = tokio::time::timeout_at(deadline, self.client.request(req))
            .await
            .map_err(|_| timed_out())?
            .map_err(http_error)?;
        let (parts, body) = response.into_parts();
        let body = Deadlined {
            body,
            deadline: Box::pin(tokio::time::sleep_until(deadline)),
        };
        Ok(HttpResponse::from_parts(parts, HttpResponseBody::new(body)))
    }
}

fn timed_out() -> HttpError {
    HttpError::new(
        HttpErrorKind::Timeout,
        io::Error::new(io::ErrorKind::TimedOut, "request timed out"),
    )
}

fn http_error<E: StdError + Send + Sync + 'static>(e: E) -> HttpError {
    HttpError::new(error_kind(&e), e)
}

/// What object_store's retry logic needs to know, read from the error chain the way
/// object_store reads reqwest's.
fn error_kind(e: &(dyn StdError + 'static)) -> HttpErrorKind {
    let mut next = Some(e);
    while let Some(e) = next {
        if let Some(e) = e.downcast_ref::<hyper_util::client::legacy::Error>()
            && e.is_connect()
        {
            return HttpErrorKind::Connect;
        }
        if let Some(e) = e.downcast_ref::<hyper::Error>() {
            if e.is_closed() || e.is_incomplete_message() || e.is_body_write_aborted() {
                return HttpErrorKind::Request;
            }
            if e.is_timeout() {
                return HttpErrorKind::Timeout;
            }
        }
        if let Some(e) = e.downcast_ref::<io::Error>() {
            match e.kind() {
                io::ErrorKind::TimedOut => return HttpErrorKind::Timeout,
                io::ErrorKind::ConnectionAborted
                | io::ErrorKind::ConnectionReset
                | io::ErrorKind::BrokenPipe
                | io::ErrorKind::UnexpectedEof => return HttpErrorKind::Interrupted,
                _ => {}
            }
        }
        next = e.source();
    }
    HttpErrorKind::Unknown
}

/// A response body that fails with a timeout once the request's deadline passes.
struct Deadlined {
    body: Incoming,
    deadline: Pin<Box<Sleep>>,
}

impl Body for Deadlined {
    type Data = Bytes;
    type Error = HttpError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, HttpError>>> {
        if self.deadline.as_mut().poll(cx).is_ready() {
            return Poll::Ready(Some(Err(timed_out())));
        }
        Pin::new(&mut self.body).poll_frame(cx).map_err(http_error)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, LazyLock};

    use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
    use tokio::net::{TcpListener, TcpStream};

    use super::*;

    const BODY: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

    fn client(request_timeout: Duration) -> HttpClient {
        let connector = Connector {
            request_timeout,
            pool_max_idle_per_host: 4,
            ..Connector::default()
        };
        connector
            .connect(&ClientOptions::new().with_allow_http(true))
            .unwrap()
    }

    async fn get(client: &HttpClient, url: &str) -> Result<Bytes, HttpError> {
        let req = http::Request::get(url)
            .body(HttpRequestBody::empty())
            .unwrap();
        client.execute(req).await?.into_body().bytes().await
    }

    /// Reads one request head; false at end of stream.
    async fn read_request(stream: &mut TcpStream) -> bool {
        let mut head = Vec::new();
        let mut byte = [0u8];
        while !head.ends_with(b"\r\n\r\n") {
            if stream.read(&mut byte).await.unwrap() == 0 {
                return false;
            }
            head.push(byte[0]);
        }
        true
    }

    /// Larger than a bulk read's tail, of an odd length.
    static LARGE: LazyLock<Vec<u8>> = LazyLock::new(|| {
        (0..4 * 1024 * 1024 + 123)
            .map(|i| (i % 251) as u8)
            .collect()
    });

    /// What the test server does after a response head.
    #[derive(Clone, Copy)]
    enum Reply {
        Whole,
        /// This many bytes of the body, then nothing.
        Stall(usize),
        /// This many bytes of the body, then the connection is closed.
        Close(usize),
    }

    /// A server that, like s3s-fs, leaves Nagle on and writes the head and the body
    /// separately, the body in 64 KiB pieces. Counts connections.
    async fn server(body: &'static [u8], reply: Reply) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/object", listener.local_addr().unwrap());
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        tokio::spawn(async move {
            loop {
                let (mut stream, _) = listener.accept().await.unwrap();
                counted.fetch_add(1, Ordering::SeqCst);
                tokio::spawn(async move {
                    while read_request(&mut stream).await {
                        let head =
                            format!("HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n", body.len());
                        stream.write_all(head.as_bytes()).await.unwrap();
                        let sent = match reply {
                            Reply::Whole => body.len(),
                            Reply::Stall(n) | Reply::Close(n) => n,
                        };
                        for piece in body[..sent].chunks(64 * 1024) {
                            stream.write_all(piece).await.unwrap();
                        }
                        match reply {
                            Reply::Whole => {}
                            Reply::Stall(_) => tokio::time::sleep(Duration::from_secs(3600)).await,
                            Reply::Close(_) => return,
                        }
                    }
                });
            }
        });
        (url, connections)
    }

    /// The `host:port` of a [`server`] URL.
    fn address(url: &str) -> &str {
        url.trim_start_matches("http://")
            .trim_end_matches("/object")
    }

    #[tokio::test]
    async fn reads_whole_bodies_over_one_kept_alive_connection() {
        for body in [BODY, &LARGE[..]] {
            let (url, connections) = server(body, Reply::Whole).await;
            let client = client(Duration::from_secs(10));
            for _ in 0..5 {
                assert!(get(&client, &url).await.unwrap() == body);
            }
            assert_eq!(connections.load(Ordering::SeqCst), 1);
        }
    }

    #[tokio::test]
    async fn a_body_that_stops_coming_times_out() {
        for (body, sent) in [(BODY, 5), (&LARGE[..], 1024 * 1024)] {
            let (url, _) = server(body, Reply::Stall(sent)).await;
            let err = get(&client(Duration::from_millis(300)), &url)
                .await
                .unwrap_err();
            assert_eq!(err.kind(), HttpErrorKind::Timeout);
        }
    }

    /// A read waiting for a bulk of bytes still returns when the peer closes: the
    /// body fails as cut short, not after the 30 s timeout.
    #[tokio::test]
    async fn a_large_body_cut_short_fails_at_once() {
        let (url, _) = server(&LARGE, Reply::Close(1024 * 1024)).await;
        let err = get(&client(Duration::from_secs(30)), &url)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), HttpErrorKind::Interrupted, "{err}");
    }

    /// In the middle of a large body a read waits for a bulk of bytes; from its tail
    /// on, and after it, reads return what has arrived.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reads_the_middle_of_a_large_body_in_bulk() {
        use std::os::fd::AsRawFd;
        fn low_water(stream: &TcpStream) -> libc::c_int {
            let mut value: libc::c_int = 0;
            let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: `value` and `len` outlive the call and `len` is `value`'s size.
            let rc = unsafe {
                libc::getsockopt(
                    stream.as_raw_fd(),
                    libc::SOL_SOCKET,
                    libc::SO_RCVLOWAT,
                    (&mut value as *mut libc::c_int).cast(),
                    &mut len,
                )
            };
            assert_eq!(rc, 0);
            value
        }
        let (url, _) = server(&LARGE, Reply::Whole).await;
        let mut socket = socket::Socket::new(TcpStream::connect(address(&url)).await.unwrap());
        socket
            .write_all(b"GET /object HTTP/1.1\r\n\r\n")
            .await
            .unwrap();
        let mut received = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut buf = vec![0u8; 64 * 1024];
        // The body repeats every 251 bytes: only the whole of it marks its end.
        while received.len() < LARGE.len() || !received.ends_with(&LARGE) {
            let n = socket.read(&mut buf).await.unwrap();
            assert!(n > 0);
            received.extend_from_slice(&buf[..n]);
            seen.insert(low_water(socket.stream()));
        }
        assert!(received.ends_with(&LARGE));
        assert_eq!(low_water(socket.stream()), 1);
        let bulk = if socket::low_water_works() {
            vec![1, 256 * 1024]
        } else {
            vec![1]
        };
        assert_eq!(seen.into_iter().collect::<Vec<_>>(), bulk);
    }

    #[tokio::test]
    async fn a_refused_connection_is_a_connect_error() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/object", listener.local_addr().unwrap());
        drop(listener);
        let err = get(&client(Duration::from_secs(10)), &url)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), HttpErrorKind::Connect);
    }

    /// Linux reports TCP_QUICKACK as 0 while a socket is in pingpong mode, the mode
    /// that delays acknowledgements. A client that sends each request right after
    /// reading a response is in it when the next response arrives; one reading through
    /// a [`socket::Socket`] has left it by the time its read returns. Three whole exchanges
    /// first: kernels before 6.5 enter the mode after three quick replies, not one.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn reading_leaves_the_delayed_acknowledgement_mode() {
        async fn delays_acks_after_a_read<S>(
            wrap: fn(TcpStream) -> S,
            sock: fn(&S) -> &TcpStream,
        ) -> bool
        where
            S: AsyncRead + AsyncWrite + Unpin,
        {
            let (url, _) = server(BODY, Reply::Whole).await;
            let mut stream = wrap(TcpStream::connect(address(&url)).await.unwrap());
            let mut response = vec![0u8; 256];
            for _ in 0..3 {
                stream
                    .write_all(b"GET /object HTTP/1.1\r\n\r\n")
                    .await
                    .unwrap();
                let mut read = 0;
                while !response[..read].ends_with(BODY) {
                    read += stream.read(&mut response[read..]).await.unwrap();
                }
            }
            stream
                .write_all(b"GET /object HTTP/1.1\r\n\r\n")
                .await
                .unwrap();
            assert!(stream.read(&mut response).await.unwrap() > 0);
            !socket2::SockRef::from(sock(&stream))
                .tcp_quickack()
                .unwrap()
        }
        assert!(delays_acks_after_a_read(|s| s, |s| s).await);
        assert!(!delays_acks_after_a_read(socket::Socket::new, socket::Socket::stream).await);
    }
}
