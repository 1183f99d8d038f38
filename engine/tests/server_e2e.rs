//! End-to-end tests of the `ringraft` binary: real processes, real TCP, real WALs in
//! temporary directories, driven with redis-cli, redis-py, redis-benchmark and a small RESP
//! client. A test whose tool is missing prints a line saying so and passes without it.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{free_addr, have, Proc, BIN, WAIT};
use ringraft::kv::resp::{self, Reply, ReplyReader};

/// The client addresses printed by `cluster` or `serve` (`node N: raft A client B ...`).
fn client_addrs(lines: &[String]) -> Vec<SocketAddr> {
    lines
        .iter()
        .filter(|l| l.starts_with("node ") && l.contains(" client "))
        .map(|l| {
            let a = l.split(" client ").nth(1).expect("client field");
            a.split(' ').next().expect("address").parse().expect("addr")
        })
        .collect()
}

fn cluster(dir: &std::path::Path) -> (Proc, Vec<SocketAddr>) {
    let p = Proc::spawn(&[
        "cluster",
        "--nodes",
        "3",
        "--port",
        "0",
        "--data-dir",
        dir.to_str().expect("utf-8 path"),
    ]);
    let lines = p.until("ready:");
    let addrs = client_addrs(&lines);
    assert_eq!(addrs.len(), 3, "{lines:?}");
    (p, addrs)
}

/// One RESP connection.
struct Conn {
    s: TcpStream,
    r: ReplyReader,
}

impl Conn {
    fn new(addr: SocketAddr) -> Conn {
        let s = TcpStream::connect(addr).expect("connect");
        s.set_read_timeout(Some(WAIT)).expect("timeout");
        Conn {
            s,
            r: ReplyReader::default(),
        }
    }

    fn send(&mut self, args: &[&str]) {
        let mut b = BytesMut::new();
        resp::put_request(&mut b, args);
        self.s.write_all(&b).expect("write");
    }

    fn reply(&mut self) -> Reply {
        let mut chunk = [0u8; 65536];
        loop {
            if let Some((r, _)) = self.r.next_reply().expect("valid reply") {
                return r;
            }
            let n = self.s.read(&mut chunk).expect("read");
            assert!(n > 0, "connection closed");
            self.r.buffer().extend_from_slice(&chunk[..n]);
        }
    }

    fn call(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.reply()
    }
}

/// An error a client retries: no leader for now, or a forwarded write whose outcome is unknown.
fn retryable(r: &Reply) -> bool {
    matches!(r, Reply::Error(e) if e.starts_with(b"TRYAGAIN")
        || e.windows(15).any(|w| w == b"outcome unknown"))
}

