//! Requests (RESP argument lists) parsed into typed operations, with Redis' error messages
//! for an unknown command, a wrong arity or a bad argument.

use bytes::Bytes;

use crate::kv::{KvCommand, SetCondition, KEY_BYTES_MAX, VALUE_BYTES_MAX};
use crate::raft::{NodeId, ReadMode};

/// A read, served from the state machine after a linearizable read barrier.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ReadOp {
    /// `GET key`: a bulk string or nil.
    Get(Bytes),
    /// `MGET key...`: an array of bulk strings or nils.
    MGet(Vec<Bytes>),
    /// `EXISTS key...`: how many of the keys exist (a key named twice counts twice).
    Exists(Vec<Bytes>),
    /// `STRLEN key`: the value's length, 0 if absent.
    StrLen(Bytes),
    /// `DBSIZE`: the number of keys.
    DbSize,
}

/// A membership, leadership or snapshot operation (the `RAFT.*` commands of the CLI).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum AdminOp {
    /// `RAFT.STATUS`: the node's status as `field:value` lines.
    Status,
    /// `RAFT.ADDVOTER id raft-addr [client-addr]`.
    AddVoter(NodeId, std::net::SocketAddr, Option<std::net::SocketAddr>),
    /// `RAFT.ADDLEARNER id raft-addr [client-addr]`.
    AddLearner(NodeId, std::net::SocketAddr, Option<std::net::SocketAddr>),
    /// `RAFT.PROMOTE id`.
    Promote(NodeId),
    /// `RAFT.REMOVE id`.
    Remove(NodeId),
    /// `RAFT.TRANSFER id`.
    Transfer(NodeId),
    /// `RAFT.SNAPSHOT`.
    Snapshot,
}

/// What a `CLIENT` subcommand asks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum ClientOp {
    /// `CLIENT SETNAME name`.
    SetName(Bytes),
    /// `CLIENT GETNAME`.
    GetName,
    /// `CLIENT ID`.
    Id,
    /// `CLIENT INFO`.
    Info,
    /// `CLIENT SETINFO attr value` (redis-py sends its library name): accepted, ignored.
    SetInfo,
}

/// One parsed request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Op {
    /// `PING [msg]`.
    Ping(Option<Bytes>),
    /// `ECHO msg`.
    Echo(Bytes),
    /// A read of the state machine.
    Read(ReadOp),
    /// A write: proposed to the log (the reply follows from the command's kind).
    Write(KvCommand),
    /// `INFO [section]`.
    Info(Option<String>),
    /// `COMMAND`, `COMMAND COUNT`, `COMMAND DOCS|INFO ...`: enough for clients that probe.
    Command(CommandQuery),
    /// `CLIENT ...`.
    Client(ClientOp),
    /// `HELLO [2|3] [SETNAME name]`: the protocol version asked for.
    Hello(Option<u8>, Option<Bytes>),
    /// `SELECT 0` (the only database).
    Select,
    /// `QUIT`: reply OK, then close.
    Quit,
    /// `RAFT.NOFORWARD on|off`: answer writes on a follower with `-MOVED` instead of
    /// forwarding them.
    NoForward(bool),
    /// `RAFT.READMODE lease|readindex`: this connection's read mode.
    ReadMode(ReadMode),
    /// A `RAFT.*` admin operation.
    Admin(AdminOp),
}

/// What `COMMAND` was asked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum CommandQuery {
    /// `COMMAND`, or `COMMAND INFO [name ...]`: the info entry of every command (no names)
    /// or of each name (nil for an unknown one).
    Info(Vec<Bytes>),
    /// `COMMAND DOCS [name ...]`: name and doc map of every command or of each known name.
    Docs(Vec<Bytes>),
    /// `COMMAND LIST`: the names.
    List,
    /// `COMMAND COUNT`.
    Count,
}

