//! `ringraft-bench sweep` end to end: the in-process ringraft engine at two client counts,
//! etcd hidden from `PATH` (skipped with a line, never a failure), and the files it writes:
//! `sweep.json` that parses with one point per engine and count, and two SVG charts that
//! name the engine that ran. Nothing here asserts on speed.

use std::process::{Command, Output};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sweep(out_dir: &std::path::Path, clients: &str) -> Output {
    sweep_with(out_dir, clients, &[])
}

fn sweep_with(out_dir: &std::path::Path, clients: &str, extra: &[&str]) -> Output {
    let empty = tempfile::tempdir().expect("temporary directory");
    Command::new(env!("CARGO_BIN_EXE_ringraft-bench"))
        .args([
            "sweep",
            "--engines",
            "ringraft-memory,etcd",
            "--clients-list",
            clients,
            "--warmup",
            "0s",
            "--duration",
            "300ms",
            "--quiet",
        ])
        .args(extra)
        .arg("--out")
        .arg(out_dir)
        .env("PATH", empty.path())
        .output()
        .expect("run ringraft-bench")
}

#[test]
fn writes_json_and_both_charts() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out_dir = dir.path().join("out");
    let out = sweep(&out_dir, "1,2");
    let stderr = text(&out.stderr);
    assert!(out.status.success(), "stderr: {stderr}");
    assert!(
        stderr.contains("sweep: skipping etcd: etcd not found"),
        "{stderr}"
    );
    let json = std::fs::read(out_dir.join("sweep.json")).expect("sweep.json");
    let report: serde_json::Value = serde_json::from_slice(&json).expect("JSON");
    let points = report["points"].as_array().expect("points");
    assert_eq!(points.len(), 4, "2 engines x 2 client counts: {points:?}");
    for clients in [1, 2] {
        let p = points
            .iter()
            .find(|p| p["engine"] == "ringraft-memory" && p["clients"] == clients)
            .expect("a ringraft-memory point");
        assert!(p["ops_s"].as_f64() > Some(0.0), "{p}");
        assert!(p["p99_us"].as_f64() >= p["p50_us"].as_f64(), "{p}");
        assert_eq!(p["runs"], 3, "three runs per point by default: {p}");
        assert_eq!(p["reports"].as_array().map(Vec::len), Some(3), "{p}");
        let (lo, hi) = (&p["ops_s_range"][0], &p["ops_s_range"][1]);
        assert!(lo.as_f64() <= p["ops_s"].as_f64() && p["ops_s"].as_f64() <= hi.as_f64());
        let etcd = points
            .iter()
            .find(|p| p["engine"] == "etcd" && p["clients"] == clients)
            .expect("an etcd point");
        assert!(etcd["ops_s"].is_null());
        assert!(etcd["not_run"]
            .as_str()
            .is_some_and(|s| s.starts_with("skipped")));
    }
    for chart in ["throughput.svg", "latency.svg"] {
        let svg = std::fs::read_to_string(out_dir.join(chart)).expect(chart);
        assert!(svg.starts_with("<svg"), "{chart}");
        assert!(svg.contains("ringraft-memory"), "{chart} has the legend");
        assert!(svg.contains("clients"), "{chart} has the axis label");
        assert!(
            !svg.contains(">etcd"),
            "{chart}: a skipped engine has no line"
        );
    }
    assert!(text(&out.stdout).contains("| ringraft-memory | 2 |"));
}

#[test]
fn a_zero_client_count_is_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = sweep(dir.path(), "0,4");
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--clients-list"));
}

#[test]
fn fewer_than_three_runs_per_point_are_refused() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let out = sweep_with(dir.path(), "1", &["--reps", "2"]);
    assert_eq!(out.status.code(), Some(2), "stderr: {}", text(&out.stderr));
    assert!(text(&out.stderr).contains("--reps must be between 3"));
}
