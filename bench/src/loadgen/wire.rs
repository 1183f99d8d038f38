//! The two client protocols the load generator speaks: RESP2 (ringraft and Redis; the
//! encoder and reply parser are ringraft's own, [`ringraft::kv::resp`]) and etcd's HTTP/JSON
//! gateway (`POST /v3/kv/put` and `/v3/kv/range`, keys and values in base64, HTTP/1.1
//! keep-alive with pipelining).

use bytes::{Buf, BufMut, BytesMut};
use ringraft::kv::resp::{self, Reply, ReplyReader};
use serde::Serialize;

/// Longest HTTP response head the etcd codec buffers, bytes: etcd's are about 400.
const HTTP_HEAD_BYTES_MAX: usize = 16 << 10;
/// Longest HTTP response body the etcd codec accepts, bytes: one range reply of the largest
/// value, base64-encoded, with room for the JSON around it.
const HTTP_BODY_BYTES_MAX: usize = 4 << 20;

/// Which protocol a server speaks.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Protocol {
    /// RESP2: `SET key value` and `GET key`.
    Resp,
    /// etcd's v3 HTTP/JSON gateway.
    EtcdHttp,
}

/// What one reply said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The write was acknowledged, or the read found its key.
    Ok,
    /// A read found no value for a key whose write had been acknowledged.
    Miss,
    /// The server refused the request.
    Refused(String),
}

/// A reply stream that is not the protocol: the connection cannot go on.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// Malformed RESP.
    #[error(transparent)]
    Resp(#[from] resp::RespError),
    /// Malformed or unsupported HTTP.
    #[error("bad HTTP response: {0}")]
    Http(String),
}

/// Encodes requests and decodes replies for one connection.
#[derive(Debug)]
pub enum Codec {
    /// RESP2.
    Resp(ReplyReader),
    /// etcd's HTTP gateway; `host` is the `Host` header.
    EtcdHttp {
        /// Received, not yet parsed.
        buf: BytesMut,
        /// `127.0.0.1:2379`.
        host: String,
    },
}

impl Codec {
    /// A codec for `protocol`, talking to `host` (`ip:port`).
    #[must_use]
    pub fn new(protocol: Protocol, host: String) -> Self {
        match protocol {
            Protocol::Resp => Codec::Resp(ReplyReader::default()),
            Protocol::EtcdHttp => Codec::EtcdHttp {
                buf: BytesMut::with_capacity(64 << 10),
                host,
            },
        }
    }

    /// Appends a write of `value` at `key` to `out`.
    pub fn put_write(&self, out: &mut BytesMut, key: &[u8], value: &[u8]) {
        match self {
            Codec::Resp(_) => resp::put_request(out, &[&b"SET"[..], key, value]),
            Codec::EtcdHttp { host, .. } => {
                let body = format!(
                    "{{\"key\":\"{}\",\"value\":\"{}\"}}",
                    base64(key),
                    base64(value)
                );
                put_http_post(out, host, "/v3/kv/put", &body);
            }
        }
    }

    /// Appends a linearizable read of `key` to `out`.
    pub fn put_read(&self, out: &mut BytesMut, key: &[u8]) {
        match self {
            Codec::Resp(_) => resp::put_request(out, &[&b"GET"[..], key]),
            Codec::EtcdHttp { host, .. } => {
                let body = format!("{{\"key\":\"{}\"}}", base64(key));
                put_http_post(out, host, "/v3/kv/range", &body);
            }
        }
    }

    /// The buffer received bytes go into.
    pub fn read_buffer(&mut self) -> &mut BytesMut {
        match self {
            Codec::Resp(r) => r.buffer(),
            Codec::EtcdHttp { buf, .. } => buf,
        }
    }

    /// The next complete reply, if it has arrived; `read` says whether the request it answers
    /// was a read (replies come in request order).
    ///
    /// # Errors
    /// The bytes are not a valid reply.
    pub fn next_reply(&mut self, read: bool) -> Result<Option<Outcome>, WireError> {
        match self {
            Codec::Resp(r) => Ok(r.next_reply()?.map(|(reply, _)| resp_outcome(reply))),
            Codec::EtcdHttp { buf, .. } => next_http_reply(buf, read),
        }
    }
}

fn resp_outcome(reply: Reply) -> Outcome {
    match reply {
        Reply::Error(e) => Outcome::Refused(String::from_utf8_lossy(&e).into_owned()),
        Reply::Bulk(None) => Outcome::Miss,
        _ => Outcome::Ok,
    }
}

fn put_http_post(out: &mut BytesMut, host: &str, path: &str, body: &str) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n",
        body.len()
    );
    out.put_slice(head.as_bytes());
    out.put_slice(body.as_bytes());
}