/// A request that cannot be run; the connection stays open (as in Redis).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CommandError {
    /// No such command.
    #[error("ERR unknown command '{0}'")]
    Unknown(String),
    /// No such subcommand.
    #[error("ERR unknown subcommand '{sub}' for '{cmd}'")]
    UnknownSub {
        /// The command.
        cmd: &'static str,
        /// The subcommand.
        sub: String,
    },
    /// Wrong number of arguments.
    #[error("ERR wrong number of arguments for '{0}' command")]
    Arity(String),
    /// An option that does not parse or does not combine.
    #[error("ERR syntax error")]
    Syntax,
    /// An argument that must be an integer.
    #[error("ERR value is not an integer or out of range")]
    NotInteger,
    /// A SET option ringraft does not implement.
    #[error("ERR SET option {0} is not supported: ringraft keys never expire")]
    Unsupported(&'static str),
    /// A key or value over its limit.
    #[error("ERR {what} longer than {max} bytes")]
    TooLarge {
        /// `key` or `value`.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// A protocol version other than 2 or 3.
    #[error("NOPROTO unsupported protocol version")]
    NoProto,
    /// An address that does not parse.
    #[error("ERR invalid address '{0}'")]
    Address(String),
    /// `SELECT` of a database other than 0.
    #[error("ERR DB index is out of range")]
    Db,
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn int(b: &[u8]) -> Result<i64, CommandError> {
    crate::kv::parse_i64(b).ok_or(CommandError::NotInteger)
}

fn key(b: &Bytes) -> Result<Bytes, CommandError> {
    if b.len() > KEY_BYTES_MAX {
        return Err(CommandError::TooLarge {
            what: "key",
            max: KEY_BYTES_MAX,
        });
    }
    Ok(b.clone())
}

fn value(b: &Bytes) -> Result<Bytes, CommandError> {
    if b.len() > VALUE_BYTES_MAX {
        return Err(CommandError::TooLarge {
            what: "value",
            max: VALUE_BYTES_MAX,
        });
    }
    Ok(b.clone())
}

fn keys(args: &[Bytes]) -> Result<Vec<Bytes>, CommandError> {
    args.iter().map(key).collect()
}

fn node_id(b: &[u8]) -> Result<NodeId, CommandError> {
    match int(b)? {
        n if n > 0 => Ok(NodeId(n.unsigned_abs())),
        _ => Err(CommandError::NotInteger),
    }
}

fn addr(b: &[u8]) -> Result<std::net::SocketAddr, CommandError> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| CommandError::Address(text(b)))
}

fn on_off(b: &[u8]) -> Result<bool, CommandError> {
    if b.eq_ignore_ascii_case(b"on") {
        Ok(true)
    } else if b.eq_ignore_ascii_case(b"off") {
        Ok(false)
    } else {
        Err(CommandError::Syntax)
    }
}

/// Checks the argument count (the name included) against `min..=max`.
fn arity(name: &str, args: &[Bytes], min: usize, max: usize) -> Result<(), CommandError> {
    if (min..=max).contains(&args.len()) {
        Ok(())
    } else {
        Err(CommandError::Arity(name.to_ascii_lowercase()))
    }
}

