//! End-to-end tests of what clients and operators probe: `/metrics` scraped over HTTP from a
//! `ringraft serve` started from a TOML config file, the election counter moving after a
//! leadership transfer made with the CLI, and the command set driven by redis-py and
//! redis-cli, error cases included (unknown command, wrong arity, oversized value: the
//! connection survives; malformed protocol: that connection alone is closed).
//! A test whose tool is missing prints a line saying so and passes without it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::{addr_after, free_addr, have, Proc, BIN, WAIT};

/// The server's largest value (`ringraft::kv::VALUE_BYTES_MAX`).
const VALUE_BYTES_MAX: usize = ringraft::kv::VALUE_BYTES_MAX;

/// One HTTP GET; returns the status line and the body.
fn http_get(addr: SocketAddr, path: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).expect("connect to metrics");
    s.set_read_timeout(Some(WAIT)).expect("timeout");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .expect("GET");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read response");
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    (
        head.lines().next().unwrap_or("").to_string(),
        body.to_string(),
    )
}

/// The value of an unlabelled sample `name` in a Prometheus text body.
fn sample(body: &str, name: &str) -> Option<f64> {
    body.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

/// `(le, cumulative count)` of every `name_bucket` sample, in the order they appear.
fn buckets(body: &str, name: &str) -> Vec<(f64, f64)> {
    let prefix = format!("{name}_bucket{{le=\"");
    body.lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (le, value) = rest.split_once("\"} ").expect("le=\"..\"} value");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("le is a number")
            };
            (le, value.trim().parse().expect("bucket count is a number"))
        })
        .collect()
}

/// What Prometheus requires of a histogram: a TYPE line, increasing `le` bounds ending in
/// `+Inf`, cumulative counts that never decrease, `+Inf` equal to `_count`, and a `_sum`.
fn check_histogram(body: &str, name: &str) {
    assert!(
        body.contains(&format!("# TYPE {name} histogram")),
        "{name} is not a histogram:\n{body}"
    );
    let b = buckets(body, name);
    assert!(b.len() >= 2, "{name} has too few buckets: {b:?}");
    assert!(
        b.windows(2).all(|w| w[0].0 < w[1].0),
        "{name}: le not increasing"
    );
    assert!(
        b.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: counts decrease"
    );
    let (last_le, total) = *b.last().expect("at least two buckets");
    assert_eq!(last_le, f64::INFINITY, "{name}: the last bucket is +Inf");
    assert_eq!(sample(body, &format!("{name}_count")), Some(total));
    assert!(sample(body, &format!("{name}_sum")).is_some_and(|s| s >= 0.0));
}

fn ringraft(args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run ringraft")
}

