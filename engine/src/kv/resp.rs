//! RESP2, the Redis serialization protocol: an incremental, zero-copy request parser, reply
//! writers, and a reply parser (for the server's forwarding and the command-line client).
//!
//! Requests are arrays of bulk strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`) or inline commands
//! (`PING\r\n`). A parsed request's arguments are [`Bytes`] slices of the read buffer: no
//! copy, and no allocation per command (the arguments of a whole pipeline share one reused
//! vector, see [`Requests`]).

use bytes::{BufMut, Bytes, BytesMut};

/// Longest request (one command, all its arguments), bytes. Above the largest value a
/// command may carry ([`crate::kv::VALUE_BYTES_MAX`], refused with an error that keeps the
/// connection) and well under the WAL's 8 MiB record, so that a request always fits in one
/// log entry.
pub const REQUEST_BYTES_MAX: usize = 6 << 20;
/// Most arguments in one request (Redis allows 1 Mi; a 64 Ki-key MSET is plenty here).
pub const REQUEST_ARGS_MAX: usize = 1 << 16;
/// Longest inline command line, bytes (Redis' `PROTO_INLINE_MAX_SIZE`).
pub const INLINE_BYTES_MAX: usize = 64 << 10;
/// Deepest nesting of arrays in a reply the parser accepts.
const REPLY_DEPTH_MAX: usize = 8;

/// Malformed protocol: the server answers with the message and closes the connection.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespError {
    /// A `*<n>` header that is not a number or is out of range.
    #[error("Protocol error: invalid multibulk length")]
    MultibulkLength,
    /// A `$<n>` header that is not a number or is out of range.
    #[error("Protocol error: invalid bulk length")]
    BulkLength,
    /// Something else where a `$` header belongs.
    #[error("Protocol error: expected '$', got '{0}'")]
    ExpectedBulk(char),
    /// A bulk string not followed by CRLF.
    #[error("Protocol error: bulk string not terminated by CRLF")]
    BulkTerminator,
    /// The request is longer than [`REQUEST_BYTES_MAX`].
    #[error("Protocol error: request longer than {max} bytes")]
    TooBig {
        /// The limit.
        max: usize,
    },
    /// An inline command longer than [`INLINE_BYTES_MAX`].
    #[error("Protocol error: too big inline request")]
    InlineTooBig,
    /// An inline command with unbalanced quotes.
    #[error("Protocol error: unbalanced quotes in request")]
    UnbalancedQuotes,
    /// A reply that is not valid RESP2 (reply parser only).
    #[error("Protocol error: invalid reply")]
    Reply,
}

/// The arguments of a batch of parsed requests, in one vector reused across batches.
#[derive(Debug, Default)]
pub struct Requests {
    args: Vec<Bytes>,
    /// Per request: its first argument's position in `args`, and its argument count.
    spans: Vec<(usize, usize)>,
}

impl Requests {
    /// Number of requests.
    #[must_use]
    pub fn len(&self) -> usize {
        self.spans.len()
    }

    /// Whether there is no request.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.spans.is_empty()
    }

    /// The arguments of request `i` (the command name first; never empty).
    #[must_use]
    pub fn get(&self, i: usize) -> &[Bytes] {
        let (start, n) = self.spans[i];
        &self.args[start..start + n]
    }

    /// Forgets every request (keeps the capacity).
    pub fn clear(&mut self) {
        self.args.clear();
        self.spans.clear();
    }
}

/// Where an unfinished multibulk request stopped: the next call resumes there instead of
/// scanning the buffer again (a large request arrives in many reads).
#[derive(Clone, Copy, Debug, Default)]
struct Partial {
    /// Arguments announced by the `*<n>` header.
    nargs: usize,
    /// Buffer offset of the next argument's `$` header.
    pos: usize,
}

/// An incremental RESP2 request parser; one per connection.
#[derive(Debug, Default)]
pub struct RequestParser {
    partial: Option<Partial>,
    /// Argument ranges of the unfinished request.
    ranges: Vec<(usize, usize)>,
}

