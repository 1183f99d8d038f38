//! What `COMMAND`, `COMMAND INFO`, `COMMAND DOCS`, `COMMAND LIST` and `COMMAND COUNT`
//! answer: one entry per command the server knows, in the shapes Redis 7 uses, so that
//! clients which probe the server at connect time (redis-cli's hints, redis-py's
//! `command()`, cluster-aware clients looking for key positions) read real metadata.

use bytes::BytesMut;

use crate::kv::resp;

/// One command's metadata.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct CommandSpec {
    /// Upper-case name.
    pub(crate) name: &'static str,
    /// Redis arity: `n` exactly n arguments (the name included), `-n` at least n.
    pub(crate) arity: i64,
    /// Redis command flags.
    pub(crate) flags: &'static [&'static str],
    /// Position of the first key argument (0: no keys).
    pub(crate) first_key: i64,
    /// Position of the last key (-1: the last argument).
    pub(crate) last_key: i64,
    /// Step between keys (2 for MSET's key value pairs).
    pub(crate) step: i64,
    /// The Redis documentation group.
    pub(crate) group: &'static str,
    /// One line for `COMMAND DOCS`.
    pub(crate) summary: &'static str,
}

const fn spec(
    name: &'static str,
    arity: i64,
    flags: &'static [&'static str],
    keys: (i64, i64, i64),
    group: &'static str,
    summary: &'static str,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        first_key: keys.0,
        last_key: keys.1,
        step: keys.2,
        group,
        summary,
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const ONE_KEY: (i64, i64, i64) = (1, 1, 1);
const ALL_KEYS: (i64, i64, i64) = (1, -1, 1);
const READ: &[&str] = &["readonly", "fast"];
const WRITE: &[&str] = &["write", "denyoom", "fast"];
const CONN: &[&str] = &["fast", "loading", "stale"];
const ADMIN: &[&str] = &["admin", "noscript"];

/// Every command the server runs (`COMMAND COUNT` is its length).
pub(crate) const COMMANDS: &[CommandSpec] = &[
    spec(
        "PING",
        -1,
        CONN,
        NO_KEYS,
        "connection",
        "Returns PONG, or the argument.",
    ),
    spec(
        "ECHO",
        2,
        CONN,
        NO_KEYS,
        "connection",
        "Returns the argument.",
    ),
    spec(
        "GET",
        2,
        READ,
        ONE_KEY,
        "string",
        "Returns the value of a key (a linearizable read).",
    ),
    spec(
        "MGET",
        -2,
        READ,
        ALL_KEYS,
        "string",
        "Returns the values of keys (one read).",
    ),
    spec(
        "EXISTS",
        -2,
        READ,
        ALL_KEYS,
        "generic",
        "Counts the given keys that exist.",
    ),
    spec(
        "STRLEN",
        2,
        READ,
        ONE_KEY,
        "string",
        "Returns the length of a value.",
    ),
    spec(
        "DBSIZE",
        1,
        READ,
        NO_KEYS,
        "server",
        "Returns the number of keys.",
    ),
    spec(
        "SET",
        -3,
        &["write", "denyoom"],
        ONE_KEY,
        "string",
        "Sets a key through the log (NX, XX, KEEPTTL; EX, PX, GET refused).",
    ),
    spec(
        "DEL",
        -2,
        &["write"],
        ALL_KEYS,
        "generic",
        "Deletes keys through the log.",
    ),
    spec(
        "INCR",
        2,
        WRITE,
        ONE_KEY,
        "string",
        "Adds 1 to an integer value.",
    ),
    spec(
        "DECR",
        2,
        WRITE,
        ONE_KEY,
        "string",
        "Subtracts 1 from an integer value.",
    ),
    spec(
        "INCRBY",
        3,
        WRITE,
        ONE_KEY,
        "string",
        "Adds an integer to an integer value.",
    ),
    spec(
        "DECRBY",
        3,
        WRITE,
        ONE_KEY,
        "string",
        "Subtracts an integer from an integer value.",
    ),
    spec("APPEND", 3, WRITE, ONE_KEY, "string", "Appends to a value."),
    spec(
        "MSET",
        -3,
        &["write", "denyoom"],
        (1, -1, 2),
        "string",
        "Sets keys atomically (one log entry).",
    ),
    spec(
        "FLUSHDB",
        -1,
        &["write"],
        NO_KEYS,
        "server",
        "Deletes every key through the log.",
    ),
    spec(
        "FLUSHALL",
        -1,
        &["write"],
        NO_KEYS,
        "server",
        "Deletes every key through the log.",
    ),
    spec(
        "INFO",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        "server",
        "Server, replication and raft sections.",
    ),
    spec(
        "COMMAND",
        -1,
        &["loading", "stale"],
        NO_KEYS,
        "server",
        "Metadata of the commands.",
    ),
    spec(
        "CLIENT",
        -2,
        &["loading", "stale"],
        NO_KEYS,
        "connection",
        "SETNAME, GETNAME, ID, INFO, SETINFO.",
    ),
    spec(
        "HELLO",
        -1,
        CONN,
        NO_KEYS,
        "connection",
        "Protocol handshake (RESP2 only).",
    ),
    spec(
        "SELECT",
        2,
        CONN,
        NO_KEYS,
        "connection",
        "Selects database 0, the only one.",
    ),
    spec(
        "QUIT",
        -1,
        CONN,
        NO_KEYS,
        "connection",
        "Closes the connection.",
    ),
    spec(
        "RAFT.NOFORWARD",
        2,
        CONN,
        NO_KEYS,
        "raft",
        "on: answer writes on a follower with -MOVED.",
    ),
    spec(
        "RAFT.READMODE",
        2,
        CONN,
        NO_KEYS,
        "raft",
        "lease or readindex for this connection's reads.",
    ),
    spec(
        "RAFT.STATUS",
        1,
        &["loading", "stale"],
        NO_KEYS,
        "raft",
        "Role, term, leader, indexes, followers.",
    ),
    spec(
        "RAFT.ADDVOTER",
        -3,
        ADMIN,
        NO_KEYS,
        "raft",
        "Adds a voter: id raft-addr [client-addr].",
    ),
    spec(
        "RAFT.ADDLEARNER",
        -3,
        ADMIN,
        NO_KEYS,
        "raft",
        "Adds a learner: id raft-addr [client-addr].",
    ),
    spec(
        "RAFT.PROMOTE",
        2,
        ADMIN,
        NO_KEYS,
        "raft",
        "Promotes a learner to voter.",
    ),
    spec(
        "RAFT.REMOVE",
        2,
        ADMIN,
        NO_KEYS,
        "raft",
        "Removes a voter or learner.",
    ),
    spec(
        "RAFT.TRANSFER",
        2,
        ADMIN,
        NO_KEYS,
        "raft",
        "Hands leadership to a voter.",
    ),
    spec(
        "RAFT.SNAPSHOT",
        1,
        ADMIN,
        NO_KEYS,
        "raft",
        "Takes a snapshot on the leader and compacts.",
    ),
];

