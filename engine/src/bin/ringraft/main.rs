//! The `ringraft` command: `cluster` (N nodes in one process), `serve` (one node), and client
//! subcommands that talk RESP to a running node. Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`). Errors print one readable line and exit with status 1; bad flags exit
//! with status 2 (clap's usage error).

mod cli;
mod client;
mod node;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A listener could not bind.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A node could not start.
    #[error("node {id} did not start: {source}")]
    Start {
        /// The node.
        id: u64,
        /// Why.
        source: ringraft::node::StartError,
    },
    /// A node stopped by itself while serving (a failed WAL write or fsync, which is never
    /// retried): the process exits so that a supervisor restarts it.
    #[error("node {id} stopped on a fatal error: {error}")]
    NodeStopped {
        /// The node.
        id: u64,
        /// The fatal error.
        error: String,
    },
    /// No leader was elected in time.
    #[error("no leader elected within {secs} s")]
    NoLeader {
        /// The wait.
        secs: u64,
    },
    /// The config file could not be read.
    #[error("cannot read config file {path:?}: {source}")]
    ConfigRead {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid.
    #[error("invalid config file {path:?}: {message}")]
    ConfigParse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// A required setting is missing.
    #[error("missing setting: {0} (give --{0} or set it in --config)")]
    Missing(&'static str),
    /// A `--peer` that does not parse.
    #[error("invalid --peer {0:?}: expected ID=RAFT_ADDR[,CLIENT_ADDR]")]
    Peer(String),
    /// A port range past 65535.
    #[error("port range starting at {base} goes past 65535")]
    Port {
        /// The first port.
        base: u16,
    },
    /// An address that does not resolve.
    #[error("cannot resolve address {0:?}")]
    Resolve(String),
    /// A node could not be reached.
    #[error("cannot reach {addr}: {source}")]
    Connect {
        /// The node.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// A node sent something that is not RESP.
    #[error("invalid reply from {addr}: {message}")]
    Protocol {
        /// The node.
        addr: SocketAddr,
        /// Why.
        message: String,
    },
    /// The node answered with an error.
    #[error("{0}")]
    Reply(String),
    /// Another I/O error.
    #[error("io: {0}")]
    Io(std::io::Error),
}

fn run(cli: Cli) -> Result<(), CliError> {
    let simple = |target: &cli::Target, args: &[&[u8]]| -> Result<(), CliError> {
        client::print(&client::call(&target.addr, args)?);
        Ok(())
    };
    match cli.command {
        Command::Cluster(a) => node::cluster(&a),
        Command::Serve(a) => node::serve(&a),
        Command::Put { key, value, target } => {
            simple(&target, &[b"SET", key.as_bytes(), value.as_bytes()])
        }
        Command::Get { key, target } => simple(&target, &[b"GET", key.as_bytes()]),
        Command::Del { key, target } => simple(&target, &[b"DEL", key.as_bytes()]),
        Command::Status { target } => simple(&target, &[b"RAFT.STATUS"]),
        Command::AddVoter(m) => member(b"RAFT.ADDVOTER", &m),
        Command::AddLearner(m) => member(b"RAFT.ADDLEARNER", &m),
        Command::Promote(i) => simple(&i.target, &[b"RAFT.PROMOTE", i.id.to_string().as_bytes()]),
        Command::Remove(i) => simple(&i.target, &[b"RAFT.REMOVE", i.id.to_string().as_bytes()]),
        Command::TransferLeader(i) => {
            simple(&i.target, &[b"RAFT.TRANSFER", i.id.to_string().as_bytes()])
        }
        Command::Snapshot { target } => simple(&target, &[b"RAFT.SNAPSHOT"]),
    }
}

fn member(cmd: &[u8], m: &cli::MemberArgs) -> Result<(), CliError> {
    let id = m.id.to_string();
    let raft = m.raft_addr.to_string();
    let client_addr = m.client_addr.map(|c| c.to_string());
    let mut args: Vec<&[u8]> = vec![cmd, id.as_bytes(), raft.as_bytes()];
    if let Some(c) = &client_addr {
        args.push(c.as_bytes());
    }
    client::print(&client::call(&m.target.addr, &args)?);
    Ok(())
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => e.exit(),
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ringraft: error: {e}");
            ExitCode::FAILURE
        }
    }
}