fn redis_cli(addr: SocketAddr, args: &[&str], stdin: &[u8]) -> String {
    let mut child = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("redis-cli");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(stdin)
        .expect("write stdin");
    let out = child.wait_with_output().expect("redis-cli output");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A one-node `serve` from a TOML file with metrics on a port the kernel picks, and an
/// election timeout longer than the default (the node must still elect itself).
fn serve_from_config(dir: &std::path::Path) -> (Proc, SocketAddr, SocketAddr) {
    let config = dir.join("node.toml");
    let toml = format!(
        "id = 1\ncluster_id = 9\ndata_dir = {:?}\nraft_addr = \"{}\"\nclient_addr = \"{}\"\n\
         metrics_addr = \"127.0.0.1:0\"\ndurability = \"fdatasync\"\nread_mode = \"lease\"\n\
         election_timeout = \"300-600\"\n",
        dir.join("n1").to_str().expect("utf-8 path"),
        free_addr(),
        free_addr(),
    );
    std::fs::write(&config, toml).expect("write config");
    let p = Proc::spawn(&["serve", "--config", config.to_str().expect("utf-8")]);
    let lines = p.until("ready:");
    let client = addr_after(&lines, " client ")[0];
    let metrics = addr_after(&lines, "metrics http://")[0];
    (p, client, metrics)
}

#[test]
fn metrics_are_scraped_over_http_from_a_node_started_from_toml() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (_p, client, metrics) = serve_from_config(dir.path());
    for (k, v) in [("a", "1"), ("b", "2"), ("c", "3")] {
        let out = ringraft(&["put", k, v, "--addr", &client.to_string()]);
        assert!(
            out.status.success(),
            "put: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let out = ringraft(&["snapshot", "--addr", &client.to_string()]);
    assert!(
        out.status.success(),
        "snapshot: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (status, body) = http_get(metrics, "/metrics");
    assert_eq!(status, "HTTP/1.1 200 OK");
    for name in [
        "ringraft_proposals_applied_total",
        "ringraft_entries_applied_total",
        "ringraft_wal_appends_total",
        "ringraft_elections_total",
        "ringraft_leader_changes_total",
        "ringraft_became_leader_total",
        "ringraft_snapshots_taken_total",
        "ringraft_snapshots_sent_total",
        "ringraft_snapshots_installed_total",
        "ringraft_term",
        "ringraft_commit_index",
        "ringraft_applied_index",
        "ringraft_snapshot_index",
        "ringraft_is_leader",
        "ringraft_fsync_seconds_count",
        "ringraft_propose_to_apply_seconds_count",
        "ringraft_apply_batch_seconds_count",
    ] {
        assert!(
            sample(&body, name).is_some(),
            "{name} missing from:\n{body}"
        );
    }
    for name in [
        "ringraft_fsync_seconds",
        "ringraft_propose_to_apply_seconds",
        "ringraft_follower_lag_entries",
    ] {
        assert!(
            body.contains(&format!("# TYPE {name} ")),
            "{name} has no TYPE line"
        );
    }
    for name in [
        "ringraft_fsync_seconds",
        "ringraft_propose_to_apply_seconds",
        "ringraft_apply_batch_seconds",
    ] {
        check_histogram(&body, name);
        assert!(body.contains(&format!("{name}_hdr{{quantile=\"0.99\"}}")));
    }
    // Every applied proposal was timed from propose to apply, and each took some time.
    let applied = sample(&body, "ringraft_proposals_applied_total");
    assert!(sample(&body, "ringraft_propose_to_apply_seconds_count") >= applied);
    assert!(sample(&body, "ringraft_propose_to_apply_seconds_sum") > Some(0.0));
    assert!(sample(&body, "ringraft_fsync_seconds_count") >= Some(1.0));
    assert!(sample(&body, "ringraft_proposals_applied_total") >= Some(3.0));
    assert!(sample(&body, "ringraft_snapshots_taken_total") >= Some(1.0));
    assert!(sample(&body, "ringraft_snapshot_index") >= Some(3.0));
    assert_eq!(sample(&body, "ringraft_is_leader"), Some(1.0));
    let (status, _) = http_get(metrics, "/other");
    assert_eq!(status, "HTTP/1.1 404 Not Found");
}

#[test]
fn a_leadership_transfer_counts_as_an_election() {
    let dir = tempfile::tempdir().expect("tempdir");
    let metrics_addr = free_addr().to_string();
    let p = Proc::spawn(&[
        "cluster",
        "--nodes",
        "3",
        "--port",
        "0",
        "--data-dir",
        dir.path().to_str().expect("utf-8 path"),
        "--metrics-addr",
        &metrics_addr,
    ]);
    let lines = p.until("ready:");
    let clients = addr_after(&lines, " client ");
    let metrics = addr_after(&lines, "metrics http://")[0];
    let elections = || {
        sample(&http_get(metrics, "/metrics").1, "ringraft_elections_total")
            .expect("ringraft_elections_total")
    };
    let before = elections();
    let status =
        String::from_utf8_lossy(&ringraft(&["status", "--addr", &clients[0].to_string()]).stdout)
            .into_owned();
    let leader: u64 = status
        .lines()
        .find_map(|l| l.trim().strip_prefix("raft_leader:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("a leader in {status}"));
    let target = if leader == 1 { "2" } else { "1" };
    let out = ringraft(&["transfer-leader", target, "--addr", &clients[0].to_string()]);
    assert!(
        out.status.success(),
        "transfer: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + WAIT;
    while elections() <= before {
        assert!(
            Instant::now() < deadline,
            "no election counted after the transfer"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The redis-py script: every command of the set, the COMMAND probes, and the error cases
/// on one connection that must survive them.
fn redis_py_script(port: u16) -> String {
    format!(
        r#"
import socket
import redis
r = redis.Redis(host='127.0.0.1', port={port}, single_connection_client=True)
assert r.ping() is True
assert r.echo('hi') == b'hi'
assert r.set('s', 'v') is True
assert r.set('s', 'w', nx=True) is None
assert r.set('s', 'w', xx=True) is True
assert r.get('s') == b'w'
assert r.append('s', 'xyz') == 4
assert r.strlen('s') == 4
assert r.incr('n') == 1 and r.incrby('n', 9) == 10 and r.decr('n') == 9
assert r.mset({{'m1': 'a', 'm2': 'b'}}) is True
assert r.mget('m1', 'm2', 'none') == [b'a', b'b', None]
assert r.exists('m1', 'm2', 'none') == 2
assert r.delete('m1', 'none') == 1
assert r.dbsize() == 3
assert r.client_setname('probe') is True and r.client_getname() == 'probe'
assert r.info('raft')['raft_role'] == 'leader'
# COMMAND probes, as clients send them at connect time.
count = r.command_count()
assert count >= 20, count
table = r.command()
assert table['get']['arity'] == 2 and table['set']['arity'] == -3, table['get']
assert 'readonly' in table['get']['flags'] and 'write' in table['set']['flags']
assert table['mset']['step_count'] == 2
assert len(table) == count
assert b'get' in r.command_list() or 'get' in r.command_list()
# redis-py parses every COMMAND reply as COMMAND INFO entries (so DOCS, and INFO of an
# unknown name, which is nil, are left to the redis-cli test).
assert r.execute_command('COMMAND', 'INFO', 'get')['get']['arity'] == 2
# Errors: the connection survives each.
def fails(want, *args):
    try:
        r.execute_command(*args)
    except redis.exceptions.ResponseError as e:
        assert want in str(e), (want, str(e))
    else:
        raise AssertionError(f'{{args}} did not fail')
fails('unknown command', 'NOSUCH', 'x')
fails('wrong number of arguments', 'GET')
fails('wrong number of arguments', 'SET', 'k')
fails('not an integer', 'INCR', 's')
fails('not supported', 'SET', 'k', 'v', 'EX', '10')
fails('longer than', 'SET', 'big', b'x' * ({VALUE_BYTES_MAX} + 1))
assert r.get('big') is None
assert r.get('s') == b'wxyz'
# Malformed protocol closes that connection only.
bad = socket.create_connection(('127.0.0.1', {port}))
bad.sendall(b'*1\r\n$abc\r\n')
got = b''
while True:
    chunk = bad.recv(4096)
    if not chunk:
        break
    got += chunk
assert got.startswith(b'-ERR Protocol error'), got
assert r.ping() is True and r.get('s') == b'wxyz'
print('redis-py ok')
"#
    )
}

#[test]
fn redis_py_drives_the_command_set_and_its_errors() {
    if !have("python3", &["-c", "import redis"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_p, client, _) = serve_from_config(dir.path());
    let out = Command::new("python3")
        .args(["-c", &redis_py_script(client.port())])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "redis-py: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("redis-py ok"));
}

#[test]
fn redis_cli_drives_the_command_set_and_its_errors() {
    if !have("redis-cli", &["--version"]) {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_p, client, _) = serve_from_config(dir.path());
    // One redis-cli session, one connection: the errors in the middle do not end it.
    let session = b"SET a 1\nNOSUCH x\nGET\nSET a\nINCR a\nGET a\nCOMMAND COUNT\nDBSIZE\n";
    let out = redis_cli(client, &[], session);
    // redis-cli prints an empty line after each error.
    let lines: Vec<&str> = out.lines().filter(|l| !l.is_empty()).collect();
    assert_eq!(lines.len(), 8, "{out}");
    assert_eq!(lines[0], "OK");
    assert!(lines[1].contains("unknown command"), "{out}");
    assert!(lines[2].contains("wrong number of arguments"), "{out}");
    assert!(lines[3].contains("wrong number of arguments"), "{out}");
    assert_eq!(lines[4], "2");
    assert_eq!(lines[5], "2");
    assert!(lines[6].parse::<u64>().is_ok_and(|n| n >= 20), "{out}");
    assert_eq!(lines[7], "1");
    // COMMAND INFO and DOCS in redis-cli's own rendering.
    let info = redis_cli(client, &["COMMAND", "INFO", "get"], b"");
    assert!(info.contains("get") && info.contains("readonly"), "{info}");
    // An unknown name's entry is nil, which redis-cli prints as an empty line.
    let unknown = redis_cli(client, &["COMMAND", "INFO", "nosuch"], b"");
    assert_eq!(unknown.trim(), "", "{unknown}");
    let docs = redis_cli(client, &["COMMAND", "DOCS", "set"], b"");
    assert!(
        docs.contains("summary") && docs.contains("Sets a key"),
        "{docs}"
    );
    // An oversized value from stdin (-x): an error, and the server still answers.
    let mut big = vec![b'x'; VALUE_BYTES_MAX + 1];
    big.push(b'\n');
    let out = redis_cli(client, &["-x", "SET", "big"], &big);
    assert!(
        out.contains("longer than"),
        "{}",
        &out[..out.len().min(200)]
    );
    assert_eq!(redis_cli(client, &["EXISTS", "big"], b"").trim(), "0");
    assert_eq!(redis_cli(client, &["GET", "a"], b"").trim(), "2");
}
