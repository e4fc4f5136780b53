//! How much of a GET's response body a connection has still to receive, read off the
//! bytes that pass through its socket. hyper knows it too, but tells the socket
//! nothing, and the socket needs it: it may only wait for data in bulk (and leave
//! acknowledgements to the kernel's own rules) while it knows more bytes are coming.
//!
//! Only what can be known for sure is followed: a GET's `200`/`206` response with one
//! `Content-Length` and no `Transfer-Encoding`. Anything else (other methods, HEAD's
//! bodiless answers, interim and bodiless statuses, chunked bodies, unexpected bytes)
//! leaves the exchange unfollowed until the next request, and the socket behaves as
//! if nothing were known. hyper's HTTP/1 client sends a request only once the last
//! response has been read, so a write always starts a new exchange.

/// A response head longer than this is not followed (S3's are about 1 KiB).
const MAX_HEAD: usize = 64 * 1024;
/// More headers than this and the response is not followed.
const MAX_HEADERS: usize = 128;

#[derive(Debug, Default)]
pub(super) struct Framing {
    state: State,
}

#[derive(Debug, Default, PartialEq)]
enum State {
    /// Between exchanges, or in one that is not followed.
    #[default]
    Unfollowed,
    /// A request is being written; `get` if it is a GET.
    Requesting { get: bool },
    /// The GET's response head, as far as it has arrived.
    Head(Vec<u8>),
    /// Bytes of the response body not received yet.
    Body(u64),
}

impl Framing {
    /// Body bytes of the current GET response not received yet, when they are known.
    pub fn remaining(&self) -> Option<u64> {
        match self.state {
            State::Body(remaining) => Some(remaining),
            _ => None,
        }
    }

    /// `written`: the bytes a write just put on the connection.
    pub fn wrote(&mut self, written: &[u8]) {
        if !matches!(self.state, State::Requesting { .. }) {
            self.state = State::Requesting {
                get: written.starts_with(b"GET "),
            };
        }
    }

    /// `read`: the bytes a read just took off the connection.
    pub fn read(&mut self, read: &[u8]) {
        self.state = match std::mem::take(&mut self.state) {
            State::Requesting { get: true } => head(Vec::new(), read),
            State::Head(partial) => head(partial, read),
            State::Body(remaining) => body(remaining, read.len()),
            State::Requesting { get: false } | State::Unfollowed => State::Unfollowed,
        };
    }
}

/// Parses the head once it is whole; the bytes after it start the body.
fn head(mut partial: Vec<u8>, read: &[u8]) -> State {
    let bytes = if partial.is_empty() {
        read
    } else {
        partial.extend_from_slice(read);
        &partial
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(bytes) {
        Ok(httparse::Status::Complete(len)) => match body_length(&response) {
            Some(length) => body(length, bytes.len() - len),
            None => State::Unfollowed,
        },
        Ok(httparse::Status::Partial) if bytes.len() < MAX_HEAD => {
            if partial.is_empty() {
                partial.extend_from_slice(read);
            }
            State::Head(partial)
        }
        _ => State::Unfollowed,
    }
}

/// The body's length, for the responses that are followed.
fn body_length(response: &httparse::Response) -> Option<u64> {
    if !matches!(response.code, Some(200 | 206)) {
        return None;
    }
    let named = |name: &'static str| {
        response
            .headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
    };
    if named("transfer-encoding").next().is_some() {
        return None;
    }
    let mut lengths = named("content-length");
    match (lengths.next(), lengths.next()) {
        (Some(length), None) => std::str::from_utf8(length.value).ok()?.trim().parse().ok(),
        _ => None,
    }
}

