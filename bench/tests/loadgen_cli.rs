//! The `ringraft-bench` binary against an in-test fake RESP server: the report's figures come
//! from what the server answered, a refusing server makes the run fail, and bad arguments get
//! their own message and exit code without touching the network.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Output};
use std::thread;

/// How the fake server answers every command.
#[derive(Clone, Copy)]
enum Answer {
    /// `+OK` to a SET, a bulk string to a GET.
    Ok,
    /// `-ERR` to everything.
    Refuse,
}

/// Starts a RESP server on a loopback port chosen by the kernel; it serves until the test
/// process exits.
fn fake_server(answer: Answer) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            thread::spawn(move || serve(stream, answer));
        }
    });
    addr
}

/// Reads RESP arrays of bulk strings and answers each in order, until the peer closes.
fn serve(stream: TcpStream, answer: Answer) {
    let mut out = stream.try_clone().expect("clone stream");
    let mut input = BufReader::new(stream);
    while let Some(command) = read_command(&mut input) {
        let reply: &[u8] = match (answer, command.first().map(Vec::as_slice)) {
            (Answer::Refuse, _) => b"-ERR fake server refuses\r\n",
            (Answer::Ok, Some(b"GET" | b"get")) => b"$5\r\nvalue\r\n",
            (Answer::Ok, _) => b"+OK\r\n",
        };
        if out.write_all(reply).is_err() {
            return;
        }
    }
}

fn read_line(input: &mut BufReader<TcpStream>) -> Option<String> {
    let mut line = String::new();
    match input.read_line(&mut line) {
        Ok(0) | Err(_) => None,
        Ok(_) => Some(line.trim_end().to_owned()),
    }
}

fn read_command(input: &mut BufReader<TcpStream>) -> Option<Vec<Vec<u8>>> {
    let head = read_line(input)?;
    let count: usize = head.strip_prefix('*')?.parse().ok()?;
    let mut args = Vec::with_capacity(count);
    for _ in 0..count {
        let len: usize = read_line(input)?.strip_prefix('$')?.parse().ok()?;
        let mut arg = vec![0; len + 2];
        input.read_exact(&mut arg).ok()?;
        arg.truncate(len);
        args.push(arg);
    }
    Some(args)
}

fn bench(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ringraft-bench"))
        .args(args)
        .output()
        .expect("run ringraft-bench")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A short bounded run: a fixed operation count, far inside a generous time bound.
fn run_against(addr: SocketAddr, extra: &[&str]) -> Output {
    let endpoints = addr.to_string();
    let mut args = vec![
        "--endpoints",
        &endpoints,
        "--clients",
        "4",
        "--warmup",
        "0s",
        "--duration",
        "60s",
        "--ops",
        "400",
        "--no-floor",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    bench(&args)
}

#[test]
fn json_report_counts_what_the_server_acknowledged() {
    let addr = fake_server(Answer::Ok);
    let out = run_against(addr, &["--json"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let writes = report["writes"].as_u64().expect("writes");
    assert!(
        writes >= 400,
        "writes {writes}, want at least the 400 asked for"
    );
    assert_eq!(report["errors"], 0);
    assert_eq!(report["reads"], 0);
    assert!(report["throughput_ops_s"].as_f64().expect("throughput") > 0.0);
    let latency = &report["latency"];
    let p50 = latency["p50_us"].as_f64().expect("p50");
    let max = latency["max_us"].as_f64().expect("max");
    assert!(p50 > 0.0 && p50 <= max, "p50 {p50} max {max}");
    assert_eq!(report["workload"]["clients"], 4);
    assert!(!report["cpu"].as_array().expect("cpu").is_empty());
}

#[test]
fn reads_are_sent_as_get_and_counted() {
    let addr = fake_server(Answer::Ok);
    let out = run_against(addr, &["--json", "--reads", "50"]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(report["reads"].as_u64().expect("reads") > 0);
    assert!(report["writes"].as_u64().expect("writes") > 0);
    assert_eq!(report["misses"], 0);
}

#[test]
fn text_report_shows_throughput_and_percentiles() {
    let addr = fake_server(Answer::Ok);
    let out = run_against(addr, &[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report = text(&out.stdout);
    for want in ["ops/s", "p50", "p99", "p99.9", "max"] {
        assert!(report.contains(want), "{want} missing from:\n{report}");
    }
}

#[test]
fn a_refusing_server_fails_the_run_and_names_the_error() {
    let addr = fake_server(Answer::Refuse);
    let out = run_against(addr, &["--json"]);
    assert_eq!(out.status.code(), Some(1), "stderr: {}", text(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert!(report["errors"].as_u64().expect("errors") > 0);
    let first = report["first_error"].as_str().expect("first_error");
    assert!(first.contains("fake server refuses"), "{first}");
}

#[test]
fn out_of_range_arguments_are_refused_before_any_connection() {
    // Port 9 on loopback: nothing is contacted, the workload check comes first.
    let out = bench(&["--endpoints", "127.0.0.1:9", "--clients", "0", "--quiet"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("clients"),
        "{}",
        text(&out.stderr)
    );
    let out = bench(&["--duration", "5x"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("5x"), "{}", text(&out.stderr));
}