/// `call`, again while the reply is retryable (at most 100 times, 100 ms apart: a count, so a
/// slow machine makes the test longer, never red).
fn call_retrying(c: &mut Conn, args: &[&str]) -> Reply {
    for _ in 0..100 {
        let r = c.call(args);
        if !retryable(&r) {
            return r;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    c.call(args)
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(Bytes::copy_from_slice(s.as_bytes())))
}

fn ok() -> Reply {
    Reply::Simple(Bytes::from_static(b"OK"))
}

fn redis_cli(addr: SocketAddr, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-h", "127.0.0.1", "-p", &addr.port().to_string()])
        .args(args)
        .output()
        .expect("redis-cli");
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// The `field:value` of an INFO-style text.
fn field(text: &str, name: &str) -> Option<String> {
    text.lines().find_map(|l| {
        l.trim()
            .strip_prefix(&format!("{name}:"))
            .map(str::to_string)
    })
}

fn info(c: &mut Conn, section: &str) -> String {
    match c.call(&["INFO", section]) {
        Reply::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
        other => panic!("INFO: {other:?}"),
    }
}

#[test]
fn cluster_serves_clients_pipelines_and_recovers_after_restart() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, addrs) = cluster(dir.path());
    let mut c = Conn::new(addrs[0]);
    assert_eq!(
        c.call(&["PING"]),
        Reply::Simple(Bytes::from_static(b"PONG"))
    );
    assert_eq!(c.call(&["SET", "a", "1"]), ok());
    assert_eq!(c.call(&["GET", "a"]), bulk("1"));
    assert_eq!(c.call(&["INCRBY", "n", "5"]), Reply::Int(5));
    assert_eq!(c.call(&["SET", "a", "x", "NX"]), Reply::Bulk(None));
    assert_eq!(c.call(&["APPEND", "a", "23"]), Reply::Int(3));
    assert_eq!(c.call(&["STRLEN", "a"]), Reply::Int(3));
    assert_eq!(c.call(&["EXISTS", "a", "zz", "n"]), Reply::Int(2));
    // A 10,000-command pipeline in one write: replies in request order, and a read after a
    // write of the same pipeline sees it.
    let mut burst = BytesMut::new();
    for i in 0..5_000 {
        resp::put_request(&mut burst, &["SET", &format!("p{i}"), &format!("v{i}")]);
        resp::put_request(&mut burst, &["GET", &format!("p{i}")]);
    }
    c.s.write_all(&burst).expect("burst");
    // A leadership change (a loaded machine can delay heartbeats past the election timeout)
    // answers a command with a retryable error: the SET's outcome is then unknown, or the GET
    // was not served. Such pairs are redone after the pipeline; any other reply that differs
    // (a stale read above all) fails.
    let mut redo = Vec::new();
    for i in 0..5_000 {
        let (set, get) = (c.reply(), c.reply());
        if retryable(&set) || retryable(&get) {
            redo.push(i);
            continue;
        }
        assert_eq!(set, ok(), "SET p{i}");
        assert_eq!(get, bulk(&format!("v{i}")), "GET p{i}");
    }
    eprintln!(
        "{} of 5,000 pipelined pairs redone after a retryable error",
        redo.len()
    );
    for i in redo {
        let (k, v) = (format!("p{i}"), format!("v{i}"));
        assert_eq!(
            call_retrying(&mut c, &["SET", &k, &v]),
            ok(),
            "SET {k} again"
        );
        assert_eq!(
            call_retrying(&mut c, &["GET", &k]),
            bulk(&v),
            "GET {k} again"
        );
    }
    assert_eq!(c.call(&["DBSIZE"]), Reply::Int(5_002));
    // Bad requests get errors and the connection goes on.
    let err = |r: Reply| match r {
        Reply::Error(e) => String::from_utf8_lossy(&e).into_owned(),
        other => panic!("expected an error, got {other:?}"),
    };
    assert!(err(c.call(&["NOSUCH"])).starts_with("ERR unknown command"));
    assert!(err(c.call(&["GET"])).starts_with("ERR wrong number of arguments"));
    assert!(err(c.call(&["SET", "k", "v", "EX", "1"])).contains("not supported"));
    assert_eq!(c.call(&["SET", "word", "abc"]), ok());
    assert!(err(c.call(&["INCR", "word"])).contains("not an integer"));
    assert_eq!(c.call(&["GET", "p42"]), bulk("v42"));
    // Malformed protocol closes that connection only.
    let mut bad = TcpStream::connect(addrs[0]).expect("connect");
    bad.write_all(b"*1\r\n$abc\r\n").expect("write");
    let mut answer = String::new();
    bad.read_to_string(&mut answer).expect("read until close");
    assert!(answer.starts_with("-ERR Protocol error"), "{answer:?}");
    assert_eq!(c.call(&["GET", "a"]), bulk("123"));
    p.stop();
    // A second start on the same data directory recovers every acknowledged write.
    let (p, addrs) = cluster(dir.path());
    let mut c = Conn::new(addrs[1]);
    assert_eq!(c.call(&["GET", "a"]), bulk("123"));
    assert_eq!(c.call(&["GET", "p4999"]), bulk("v4999"));
    assert_eq!(c.call(&["DBSIZE"]), Reply::Int(5_003));
    p.stop();
}