/// `received` more body bytes; more than were due means the framing was not understood.
fn body(remaining: u64, received: usize) -> State {
    match remaining.checked_sub(received as u64) {
        Some(0) | None => State::Unfollowed,
        Some(left) => State::Body(left),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GET: &[u8] = b"GET /bucket/key HTTP/1.1\r\nhost: s3\r\n\r\n";

    fn response(status: &str, headers: &str) -> Vec<u8> {
        format!("HTTP/1.1 {status}\r\n{headers}x-amz-meta-sha256: 00\r\n\r\n").into_bytes()
    }

    fn after_get(read: &[&[u8]]) -> Framing {
        let mut framing = Framing::default();
        framing.wrote(GET);
        for bytes in read {
            framing.read(bytes);
        }
        framing
    }

    #[test]
    fn counts_down_a_get_body_to_its_end() {
        let head = response("200 OK", "content-length: 1000\r\n");
        let mut first = head.clone();
        first.extend_from_slice(&[7; 100]);
        let mut framing = after_get(&[&first]);
        assert_eq!(framing.remaining(), Some(900));
        framing.read(&[7; 899]);
        assert_eq!(framing.remaining(), Some(1));
        framing.read(&[7]);
        assert_eq!(framing.remaining(), None);
    }

    #[test]
    fn follows_a_head_split_across_reads_and_ranged_responses() {
        let head = response("206 Partial Content", "Content-Length:  5000 \r\n");
        let (a, b) = head.split_at(10);
        assert_eq!(after_get(&[a, b]).remaining(), Some(5000));
        let (a, b) = head.split_at(head.len() - 1);
        assert_eq!(after_get(&[a]).remaining(), None);
        assert_eq!(after_get(&[a, b]).remaining(), Some(5000));
    }

    #[test]
    fn each_request_starts_over() {
        let mut framing = after_get(&[&response("200 OK", "content-length: 10\r\n"), b"12345"]);
        assert_eq!(framing.remaining(), Some(5));
        framing.wrote(GET);
        assert_eq!(framing.remaining(), None);
        framing.read(&response("200 OK", "content-length: 3000\r\n"));
        assert_eq!(framing.remaining(), Some(3000));
    }

    #[test]
    fn leaves_alone_what_it_cannot_be_sure_of() {
        let unfollowed = [
            response("200 OK", "transfer-encoding: chunked\r\n"),
            response("200 OK", "content-length: 10\r\ncontent-length: 10\r\n"),
            response("200 OK", "content-length: ten\r\n"),
            response("200 OK", ""),
            response("100 Continue", "content-length: 10\r\n"),
            response("204 No Content", "content-length: 10\r\n"),
            response("404 Not Found", "content-length: 10\r\n"),
            b"not http at all\r\n\r\n".to_vec(),
        ];
        for head in &unfollowed {
            assert_eq!(after_get(&[head]).remaining(), None, "{head:?}");
        }
        let mut framing = Framing::default();
        framing.wrote(b"HEAD /bucket/key HTTP/1.1\r\n\r\n");
        framing.read(&response("200 OK", "content-length: 10\r\n"));
        assert_eq!(framing.remaining(), None);
    }

    #[test]
    fn bytes_past_the_body_end_stop_the_following() {
        let mut first = response("200 OK", "content-length: 4\r\n");
        first.extend_from_slice(b"12345");
        assert_eq!(after_get(&[&first]).remaining(), None);
        let mut framing = after_get(&[&response("200 OK", "content-length: 4\r\n")]);
        framing.read(b"123456");
        assert_eq!(framing.remaining(), None);
    }

    #[test]
    fn a_request_written_in_pieces_is_one_request() {
        let mut framing = Framing::default();
        framing.wrote(b"GET /key HTTP/1.1\r\n");
        framing.wrote(b"GET /looks-like-a-request-line\r\n\r\n");
        framing.read(&response("200 OK", "content-length: 8\r\n"));
        assert_eq!(framing.remaining(), Some(8));
        let mut framing = Framing::default();
        framing.wrote(b"PUT /key HTTP/1.1\r\n\r\n");
        framing.wrote(b"GET body that starts like a request");
        framing.read(&response("200 OK", "content-length: 8\r\n"));
        assert_eq!(framing.remaining(), None);
    }

    #[test]
    fn an_endless_head_is_given_up() {
        let mut framing = after_get(&[b"HTTP/1.1 200 OK\r\n"]);
        let header = b"x-long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n";
        for _ in 0..(MAX_HEAD / header.len() + 1) {
            framing.read(header);
        }
        framing.read(b"content-length: 10\r\n\r\n");
        assert_eq!(framing.remaining(), None);
    }
}