/// Finds `\r\n` at or after `from`; the index of `\r`.
fn find_crlf(buf: &[u8], from: usize) -> Option<usize> {
    let hay = buf.get(from..)?;
    let mut at = 0;
    while let Some(i) = memchr_cr(&hay[at..]) {
        let cr = at + i;
        if hay.get(cr + 1) == Some(&b'\n') {
            return Some(from + cr);
        }
        if cr + 1 >= hay.len() {
            return None;
        }
        at = cr + 1;
    }
    None
}

fn memchr_cr(b: &[u8]) -> Option<usize> {
    b.iter().position(|&c| c == b'\r')
}

/// Parses a non-negative decimal length (at most 18 digits: no overflow).
fn parse_len(b: &[u8]) -> Option<i64> {
    let (neg, digits) = match b {
        [b'-', rest @ ..] => (true, rest),
        _ => (false, b),
    };
    if digits.is_empty() || digits.len() > 18 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let v = digits
        .iter()
        .fold(0i64, |v, d| v * 10 + i64::from(d - b'0'));
    Some(if neg { -v } else { v })
}

impl RequestParser {
    /// Parses every complete request at the front of `buf` (at most `max` of them) into
    /// `out`, removing their bytes from `buf`. Returns how many more bytes the unfinished
    /// request at the front needs, when known (a hint to reserve buffer space).
    ///
    /// # Errors
    /// [`RespError`] on malformed input; the connection must then be closed (the parser's
    /// state is unspecified).
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
        out: &mut Requests,
        max: usize,
    ) -> Result<usize, RespError> {
        while out.len() < max && !buf.is_empty() {
            let frame = if buf[0] == b'*' {
                self.scan_multibulk(buf)?
            } else {
                scan_inline(buf, &mut self.ranges)?
            };
            let Some(total) = frame else {
                return Ok(self.missing(buf));
            };
            let frame = buf.split_to(total).freeze();
            if !self.ranges.is_empty() {
                let start = out.args.len();
                for &(s, e) in &self.ranges {
                    out.args.push(frame.slice(s..e));
                }
                out.spans.push((start, self.ranges.len()));
            }
            self.ranges.clear();
            self.partial = None;
        }
        Ok(0)
    }

    /// Bytes still needed by a partially received bulk string, or 0 if unknown.
    fn missing(&self, buf: &BytesMut) -> usize {
        let Some(p) = self.partial else { return 0 };
        let Some(cr) = find_crlf(buf, p.pos) else {
            return 0;
        };
        match parse_len(&buf[p.pos + 1..cr]) {
            Some(len) if len > 0 => (cr + 2 + len as usize + 2).saturating_sub(buf.len()),
            _ => 0,
        }
    }

    /// `Ok(Some(total))` once the whole request is in `buf`, its argument ranges in
    /// `self.ranges`; `Ok(None)` if more bytes are needed.
    fn scan_multibulk(&mut self, buf: &[u8]) -> Result<Option<usize>, RespError> {
        let mut p = match self.partial {
            Some(p) => p,
            None => {
                let Some(cr) = find_crlf(buf, 0) else {
                    if buf.len() > INLINE_BYTES_MAX {
                        return Err(RespError::MultibulkLength);
                    }
                    return Ok(None);
                };
                let n = parse_len(&buf[1..cr]).ok_or(RespError::MultibulkLength)?;
                if n > REQUEST_ARGS_MAX as i64 {
                    return Err(RespError::MultibulkLength);
                }
                self.ranges.clear();
                // `*0` and `*-1` are empty requests, skipped as Redis does.
                let p = Partial {
                    nargs: usize::try_from(n.max(0)).expect("clamped to 0..=REQUEST_ARGS_MAX"),
                    pos: cr + 2,
                };
                self.partial = Some(p);
                p
            }
        };
        while self.ranges.len() < p.nargs {
            let Some(&first) = buf.get(p.pos) else {
                return Ok(None);
            };
            if first != b'$' {
                return Err(RespError::ExpectedBulk(char::from(first)));
            }
            let Some(cr) = find_crlf(buf, p.pos) else {
                if buf.len() - p.pos > 32 {
                    return Err(RespError::BulkLength);
                }
                return Ok(None);
            };
            let len = parse_len(&buf[p.pos + 1..cr]).ok_or(RespError::BulkLength)?;
            if !(0..=REQUEST_BYTES_MAX as i64).contains(&len) {
                return Err(RespError::BulkLength);
            }
            let start = cr + 2;
            let end = start + len as usize;
            if end > REQUEST_BYTES_MAX {
                return Err(RespError::TooBig {
                    max: REQUEST_BYTES_MAX,
                });
            }
            if buf.len() < end + 2 {
                self.partial = Some(p);
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::BulkTerminator);
            }
            self.ranges.push((start, end));
            p.pos = end + 2;
            self.partial = Some(p);
        }
        Ok(Some(p.pos))
    }
}