#[test]
fn redis_cli_redis_py_and_redis_benchmark_work_unmodified() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (p, addrs) = cluster(dir.path());
    if have("redis-cli", &["--version"]) {
        assert_eq!(redis_cli(addrs[2], &["set", "cli", "hello"]), "OK");
        assert_eq!(redis_cli(addrs[0], &["get", "cli"]), "hello");
        assert_eq!(redis_cli(addrs[1], &["mget", "cli", "none"]), "hello");
    }
    if have("python3", &["-c", "import redis"]) {
        let script = format!(
            "import redis\n\
             r = redis.Redis(host='127.0.0.1', port={})\n\
             assert r.set('py', 'v') is True\n\
             assert r.get('py') == b'v'\n\
             assert r.get('missing') is None\n\
             assert r.incr('pyn') == 1\n\
             assert r.mset({{'m1': 'a', 'm2': 'b'}}) is True\n\
             assert r.mget('m1', 'm2', 'm3') == [b'a', b'b', None]\n\
             assert r.delete('m1', 'm3') == 1\n\
             p = r.pipeline(transaction=False)\n\
             for i in range(200): p.set(f'k{{i}}', i)\n\
             assert p.execute() == [True] * 200\n\
             assert r.info('raft')['raft_role'] in ('leader', 'follower')\n\
             print('redis-py ok')\n",
            addrs[1].port()
        );
        let out = Command::new("python3")
            .args(["-c", &script])
            .output()
            .expect("python3");
        assert!(
            out.status.success(),
            "redis-py: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    if have("redis-benchmark", &["--version"]) {
        let out = Command::new("redis-benchmark")
            .args(["-p", &addrs[0].port().to_string(), "-t", "set,get"])
            .args(["-n", "2000", "-P", "16", "-c", "10", "-q"])
            .output()
            .expect("redis-benchmark");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(text.contains("SET:") && text.contains("GET:"), "{text}");
        let mut c = Conn::new(addrs[0]);
        // redis-benchmark's SETs went through the log: its key is there, with its 3 bytes.
        assert_eq!(c.call(&["STRLEN", "key:__rand_int__"]), Reply::Int(3));
    }
    p.stop();
}

#[test]
fn serve_processes_form_a_cluster_and_a_follower_forwards_after_the_leader_dies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let raft: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let client: Vec<SocketAddr> = (0..3).map(|_| free_addr()).collect();
    let mut procs: Vec<Option<Proc>> = (0..3)
        .map(|i| {
            let mut args = vec![
                "serve".to_string(),
                "--id".into(),
                (i + 1).to_string(),
                "--data-dir".into(),
                dir.path().join(format!("n{i}")).display().to_string(),
                "--raft-addr".into(),
                raft[i].to_string(),
                "--client-addr".into(),
                client[i].to_string(),
            ];
            for j in (0..3).filter(|j| *j != i) {
                args.push("--peer".into());
                args.push(format!("{}={},{}", j + 1, raft[j], client[j]));
            }
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            Some(Proc::spawn(&refs))
        })
        .collect();
    for p in procs.iter().flatten() {
        p.until("ready:");
    }
    let leader_of = |c: &mut Conn| field(&info(c, "raft"), "raft_leader");
    let mut c0 = Conn::new(client[0]);
    let leader: usize = leader_of(&mut c0)
        .and_then(|l| l.parse().ok())
        .expect("a leader");
    let leader = leader - 1;
    let follower = (0..3).find(|i| *i != leader).expect("a follower");
    let mut f = Conn::new(client[follower]);
    assert_eq!(f.call(&["SET", "before", "1"]), ok());
    // With forwarding off, the follower redirects to the leader's client address.
    assert_eq!(f.call(&["RAFT.NOFORWARD", "on"]), ok());
    let moved = format!("MOVED 0 {}", client[leader]);
    assert_eq!(f.call(&["SET", "x", "1"]), Reply::Error(Bytes::from(moved)));
    assert_eq!(f.call(&["RAFT.NOFORWARD", "off"]), ok());
    // SIGKILL the leader; writes through a surviving node go on once a new leader is elected.
    drop(procs[leader].take());
    let survivor = (0..3).find(|i| *i != leader).expect("a survivor");
    let mut s = Conn::new(client[survivor]);
    let deadline = Instant::now() + WAIT;
    let mut written = 0;
    while written < 20 {
        match s.call(&["SET", &format!("after{written}"), "v"]) {
            r if r == ok() => written += 1,
            Reply::Error(e) if e.starts_with(b"TRYAGAIN") || e.starts_with(b"ERR") => {
                assert!(Instant::now() < deadline, "no new leader: {e:?}");
                std::thread::sleep(Duration::from_millis(50));
            }
            other => panic!("unexpected reply {other:?}"),
        }
    }
    // Through whichever survivor is the follower now: its writes are forwarded.
    let new_leader: usize = leader_of(&mut s)
        .and_then(|l| l.parse().ok())
        .expect("leader");
    let other = (0..3)
        .find(|i| *i != leader && *i + 1 != new_leader)
        .expect("the other survivor");
    let mut o = Conn::new(client[other]);
    assert_eq!(o.call(&["SET", "forwarded", "yes"]), ok());
    let forwarded: u64 = field(&info(&mut o, "stats"), "writes_forwarded")
        .and_then(|v| v.parse().ok())
        .expect("writes_forwarded");
    assert!(forwarded >= 1);
    assert_eq!(o.call(&["GET", "before"]), bulk("1"));
    assert_eq!(s.call(&["GET", "forwarded"]), bulk("yes"));
    for p in procs.into_iter().flatten() {
        p.stop();
    }
}