/// Parses one `Content-Length` HTTP/1.1 response from the front of `buf` and consumes it.
fn next_http_reply(buf: &mut BytesMut, read: bool) -> Result<Option<Outcome>, WireError> {
    let Some(head_len) = buf.windows(4).position(|w| w == b"\r\n\r\n") else {
        if buf.len() > HTTP_HEAD_BYTES_MAX {
            return Err(WireError::Http("response head too long".into()));
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&buf[..head_len])
        .map_err(|_| WireError::Http("response head is not UTF-8".into()))?;
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_ascii_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| WireError::Http("no status line".into()))?;
    let mut body_len = None;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        if name.eq_ignore_ascii_case("content-length") {
            body_len = value.trim().parse::<usize>().ok();
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            return Err(WireError::Http(format!(
                "unsupported transfer encoding {value}"
            )));
        }
    }
    let body_len = body_len.ok_or_else(|| WireError::Http("no Content-Length".into()))?;
    if body_len > HTTP_BODY_BYTES_MAX {
        return Err(WireError::Http(format!("body of {body_len} bytes")));
    }
    let total = head_len + 4 + body_len;
    if buf.len() < total {
        return Ok(None);
    }
    buf.advance(head_len + 4);
    let body = buf.split_to(body_len);
    Ok(Some(if status != 200 {
        let text = String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned();
        Outcome::Refused(format!("HTTP {status}: {text}"))
    } else if read && !contains(&body, b"\"kvs\"") {
        Outcome::Miss
    } else {
        Outcome::Ok
    }))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Standard base64 with padding (RFC 4648 section 4), as etcd's gateway expects for bytes.
#[must_use]
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(input.len().div_ceil(3) * 4);
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = u32::from(b[0]) << 16 | u32::from(b[1]) << 8 | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_matches_rfc4648_vectors() {
        let cases = [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ];
        for (plain, encoded) in cases {
            assert_eq!(base64(plain.as_bytes()), encoded, "{plain}");
        }
    }

    #[test]
    fn parses_pipelined_http_replies_split_anywhere() {
        let put = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 12\r\n\r\n\
                   {\"header\":1}";
        let hit = "HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\n{\"kvs\":[]}";
        let miss = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}";
        let refused = "HTTP/1.1 400 Bad Request\r\nContent-Length: 5\r\n\r\noops!";
        let all = format!("{put}{hit}{miss}{refused}");
        for split in 0..all.len() {
            let mut codec = Codec::new(Protocol::EtcdHttp, "h".into());
            let mut got = Vec::new();
            for part in [&all[..split], &all[split..]] {
                codec.read_buffer().put_slice(part.as_bytes());
                while let Some(o) = codec.next_reply(got.len() == 1 || got.len() == 2).unwrap() {
                    got.push(o);
                }
            }
            assert_eq!(
                got,
                vec![
                    Outcome::Ok,
                    Outcome::Ok,
                    Outcome::Miss,
                    Outcome::Refused("HTTP 400: oops!".into())
                ],
                "split at {split}"
            );
        }
    }

    #[test]
    fn refuses_chunked_and_headless_http() {
        let mut codec = Codec::new(Protocol::EtcdHttp, "h".into());
        codec
            .read_buffer()
            .put_slice(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        assert!(codec.next_reply(false).is_err());
        let mut codec = Codec::new(Protocol::EtcdHttp, "h".into());
        codec.read_buffer().put_slice(b"HTTP/1.1 200 OK\r\n\r\n");
        assert!(codec.next_reply(false).is_err());
    }

    #[test]
    fn resp_replies_map_to_outcomes() {
        let mut codec = Codec::new(Protocol::Resp, "h".into());
        codec
            .read_buffer()
            .put_slice(b"+OK\r\n$-1\r\n$1\r\nv\r\n-ERR no\r\n");
        let mut got = Vec::new();
        while let Some(o) = codec.next_reply(false).unwrap() {
            got.push(o);
        }
        assert_eq!(
            got,
            vec![
                Outcome::Ok,
                Outcome::Miss,
                Outcome::Ok,
                Outcome::Refused("ERR no".into())
            ]
        );
        codec.read_buffer().put_slice(b"?\r\n");
        assert!(codec.next_reply(false).is_err());
    }

    #[test]
    fn encodes_requests() {
        let resp = Codec::new(Protocol::Resp, "h".into());
        let mut out = BytesMut::new();
        resp.put_write(&mut out, b"k", b"vv");
        resp.put_read(&mut out, b"k");
        assert_eq!(
            &out[..],
            b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$2\r\nvv\r\n*2\r\n$3\r\nGET\r\n$1\r\nk\r\n"
        );
        let etcd = Codec::new(Protocol::EtcdHttp, "127.0.0.1:1".into());
        let mut out = BytesMut::new();
        etcd.put_write(&mut out, b"foo", b"bar");
        let text = String::from_utf8(out.to_vec()).unwrap();
        assert!(text.starts_with("POST /v3/kv/put HTTP/1.1\r\nHost: 127.0.0.1:1\r\n"));
        assert!(text.ends_with("\r\n\r\n{\"key\":\"Zm9v\",\"value\":\"YmFy\"}"));
        assert!(text.contains("Content-Length: 29\r\n"));
    }
}