/// An inline command: arguments separated by spaces, optionally in double quotes (with
/// `\"`, `\\` escapes: enough for a person typing into telnet or nc).
fn scan_inline(buf: &[u8], ranges: &mut Vec<(usize, usize)>) -> Result<Option<usize>, RespError> {
    let Some(nl) = buf
        .iter()
        .take(INLINE_BYTES_MAX + 2)
        .position(|&c| c == b'\n')
    else {
        if buf.len() > INLINE_BYTES_MAX {
            return Err(RespError::InlineTooBig);
        }
        return Ok(None);
    };
    let line_end = if nl > 0 && buf[nl - 1] == b'\r' {
        nl - 1
    } else {
        nl
    };
    ranges.clear();
    let mut i = 0;
    while i < line_end {
        match buf[i] {
            b' ' | b'\t' => i += 1,
            b'"' => {
                let start = i + 1;
                let mut j = start;
                while j < line_end && buf[j] != b'"' {
                    j += 1;
                }
                if j >= line_end {
                    return Err(RespError::UnbalancedQuotes);
                }
                ranges.push((start, j));
                i = j + 1;
            }
            _ => {
                let start = i;
                while i < line_end && buf[i] != b' ' && buf[i] != b'\t' {
                    i += 1;
                }
                ranges.push((start, i));
            }
        }
    }
    Ok(Some(nl + 1))
}

