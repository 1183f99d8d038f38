//! `ringraft-bench compare` end to end: with etcd and redis-server hidden from `PATH` and no
//! `ringraft` binary, those engines are skipped with a line that names the missing program,
//! the in-process ringraft engine still runs every repetition, and the run succeeds with a
//! table and a JSON report that parse. Nothing here asserts on speed.

use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `compare` with an empty `PATH` (so no etcd or redis-server is found).
fn compare(extra: &[&str]) -> Output {
    let empty = tempfile::tempdir().expect("temporary directory");
    let mut args = vec![
        "compare",
        "--engines",
        "ringraft-memory,etcd,redis,ringraft,openraft,etcd-grpc",
        "--ringraft-bin",
        "/nonexistent/ringraft",
        "--clients",
        "2",
        "--warmup",
        "0s",
        "--duration",
        "300ms",
        "--no-floor",
        "--quiet",
    ];
    args.extend_from_slice(extra);
    Command::new(env!("CARGO_BIN_EXE_ringraft-bench"))
        .args(&args)
        .env("PATH", empty.path())
        .output()
        .expect("run ringraft-bench")
}

#[test]
fn missing_peers_are_skipped_and_the_rest_runs() {
    let out = compare(&["--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    for (engine, why) in [
        ("etcd", "etcd not found"),
        ("redis", "redis-server not found"),
        ("ringraft", "/nonexistent/ringraft not found"),
        // Without the feature it says how to build it; with it, etcd is not on PATH.
        (
            "etcd-grpc",
            if cfg!(feature = "etcd-grpc") {
                "etcd not found"
            } else {
                "this ringraft-bench was built without the `etcd-grpc` feature"
            },
        ),
    ] {
        let line = format!("compare: skipping {engine}: {why}");
        assert!(stderr.contains(&line), "want {line:?} in:\n{stderr}");
    }
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(report["reps"], 3);
    let engines = report["engines"].as_array().expect("engines");
    let by_name = |name: &str| {
        engines
            .iter()
            .find(|e| e["engine"] == name)
            .unwrap_or_else(|| panic!("{name} in the report"))
    };
    let memory = by_name("ringraft-memory");
    assert!(memory["skipped"].is_null());
    let runs = memory["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3);
    assert!(
        runs.iter().all(|r| r["writes"].as_u64() > Some(0)),
        "{runs:?}"
    );
    assert!(memory["ops_s"].as_f64() > Some(0.0));
    for name in ["etcd", "redis", "ringraft"] {
        let e = by_name(name);
        assert!(e["skipped"].is_string(), "{name}: {e}");
        assert!(e["ops_s"].is_null(), "{name}: {e}");
    }
    // No pair has both sides, so there is no ratio (openraft is skipped or, with the
    // feature, paired with ringraft-memory).
    let ratios = report["ratios"].as_array().expect("ratios");
    assert!(
        ratios.iter().all(|r| r["numerator"] == "ringraft-memory"),
        "{ratios:?}"
    );
    // Runs alternate: each repetition's runs appear before the next one's.
    let order: Vec<&str> = report["order"]
        .as_array()
        .expect("order")
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert!(order.contains(&"1:ringraft-memory") && order.contains(&"3:ringraft-memory"));
}

#[test]
fn text_report_has_the_table_and_the_context() {
    let out = compare(&[]);
    assert!(out.status.success(), "stderr: {}", text(&out.stderr));
    let report = text(&out.stdout);
    for want in [
        "| engine | setup | runs | ops/s (median) |",
        "| ringraft-memory |",
        "| etcd | skipped: etcd not found",
        "machine",
        "durability",
        "3/3",
    ] {
        assert!(report.contains(want), "{want:?} missing from:\n{report}");
    }
}

#[test]
fn fewer_than_three_repetitions_are_refused() {
    let out = compare(&["--reps", "2"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("--reps"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_missing_redis_benchmark_is_skipped_with_a_line() {
    let out = compare(&["--redis-benchmark", "--json"]);
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let line = "compare: skipping redis-benchmark: redis-benchmark not found";
    assert!(stderr.contains(line), "want {line:?} in:\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let rb = &report["redis_benchmark"];
    assert!(rb["skipped"].is_string(), "{rb}");
    assert!(rb["set_rps"].is_null(), "{rb}");
}

/// The `ringraft` binary next to this test's `ringraft-bench` (a workspace build puts it
/// there), if it was built.
fn ringraft_next_to_bench() -> Option<std::path::PathBuf> {
    let p = std::path::Path::new(env!("CARGO_BIN_EXE_ringraft-bench")).with_file_name("ringraft");
    p.is_file().then_some(p)
}

fn installed(program: &str) -> bool {
    let found = Command::new(program)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        println!("skipped: {program} is not installed");
    }
    found
}

#[test]
fn redis_benchmark_against_ringraft_cluster_sits_next_to_etcd() {
    if !installed("redis-benchmark") || !installed("etcd") {
        return;
    }
    let Some(bin) = ringraft_next_to_bench() else {
        println!("skipped: no ringraft binary next to ringraft-bench (cargo build --bins)");
        return;
    };
    let data = tempfile::tempdir().expect("temporary directory");
    let out = Command::new(env!("CARGO_BIN_EXE_ringraft-bench"))
        .args(["compare", "--engines", "etcd", "--redis-benchmark"])
        .args(["--rb-requests", "10000", "--clients", "4", "--warmup", "0s"])
        .args(["--duration", "300ms", "--no-floor", "--quiet", "--json"])
        .arg("--ringraft-bin")
        .arg(&bin)
        .arg("--data-root")
        .arg(data.path())
        .output()
        .expect("run ringraft-bench");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let rb = &report["redis_benchmark"];
    assert!(rb["skipped"].is_null(), "{rb}");
    let runs = rb["runs"].as_array().expect("runs");
    assert_eq!(runs.len(), 3, "{rb}");
    for r in runs {
        assert!(r["set_rps"].as_f64() > Some(0.0), "{r}");
        assert!(r["get_rps"].as_f64() > Some(0.0), "{r}");
    }
    assert_eq!(
        rb["paired_reps"], 3,
        "etcd ran in every repetition: {stderr}"
    );
    assert!(rb["set_over_etcd"].as_f64() > Some(0.0), "{rb}");
    let order: Vec<&str> = report["order"]
        .as_array()
        .expect("order")
        .iter()
        .filter_map(|o| o.as_str())
        .collect();
    assert_eq!(order.len(), 6, "{order:?}");
    assert!(order.contains(&"1:redis-benchmark") && order.contains(&"3:etcd"));
}