#[test]
fn bad_flags_and_unreachable_nodes_fail_cleanly() {
    let run = |args: &[&str]| {
        let out = Command::new(BIN).args(args).output().expect("run");
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(!out.status.success(), "{args:?} succeeded");
        assert!(!err.contains("panicked"), "{args:?} panicked: {err}");
        err
    };
    run(&["cluster", "--nodes", "0"]);
    run(&["cluster", "--nodes", "many"]);
    run(&["nosuch"]);
    assert!(run(&["serve"]).contains("missing setting: id"));
    assert!(run(&["serve", "--id", "1", "--peer", "garbage"]).contains("missing setting"));
    let dir = tempfile::tempdir().expect("tempdir");
    let (raft, client) = (free_addr().to_string(), free_addr().to_string());
    let data = dir.path().join("n1");
    let node = [
        "serve",
        "--id",
        "1",
        "--data-dir",
        data.to_str().expect("utf-8"),
        "--raft-addr",
        &raft,
        "--client-addr",
        &client,
    ];
    assert!(run(&[&node[..], &["--peer", "garbage"]].concat()).contains("invalid --peer"));
    assert!(run(&[&node[..], &["--read-mode", "fast"]].concat()).contains("invalid value"));
    for (timeout, why) in [
        ("300-200", "MIN must be below MAX"),
        ("40-100", "at least 50"),
        ("105-200", "multiples of the 10 ms tick"),
        ("100", "expected MIN-MAX"),
    ] {
        let err = run(&[&node[..], &["--election-timeout", timeout]].concat());
        assert!(err.contains(why), "--election-timeout {timeout}: {err}");
        let err = run(&["cluster", "--port", "0", "--election-timeout", timeout]);
        assert!(
            err.contains(why),
            "cluster --election-timeout {timeout}: {err}"
        );
    }
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "id = \"one\"\n").expect("write");
    assert!(
        run(&["serve", "--config", bad.to_str().expect("utf-8")]).contains("invalid config file")
    );
    std::fs::write(&bad, "id = 1\nelection_timeout = \"500-100\"\n").expect("write");
    let err = run(&["serve", "--config", bad.to_str().expect("utf-8")]);
    assert!(
        err.contains("invalid config file") && err.contains("MIN must be below MAX"),
        "{err}"
    );
    let closed = free_addr().to_string();
    assert!(run(&["get", "k", "--addr", &closed]).contains("cannot reach"));
    assert!(run(&["status", "--addr", "no-such-host.invalid:1"]).contains("cannot resolve"));
}