/// Appends a decimal integer.
fn put_decimal(out: &mut BytesMut, v: i64) {
    let mut tmp = [0u8; 20];
    let mut i = tmp.len();
    let neg = v < 0;
    let mut n = v.unsigned_abs();
    loop {
        i -= 1;
        tmp[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if neg {
        out.put_u8(b'-');
    }
    out.put_slice(&tmp[i..]);
}

/// `+<s>\r\n`.
pub fn put_simple(out: &mut BytesMut, s: &str) {
    out.put_u8(b'+');
    out.put_slice(s.as_bytes());
    out.put_slice(b"\r\n");
}

/// `+OK\r\n`.
pub fn put_ok(out: &mut BytesMut) {
    out.put_slice(b"+OK\r\n");
}

/// `-<msg>\r\n`; CR and LF in `msg` become spaces (an error is one line).
pub fn put_error(out: &mut BytesMut, msg: &str) {
    out.put_u8(b'-');
    for b in msg.bytes() {
        out.put_u8(if b == b'\r' || b == b'\n' { b' ' } else { b });
    }
    out.put_slice(b"\r\n");
}

/// `:<v>\r\n`.
pub fn put_int(out: &mut BytesMut, v: i64) {
    out.put_u8(b':');
    put_decimal(out, v);
    out.put_slice(b"\r\n");
}

/// `$<len>\r\n<b>\r\n`.
pub fn put_bulk(out: &mut BytesMut, b: &[u8]) {
    out.reserve(b.len() + 16);
    out.put_u8(b'$');
    put_decimal(out, b.len() as i64);
    out.put_slice(b"\r\n");
    out.put_slice(b);
    out.put_slice(b"\r\n");
}

/// `$-1\r\n`, the nil bulk string.
pub fn put_nil(out: &mut BytesMut) {
    out.put_slice(b"$-1\r\n");
}

/// `*<n>\r\n`, an array header (its elements follow).
pub fn put_array_len(out: &mut BytesMut, n: usize) {
    out.put_u8(b'*');
    put_decimal(out, i64::try_from(n).unwrap_or(i64::MAX));
    out.put_slice(b"\r\n");
}

/// Encodes a request as a RESP array of bulk strings.
pub fn put_request<A: AsRef<[u8]>>(out: &mut BytesMut, args: &[A]) {
    put_array_len(out, args.len());
    for a in args {
        put_bulk(out, a.as_ref());
    }
}

/// A parsed reply.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reply {
    /// `+...`
    Simple(Bytes),
    /// `-...`
    Error(Bytes),
    /// `:...`
    Int(i64),
    /// `$...`; `None` is the nil bulk string.
    Bulk(Option<Bytes>),
    /// `*...`; `None` is the nil array.
    Array(Option<Vec<Reply>>),
}

impl Reply {
    /// The reply as text, for people (the command-line client).
    #[must_use]
    pub fn display(&self) -> String {
        match self {
            Reply::Simple(s) => String::from_utf8_lossy(s).into_owned(),
            Reply::Error(s) => format!("(error) {}", String::from_utf8_lossy(s)),
            Reply::Int(v) => format!("(integer) {v}"),
            Reply::Bulk(None) | Reply::Array(None) => "(nil)".into(),
            Reply::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            Reply::Array(Some(items)) => items
                .iter()
                .enumerate()
                .map(|(i, r)| format!("{}) {}", i + 1, r.display()))
                .collect::<Vec<_>>()
                .join("\n"),
        }
    }
}

/// Parses one reply at the front of `buf`: the reply (zero-copy slices of `buf`) and its
/// length in bytes, or `None` if incomplete. `buf` is not consumed.
///
/// # Errors
/// [`RespError::Reply`] for malformed input or a length above [`REQUEST_BYTES_MAX`]
/// (replies carry values of at most that size).
pub fn parse_reply(buf: &Bytes) -> Result<Option<(Reply, usize)>, RespError> {
    let Some(len) = scan_reply(buf, 0, 0)? else {
        return Ok(None);
    };
    Ok(Some((build_reply(buf, 0).0, len)))
}

/// The end offset of the reply starting at `at`, `None` if incomplete.
fn scan_reply(buf: &[u8], at: usize, depth: usize) -> Result<Option<usize>, RespError> {
    let Some(&tag) = buf.get(at) else {
        return Ok(None);
    };
    if !matches!(tag, b'+' | b'-' | b':' | b'$' | b'*') {
        // Checked before the line: a reply that starts with CRLF has no tag, and its line
        // `at + 1..cr` would be a reversed range.
        return Err(RespError::Reply);
    }
    let Some(cr) = find_crlf(buf, at) else {
        if buf.len() - at > INLINE_BYTES_MAX {
            return Err(RespError::Reply);
        }
        return Ok(None);
    };
    let line = &buf[at + 1..cr];
    let next = cr + 2;
    match tag {
        b'+' | b'-' => Ok(Some(next)),
        b':' => {
            let s = std::str::from_utf8(line).map_err(|_| RespError::Reply)?;
            s.parse::<i64>().map_err(|_| RespError::Reply)?;
            Ok(Some(next))
        }
        b'$' => {
            let len = parse_len(line).ok_or(RespError::Reply)?;
            if len < 0 {
                return Ok(Some(next));
            }
            if len > REQUEST_BYTES_MAX as i64 {
                return Err(RespError::Reply);
            }
            let end = next + len as usize;
            if buf.len() < end + 2 {
                return Ok(None);
            }
            if &buf[end..end + 2] != b"\r\n" {
                return Err(RespError::Reply);
            }
            Ok(Some(end + 2))
        }
        b'*' => {
            let n = parse_len(line).ok_or(RespError::Reply)?;
            if n > 0 && (depth >= REPLY_DEPTH_MAX || n > REQUEST_ARGS_MAX as i64) {
                return Err(RespError::Reply);
            }
            let mut next = next;
            for _ in 0..n.max(0) {
                let Some(end) = scan_reply(buf, next, depth + 1)? else {
                    return Ok(None);
                };
                next = end;
            }
            Ok(Some(next))
        }
        _ => Err(RespError::Reply),
    }
}

/// Builds the reply at `at`, which [`scan_reply`] found complete and valid; returns it and
/// its end offset.
fn build_reply(buf: &Bytes, at: usize) -> (Reply, usize) {
    let cr = find_crlf(buf, at).expect("scanned: the header line is complete");
    let line = buf.slice(at + 1..cr);
    let next = cr + 2;
    let len = || parse_len(&line).expect("scanned: a valid length");
    match buf[at] {
        b'+' => (Reply::Simple(line), next),
        b'-' => (Reply::Error(line), next),
        b':' => {
            let v = std::str::from_utf8(&line)
                .ok()
                .and_then(|s| s.parse().ok())
                .expect("scanned: a valid integer");
            (Reply::Int(v), next)
        }
        b'$' => match usize::try_from(len()) {
            Err(_) => (Reply::Bulk(None), next),
            Ok(n) => (Reply::Bulk(Some(buf.slice(next..next + n))), next + n + 2),
        },
        _ => {
            let Ok(n) = usize::try_from(len()) else {
                return (Reply::Array(None), next);
            };
            let mut items = Vec::with_capacity(n);
            let mut next = next;
            for _ in 0..n {
                let (item, end) = build_reply(buf, next);
                items.push(item);
                next = end;
            }
            (Reply::Array(Some(items)), next)
        }
    }
}

/// Reads replies from a byte stream: buffer and parse.
#[derive(Debug, Default)]
pub struct ReplyReader {
    buf: BytesMut,
}

impl ReplyReader {
    /// The buffer to read into (for `read_buf`).
    pub fn buffer(&mut self) -> &mut BytesMut {
        &mut self.buf
    }

    /// The next complete reply and its raw bytes, if one has arrived.
    ///
    /// # Errors
    /// As [`parse_reply`].
    pub fn next_reply(&mut self) -> Result<Option<(Reply, Bytes)>, RespError> {
        let Some(len) = scan_reply(&self.buf, 0, 0)? else {
            return Ok(None);
        };
        let raw = self.buf.split_to(len).freeze();
        Ok(Some((build_reply(&raw, 0).0, raw)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Requests as argument lists.
    type Parsed = Vec<Vec<Vec<u8>>>;

    fn parse_all(input: &[u8]) -> (Result<Parsed, RespError>, usize) {
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(input);
        let mut out = Requests::default();
        let r = p.parse(&mut buf, &mut out, usize::MAX).map(|_| {
            (0..out.len())
                .map(|i| out.get(i).iter().map(|a| a.to_vec()).collect())
                .collect()
        });
        (r, buf.len())
    }

    fn args(v: &[&str]) -> Vec<Vec<u8>> {
        v.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn table_of_requests() {
        let cases: Vec<(&[u8], Parsed, usize)> = vec![
            (b"*1\r\n$4\r\nPING\r\n", vec![args(&["PING"])], 0),
            (
                b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n*1\r\n$4\r\nPING\r\n",
                vec![args(&["GET", "k"]), args(&["PING"])],
                0,
            ),
            (
                b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$0\r\n\r\n",
                vec![args(&["SET", "k", ""])],
                0,
            ),
            (b"PING\r\n", vec![args(&["PING"])], 0),
            (b"SET  k \"a b\"\n", vec![args(&["SET", "k", "a b"])], 0),
            (b"\r\n*0\r\n*-1\r\nPING\r\n", vec![args(&["PING"])], 0),
            (b"*2\r\n$3\r\nGET\r\n$1\r\nk", vec![], 18),
            (
                b"*1\r\n$4\r\nPING\r\n*1\r\n$4\r\nPI",
                vec![args(&["PING"])],
                10,
            ),
            (b"PIN", vec![], 3),
            // Binary-safe: CR and LF inside a bulk string.
            (
                b"*2\r\n$4\r\nECHO\r\n$2\r\n\r\n\r\n",
                vec![vec![b"ECHO".to_vec(), b"\r\n".to_vec()]],
                0,
            ),
        ];
        for (input, want, left) in cases {
            let (got, rest) = parse_all(input);
            assert_eq!(got, Ok(want), "{:?}", String::from_utf8_lossy(input));
            assert_eq!(rest, left, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn table_of_malformed_requests() {
        let cases: Vec<(&[u8], RespError)> = vec![
            (b"*x\r\n", RespError::MultibulkLength),
            (b"*99999999\r\n", RespError::MultibulkLength),
            (b"*1\r\n:4\r\n", RespError::ExpectedBulk(':')),
            (b"*1\r\n$-4\r\n", RespError::BulkLength),
            (b"*1\r\n$abc\r\n", RespError::BulkLength),
            (b"*1\r\n$99999999999\r\n", RespError::BulkLength),
            (b"*1\r\n$2\r\nabcd\r\n", RespError::BulkTerminator),
            (b"SET \"k\r\n", RespError::UnbalancedQuotes),
            (b"*1\r\n$7000000\r\n", RespError::BulkLength),
        ];
        for (input, want) in cases {
            assert_eq!(
                parse_all(input).0,
                Err(want),
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
        let long_inline = vec![b'a'; INLINE_BYTES_MAX + 10];
        assert_eq!(parse_all(&long_inline).0, Err(RespError::InlineTooBig));
        // Two bulks that each fit but together exceed the request limit.
        let mut big = BytesMut::new();
        big.extend_from_slice(b"*3\r\n$3\r\nSET\r\n");
        big.extend_from_slice(format!("${}\r\n", 4 << 20).as_bytes());
        big.extend_from_slice(&vec![b'k'; 4 << 20]);
        big.extend_from_slice(format!("\r\n${}\r\n", 4 << 20).as_bytes());
        assert_eq!(
            parse_all(&big).0,
            Err(RespError::TooBig {
                max: REQUEST_BYTES_MAX
            })
        );
    }

    #[test]
    fn every_split_point_parses_the_same() {
        let input: &[u8] =
            b"*3\r\n$3\r\nSET\r\n$3\r\nkey\r\n$5\r\nva\r\nl\r\nPING\r\n*1\r\n$4\r\nPING\r\n";
        let want = vec![
            args(&["SET", "key", "va\r\nl"]),
            args(&["PING"]),
            args(&["PING"]),
        ];
        for cut in 0..=input.len() {
            let mut p = RequestParser::default();
            let mut buf = BytesMut::from(&input[..cut]);
            let mut out = Requests::default();
            p.parse(&mut buf, &mut out, usize::MAX)
                .expect("valid prefix");
            buf.extend_from_slice(&input[cut..]);
            p.parse(&mut buf, &mut out, usize::MAX).expect("valid");
            let got: Vec<Vec<Vec<u8>>> = (0..out.len())
                .map(|i| out.get(i).iter().map(|a| a.to_vec()).collect())
                .collect();
            assert_eq!(got, want, "cut at {cut}");
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn the_parser_stops_at_max_and_hints_missing_bytes() {
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(&b"PING\r\nPING\r\nPING\r\n"[..]);
        let mut out = Requests::default();
        p.parse(&mut buf, &mut out, 2).expect("valid");
        assert_eq!(out.len(), 2);
        assert_eq!(buf.len(), 6);
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$100\r\nab"[..]);
        let mut out = Requests::default();
        let missing = p.parse(&mut buf, &mut out, 10).expect("valid");
        assert_eq!(missing, 100 - 2 + 2);
    }

    #[test]
    fn arguments_are_zero_copy_slices_of_the_read_buffer() {
        let mut p = RequestParser::default();
        let mut buf = BytesMut::from(&b"*2\r\n$3\r\nGET\r\n$3\r\nkey\r\n"[..]);
        let base = buf.as_ptr() as usize;
        let mut out = Requests::default();
        p.parse(&mut buf, &mut out, 10).expect("valid");
        assert_eq!(out.get(0)[1].as_ptr() as usize, base + 17);
    }

    #[test]
    fn writers_and_the_reply_parser_agree() {
        let mut out = BytesMut::new();
        put_ok(&mut out);
        put_error(&mut out, "ERR bad\r\nthing");
        put_int(&mut out, -42);
        put_int(&mut out, i64::MIN);
        put_bulk(&mut out, b"a\r\nb");
        put_nil(&mut out);
        put_array_len(&mut out, 2);
        put_int(&mut out, 1);
        put_array_len(&mut out, 0);
        let want = vec![
            Reply::Simple(Bytes::from_static(b"OK")),
            Reply::Error(Bytes::from_static(b"ERR bad  thing")),
            Reply::Int(-42),
            Reply::Int(i64::MIN),
            Reply::Bulk(Some(Bytes::from_static(b"a\r\nb"))),
            Reply::Bulk(None),
            Reply::Array(Some(vec![Reply::Int(1), Reply::Array(Some(vec![]))])),
        ];
        let all = out.freeze();
        // Fed one byte at a time, the reader yields the same replies.
        let mut reader = ReplyReader::default();
        let mut got = Vec::new();
        for b in all.iter() {
            reader.buffer().extend_from_slice(&[*b]);
            while let Some((r, _raw)) = reader.next_reply().expect("valid") {
                got.push(r);
            }
        }
        assert_eq!(got, want);
        for bad in [&b"?x\r\n"[..], b":1x\r\n", b"$3\r\nabcde\r\n", b"$-x\r\n"] {
            assert!(
                parse_reply(&Bytes::copy_from_slice(bad)).is_err(),
                "{bad:?}"
            );
        }
        let deep = Bytes::from("*1\r\n".repeat(20) + ":1\r\n");
        assert_eq!(parse_reply(&deep), Err(RespError::Reply));
    }

    /// Found by `engine/tests/fuzz_resp.rs`: a reply starting with CRLF (an empty line, as a
    /// misbehaving server or a desynchronised stream sends) panicked on a reversed slice.
    #[test]
    fn a_reply_starting_with_crlf_is_an_error() {
        for bad in [&b"\r\n"[..], b"\r\n+OK\r\n", b"*1\r\n\r\n"] {
            assert_eq!(
                parse_reply(&Bytes::copy_from_slice(bad)),
                Err(RespError::Reply),
                "{bad:?}"
            );
        }
        let mut reader = ReplyReader::default();
        reader.buffer().extend_from_slice(b"\r\n");
        assert_eq!(reader.next_reply(), Err(RespError::Reply));
    }

    proptest::proptest! {
        #[test]
        fn garbage_never_panics(b in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..200)) {
            let _ = parse_all(&b);
            let _ = parse_reply(&Bytes::from(b));
        }

        #[test]
        fn encoded_requests_round_trip(reqs in proptest::collection::vec(
            proptest::collection::vec(proptest::collection::vec(proptest::prelude::any::<u8>(), 0..20), 1..5), 1..10)) {
            let mut buf = BytesMut::new();
            for r in &reqs {
                put_request(&mut buf, r);
            }
            let (got, left) = parse_all(&buf);
            proptest::prop_assert_eq!(got, Ok(reqs));
            proptest::prop_assert_eq!(left, 0);
        }
    }
}