/// The entry of `name` (any case).
pub(crate) fn find(name: &[u8]) -> Option<&'static CommandSpec> {
    COMMANDS
        .iter()
        .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name))
}

/// Writes `COMMAND INFO`'s 10-element entry of `c` (Redis 7, RESP2).
pub(crate) fn put_info(out: &mut BytesMut, c: &CommandSpec) {
    resp::put_array_len(out, 10);
    resp::put_bulk(out, c.name.to_ascii_lowercase().as_bytes());
    resp::put_int(out, c.arity);
    resp::put_array_len(out, c.flags.len());
    for f in c.flags {
        resp::put_simple(out, f);
    }
    resp::put_int(out, c.first_key);
    resp::put_int(out, c.last_key);
    resp::put_int(out, c.step);
    // ACL categories, tips, key specifications, subcommands: none.
    for _ in 0..4 {
        resp::put_array_len(out, 0);
    }
}

/// Writes `COMMAND DOCS`' name and doc map of `c` (a RESP2 map is a flat array).
pub(crate) fn put_docs(out: &mut BytesMut, c: &CommandSpec) {
    resp::put_bulk(out, c.name.to_ascii_lowercase().as_bytes());
    resp::put_array_len(out, 6);
    for (k, v) in [
        ("summary", c.summary),
        ("since", "1.0.0"),
        ("group", c.group),
    ] {
        resp::put_bulk(out, k.as_bytes());
        resp::put_bulk(out, v.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_upper_case() {
        for (i, c) in COMMANDS.iter().enumerate() {
            assert_eq!(c.name, c.name.to_ascii_uppercase());
            assert!(
                COMMANDS[i + 1..].iter().all(|d| d.name != c.name),
                "{} twice",
                c.name
            );
            assert!(c.arity != 0, "{}: arity counts the name", c.name);
        }
    }

    #[test]
    fn find_ignores_case() {
        assert_eq!(find(b"mset").map(|c| c.step), Some(2));
        assert!(find(b"nosuch").is_none());
    }

    #[test]
    fn info_entry_has_redis_7_shape() {
        let mut out = BytesMut::new();
        put_info(&mut out, find(b"get").expect("GET"));
        let text = String::from_utf8(out.to_vec()).expect("ascii");
        assert!(
            text.starts_with(
                "*10\r\n$3\r\nget\r\n:2\r\n*2\r\n+readonly\r\n+fast\r\n:1\r\n:1\r\n:1\r\n"
            ),
            "{text:?}"
        );
    }
}