/// Parses one request; `args[0]` is the command name (the parser never yields an empty
/// request).
pub(crate) fn parse(args: &[Bytes]) -> Result<Op, CommandError> {
    let name = std::str::from_utf8(&args[0])
        .map_err(|_| CommandError::Unknown(text(&args[0])))?
        .to_ascii_uppercase();
    let n = usize::MAX;
    let op = match name.as_str() {
        "PING" => {
            arity(&name, args, 1, 2)?;
            Op::Ping(args.get(1).cloned())
        }
        "ECHO" => {
            arity(&name, args, 2, 2)?;
            Op::Echo(args[1].clone())
        }
        "GET" | "STRLEN" => {
            arity(&name, args, 2, 2)?;
            let k = key(&args[1])?;
            Op::Read(if name == "GET" {
                ReadOp::Get(k)
            } else {
                ReadOp::StrLen(k)
            })
        }
        "MGET" => {
            arity(&name, args, 2, n)?;
            Op::Read(ReadOp::MGet(keys(&args[1..])?))
        }
        "EXISTS" => {
            arity(&name, args, 2, n)?;
            Op::Read(ReadOp::Exists(keys(&args[1..])?))
        }
        "DBSIZE" => {
            arity(&name, args, 1, 1)?;
            Op::Read(ReadOp::DbSize)
        }
        "SET" => Op::Write(parse_set(args)?),
        "DEL" => {
            arity(&name, args, 2, n)?;
            Op::Write(KvCommand::DelMany {
                keys: keys(&args[1..])?,
            })
        }
        "INCR" | "DECR" => {
            arity(&name, args, 2, 2)?;
            let delta = if name == "INCR" { 1 } else { -1 };
            Op::Write(KvCommand::IncrBy {
                key: key(&args[1])?,
                delta,
            })
        }
        "INCRBY" | "DECRBY" => {
            arity(&name, args, 3, 3)?;
            let by = int(&args[2])?;
            let delta = if name == "INCRBY" {
                by
            } else {
                by.checked_neg().ok_or(CommandError::NotInteger)?
            };
            Op::Write(KvCommand::IncrBy {
                key: key(&args[1])?,
                delta,
            })
        }
        "APPEND" => {
            arity(&name, args, 3, 3)?;
            Op::Write(KvCommand::Append {
                key: key(&args[1])?,
                value: value(&args[2])?,
            })
        }
        "MSET" => {
            if args.len() < 3 || args.len().is_multiple_of(2) {
                return Err(CommandError::Arity("mset".into()));
            }
            let pairs = args[1..]
                .chunks_exact(2)
                .map(|p| Ok((key(&p[0])?, value(&p[1])?)))
                .collect::<Result<_, CommandError>>()?;
            Op::Write(KvCommand::MSet { pairs })
        }
        "FLUSHDB" | "FLUSHALL" => {
            arity(&name, args, 1, 2)?;
            Op::Write(KvCommand::Flush)
        }
        "SELECT" => {
            arity(&name, args, 2, 2)?;
            if int(&args[1])? != 0 {
                return Err(CommandError::Db);
            }
            Op::Select
        }
        "QUIT" => Op::Quit,
        "INFO" => {
            arity(&name, args, 1, 2)?;
            Op::Info(args.get(1).map(|s| text(s).to_ascii_lowercase()))
        }
        "COMMAND" => Op::Command(parse_command_query(args)?),
        "CLIENT" => Op::Client(parse_client(args)?),
        "HELLO" => parse_hello(args)?,
        _ => parse_raft(&name, args)?,
    };
    Ok(op)
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT|PXAT|KEEPTTL]`: NX and XX are supported;
/// expiry options are refused (the state machine has no clock: expiry would make replicas
/// disagree), KEEPTTL is accepted (there is never a TTL to keep), GET is refused.
fn parse_set(args: &[Bytes]) -> Result<KvCommand, CommandError> {
    arity("set", args, 3, usize::MAX)?;
    let (k, v) = (key(&args[1])?, value(&args[2])?);
    let mut cond = None;
    for opt in &args[3..] {
        let opt = text(opt).to_ascii_uppercase();
        match opt.as_str() {
            "NX" | "XX" if cond.is_some() => return Err(CommandError::Syntax),
            "NX" => cond = Some(SetCondition::IfAbsent),
            "XX" => cond = Some(SetCondition::IfPresent),
            "KEEPTTL" => {}
            "EX" => return Err(CommandError::Unsupported("EX")),
            "PX" => return Err(CommandError::Unsupported("PX")),
            "EXAT" => return Err(CommandError::Unsupported("EXAT")),
            "PXAT" => return Err(CommandError::Unsupported("PXAT")),
            "GET" => return Err(CommandError::Unsupported("GET")),
            _ => return Err(CommandError::Syntax),
        }
    }
    Ok(match cond {
        None => KvCommand::Set { key: k, value: v },
        Some(cond) => KvCommand::SetIf {
            key: k,
            value: v,
            cond,
        },
    })
}

fn parse_command_query(args: &[Bytes]) -> Result<CommandQuery, CommandError> {
    let Some(sub) = args.get(1) else {
        return Ok(CommandQuery::Info(Vec::new()));
    };
    let sub = text(sub).to_ascii_uppercase();
    let names = args[2..].to_vec();
    match sub.as_str() {
        "COUNT" => {
            arity("command|count", args, 2, 2)?;
            Ok(CommandQuery::Count)
        }
        "INFO" => Ok(CommandQuery::Info(names)),
        "DOCS" => Ok(CommandQuery::Docs(names)),
        // `COMMAND LIST [FILTERBY ...]`: the filters are not supported; every name is listed.
        "LIST" => Ok(CommandQuery::List),
        _ => Err(CommandError::UnknownSub {
            cmd: "command",
            sub: sub.to_ascii_lowercase(),
        }),
    }
}

fn parse_client(args: &[Bytes]) -> Result<ClientOp, CommandError> {
    arity("client", args, 2, usize::MAX)?;
    let sub = text(&args[1]).to_ascii_uppercase();
    let op = match sub.as_str() {
        "SETNAME" => {
            arity("client|setname", args, 3, 3)?;
            ClientOp::SetName(args[2].clone())
        }
        "GETNAME" => ClientOp::GetName,
        "ID" => ClientOp::Id,
        "INFO" => ClientOp::Info,
        "SETINFO" => {
            arity("client|setinfo", args, 4, 4)?;
            ClientOp::SetInfo
        }
        _ => {
            return Err(CommandError::UnknownSub {
                cmd: "client",
                sub: sub.to_ascii_lowercase(),
            })
        }
    };
    Ok(op)
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`. AUTH is refused (no users).
fn parse_hello(args: &[Bytes]) -> Result<Op, CommandError> {
    let Some(ver) = args.get(1) else {
        return Ok(Op::Hello(None, None));
    };
    let ver = match int(ver).map_err(|_| CommandError::NoProto)? {
        2 => 2,
        3 => 3,
        _ => return Err(CommandError::NoProto),
    };
    let mut name = None;
    let mut rest = &args[2..];
    while let Some(opt) = rest.first() {
        if opt.eq_ignore_ascii_case(b"SETNAME") && rest.len() >= 2 {
            name = Some(rest[1].clone());
            rest = &rest[2..];
        } else {
            return Err(CommandError::Syntax);
        }
    }
    Ok(Op::Hello(Some(ver), name))
}

