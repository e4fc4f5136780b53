//! Percent-encoding shared by every signer. Only RFC 3986 unreserved characters stay as
//! they are: SigV4 requires exactly that, and Azure and local servers decode it all alike.

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

const COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

const PATH: &AsciiSet = &COMPONENT.remove(b'/');

/// A query-string name or value: `/`, `+`, `=`, `&` and space are all escaped.
pub(super) fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, COMPONENT).to_string()
}

/// A key or path: each segment escaped, `/` kept. S3 wants it encoded once, never twice.
pub fn encode_path(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_encoded_path(&mut out, s);
    out
}

/// [`encode_path`] appended to `out`, for URLs built in one buffer.
pub(super) fn push_encoded_path(out: &mut String, s: &str) {
    out.extend(utf8_percent_encode(s, PATH));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unreserved_characters_stay() {
        let unreserved = "AZaz09-_.~";
        assert_eq!(encode_component(unreserved), unreserved);
        assert_eq!(encode_path(unreserved), unreserved);
    }

    #[test]
    fn reserved_characters_are_escaped_in_upper_case_hex() {
        assert_eq!(
            encode_component("a b+c/d=e&f#g%h?i*j!k'l(m)n:o"),
            "a%20b%2Bc%2Fd%3De%26f%23g%25h%3Fi%2Aj%21k%27l%28m%29n%3Ao"
        );
    }

    #[test]
    fn paths_keep_slashes_and_escape_utf8_bytes() {
        assert_eq!(
            encode_path("dir/naïve file+1#.txt"),
            "dir/na%C3%AFve%20file%2B1%23.txt"
        );
        assert_eq!(encode_path("年/🙂"), "%E5%B9%B4/%F0%9F%99%82");
    }
}