fn parse_raft(name: &str, args: &[Bytes]) -> Result<Op, CommandError> {
    let member = |args: &[Bytes]| -> Result<_, CommandError> {
        arity(name, args, 3, 4)?;
        let client = args.get(3).map(|a| addr(a)).transpose()?;
        Ok((node_id(&args[1])?, addr(&args[2])?, client))
    };
    let one_id = |args: &[Bytes]| -> Result<NodeId, CommandError> {
        arity(name, args, 2, 2)?;
        node_id(&args[1])
    };
    let op = match name {
        "RAFT.NOFORWARD" => {
            arity(name, args, 2, 2)?;
            Op::NoForward(on_off(&args[1])?)
        }
        "RAFT.READMODE" => {
            arity(name, args, 2, 2)?;
            let m = &args[1];
            if m.eq_ignore_ascii_case(b"lease") {
                Op::ReadMode(ReadMode::Lease)
            } else if m.eq_ignore_ascii_case(b"readindex") {
                Op::ReadMode(ReadMode::ReadIndex)
            } else {
                return Err(CommandError::Syntax);
            }
        }
        "RAFT.STATUS" => {
            arity(name, args, 1, 1)?;
            Op::Admin(AdminOp::Status)
        }
        "RAFT.ADDVOTER" => {
            let (id, raft, client) = member(args)?;
            Op::Admin(AdminOp::AddVoter(id, raft, client))
        }
        "RAFT.ADDLEARNER" => {
            let (id, raft, client) = member(args)?;
            Op::Admin(AdminOp::AddLearner(id, raft, client))
        }
        "RAFT.PROMOTE" => Op::Admin(AdminOp::Promote(one_id(args)?)),
        "RAFT.REMOVE" => Op::Admin(AdminOp::Remove(one_id(args)?)),
        "RAFT.TRANSFER" => Op::Admin(AdminOp::Transfer(one_id(args)?)),
        "RAFT.SNAPSHOT" => {
            arity(name, args, 1, 1)?;
            Op::Admin(AdminOp::Snapshot)
        }
        _ => return Err(CommandError::Unknown(text(&args[0]))),
    };
    Ok(op)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(words: &str) -> Result<Op, CommandError> {
        let args: Vec<Bytes> = words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect();
        parse(&args)
    }

    #[test]
    fn table_of_commands() {
        let b = |s: &'static str| Bytes::from_static(s.as_bytes());
        let cases: Vec<(&str, Op)> = vec![
            ("ping", Op::Ping(None)),
            ("PING hi", Op::Ping(Some(b("hi")))),
            ("get k", Op::Read(ReadOp::Get(b("k")))),
            ("MGET a b", Op::Read(ReadOp::MGet(vec![b("a"), b("b")]))),
            ("exists a a", Op::Read(ReadOp::Exists(vec![b("a"), b("a")]))),
            ("dbsize", Op::Read(ReadOp::DbSize)),
            ("set k v", Op::Write(KvCommand::set("k", "v"))),
            (
                "set k v nx",
                Op::Write(KvCommand::SetIf {
                    key: b("k"),
                    value: b("v"),
                    cond: SetCondition::IfAbsent,
                }),
            ),
            (
                "decrby k 5",
                Op::Write(KvCommand::IncrBy {
                    key: b("k"),
                    delta: -5,
                }),
            ),
            (
                "mset a 1 b 2",
                Op::Write(KvCommand::MSet {
                    pairs: vec![(b("a"), b("1")), (b("b"), b("2"))],
                }),
            ),
            ("command docs", Op::Command(CommandQuery::Docs(vec![]))),
            (
                "command docs get",
                Op::Command(CommandQuery::Docs(vec![b("get")])),
            ),
            ("command", Op::Command(CommandQuery::Info(vec![]))),
            (
                "command info get nosuch",
                Op::Command(CommandQuery::Info(vec![b("get"), b("nosuch")])),
            ),
            ("command list", Op::Command(CommandQuery::List)),
            ("command count", Op::Command(CommandQuery::Count)),
            ("client setinfo lib-name x", Op::Client(ClientOp::SetInfo)),
            ("hello 3", Op::Hello(Some(3), None)),
            ("hello 2 setname n", Op::Hello(Some(2), Some(b("n")))),
            ("raft.noforward on", Op::NoForward(true)),
            ("raft.readmode readindex", Op::ReadMode(ReadMode::ReadIndex)),
            (
                "raft.addvoter 4 127.0.0.1:1 127.0.0.1:2",
                Op::Admin(AdminOp::AddVoter(
                    NodeId(4),
                    "127.0.0.1:1".parse().expect("addr"),
                    Some("127.0.0.1:2".parse().expect("addr")),
                )),
            ),
        ];
        for (input, want) in cases {
            assert_eq!(p(input), Ok(want), "{input}");
        }
    }

    #[test]
    fn table_of_errors() {
        let cases: Vec<(&str, &str)> = vec![
            ("nosuch a", "ERR unknown command 'nosuch'"),
            ("get", "ERR wrong number of arguments for 'get' command"),
            ("get a b", "ERR wrong number of arguments for 'get' command"),
            ("mset a", "ERR wrong number of arguments for 'mset' command"),
            (
                "mset a 1 b",
                "ERR wrong number of arguments for 'mset' command",
            ),
            (
                "set k v ex 10",
                "ERR SET option EX is not supported: ringraft keys never expire",
            ),
            (
                "set k v px 10",
                "ERR SET option PX is not supported: ringraft keys never expire",
            ),
            ("set k v nx xx", "ERR syntax error"),
            ("set k v bogus", "ERR syntax error"),
            ("incrby k x", "ERR value is not an integer or out of range"),
            (
                "decrby k -9223372036854775808",
                "ERR value is not an integer or out of range",
            ),
            ("hello 4", "NOPROTO unsupported protocol version"),
            ("client kill", "ERR unknown subcommand 'kill' for 'client'"),
            (
                "raft.promote 0",
                "ERR value is not an integer or out of range",
            ),
            ("raft.addvoter 2 nowhere", "ERR invalid address 'nowhere'"),
            ("select 1", "ERR DB index is out of range"),
        ];
        for (input, want) in cases {
            let got = p(input).expect_err(input).to_string();
            assert_eq!(got, want, "{input}");
        }
        let big = Bytes::from(vec![b'k'; KEY_BYTES_MAX + 1]);
        let err = parse(&[Bytes::from_static(b"GET"), big]).expect_err("too long");
        assert!(matches!(err, CommandError::TooLarge { what: "key", .. }));
    }

    #[test]
    fn every_command_in_the_table_is_parsed() {
        for c in crate::server::command_table::COMMANDS {
            let got = parse(&[Bytes::from_static(c.name.as_bytes())]);
            assert!(
                !matches!(got, Err(CommandError::Unknown(_))),
                "{} is in COMMAND's table but the parser does not know it",
                c.name
            );
        }
    }
}
