//! CI smoke test: every scenario at tiny scale (seconds), against the real
//! server, failing on any lost, duplicated, out-of-order or altered delivery.
//! No timing is asserted.
//!
//! The server binary: `KIZUNA_LOADGEN_SERVER_BIN` if set; otherwise
//! `<workspace>/target/debug/kizuna`, built first with
//! `cargo build -p kizuna --bin kizuna` (`CARGO_BIN_EXE_kizuna` exists only
//! for the root package's own tests, and this crate must not depend on the
//! server). The build is a no-op when the binary is current, and it keeps the
//! test from running against a stale server. With `KIZUNA_TEST_DATABASE_URL`
//! set (CI's PostgreSQL pass) the fan-out smoke also runs on PostgreSQL.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("crates/kizuna-loadgen sits two levels below the workspace")
        .to_path_buf()
}

fn server_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("KIZUNA_LOADGEN_SERVER_BIN") {
            return PathBuf::from(bin);
        }
        let cargo = option_env!("CARGO").unwrap_or("cargo");
        let mut build = Command::new(cargo);
        build
            .args(["build", "-p", "kizuna", "--bin", "kizuna"])
            .current_dir(workspace());
        // Cargo sets these for this test process; build scripts (ring, cc)
        // watch some of them, so passing them on would make this build and
        // the next ordinary one rebuild each other's dependencies.
        for (key, _) in std::env::vars_os() {
            let k = key.to_string_lossy();
            if [
                "CARGO_PKG_",
                "CARGO_BIN_",
                "CARGO_CRATE_",
                "CARGO_MANIFEST_",
            ]
            .iter()
            .any(|p| k.starts_with(p))
                || [
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&k.as_ref())
            {
                build.env_remove(&key);
            }
        }
        let status = build.status().expect("run cargo build for the server");
        assert!(status.success(), "building the kizuna server failed");
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| workspace().join("target"));
        let bin = target.join("debug").join("kizuna");
        assert!(bin.is_file(), "no server binary at {}", bin.display());
        bin
    })
}

/// Runs the load generator; returns its report.
fn run(name: &str, args: &[&str], database: Option<&str>) -> Value {
    let out = tempfile::tempdir().expect("report directory");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_kizuna-loadgen"));
    cmd.arg("--server-bin")
        .arg(server_bin())
        .arg("--out")
        .arg(out.path())
        .args(["--max-seconds", "300", "--sqlite-sync", "normal"]);
    if let Some(db) = database {
        cmd.args(["--database", db]);
    }
    let result = cmd.args(args).output().expect("run kizuna-loadgen");
    let stdout = String::from_utf8_lossy(&result.stdout);
    let stderr = String::from_utf8_lossy(&result.stderr);
    let report: Value = std::fs::read(out.path().join("report.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or_else(|| panic!("{name}: no report\nstdout:\n{stdout}\nstderr:\n{stderr}"));
    let c = &report["correctness"];
    for key in ["lost", "duplicated", "out_of_order", "wrong_content"] {
        assert_eq!(c[key], 0, "{name}: {key} deliveries\n{stdout}\n{stderr}");
    }
    assert!(
        c["received"].as_u64().unwrap_or(0) > 0,
        "{name}: nothing was received"
    );
    assert!(
        result.status.success() && report["passed"] == true,
        "{name} failed: {}\n{stdout}\n{stderr}",
        report["failures"]
    );
    assert!(out.path().join("report.md").is_file(), "{name}: report.md");
    if report["plot"].is_string() {
        let png = std::fs::read(out.path().join("latency.png")).expect("latency.png");
        assert_eq!(&png[1..4], b"PNG", "{name}: the plot is a PNG");
    }
    assert!(report["machine"]["cores"].as_u64().unwrap_or(0) >= 1);
    report
}

#[test]
fn fanout_closed_and_open_loop_deliver_every_post_once_in_order() {
    let closed = run(
        "fanout closed loop",
        &[
            "fanout",
            "--groups",
            "2",
            "--members",
            "4",
            "--senders",
            "3",
            "--posts",
            "15",
        ],
        None,
    );
    assert_eq!(closed["results"]["posts_accepted"], 45);
    assert_eq!(closed["results"]["deliveries_live"], 45 * 4);
    let open = run(
        "fanout open loop",
        &[
            "fanout",
            "--groups",
            "2",
            "--members",
            "3",
            "--senders",
            "2",
            "--posts",
            "20",
            "--rate",
            "100",
        ],
        None,
    );
    assert_eq!(open["results"]["posts_accepted"], 40);
}

#[test]
fn fanout_on_postgresql_when_configured() {
    let Ok(url) = std::env::var("KIZUNA_TEST_DATABASE_URL") else {
        eprintln!("KIZUNA_TEST_DATABASE_URL is not set: PostgreSQL smoke skipped");
        return;
    };
    let r = run(
        "fanout on PostgreSQL",
        &[
            "fanout",
            "--groups",
            "1",
            "--members",
            "3",
            "--senders",
            "2",
            "--posts",
            "10",
        ],
        Some(&url),
    );
    assert_eq!(r["results"]["posts_accepted"], 20);
}

#[test]
fn resume_gets_exactly_the_missed_posts_in_order() {
    let r = run(
        "resume",
        &[
            "resume",
            "--missed",
            "40",
            "--rounds",
            "2",
            "--members",
            "3",
        ],
        None,
    );
    let rounds = r["results"]["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2);
    for round in rounds {
        assert_eq!(round["missed"], 40);
        assert_eq!(round["received"], 40);
        assert_eq!(round["anomalies"], 0);
    }
}

#[test]
fn idle_sockets_stay_served() {
    let r = run(
        "idle",
        &[
            "idle",
            "--sockets",
            "12",
            "--sockets-per-user",
            "2",
            "--group-size",
            "3",
            "--hold-secs",
            "2",
            "--heartbeat-secs",
            "1",
            "--settle-secs",
            "0",
        ],
        None,
    );
    assert_eq!(r["results"]["sockets"], 12);
    assert_eq!(r["correctness"]["received"], 12);
}

#[test]
fn storm_clients_all_resubscribe_and_miss_nothing() {
    let r = run(
        "storm",
        &[
            "storm",
            "--clients",
            "12",
            "--group-size",
            "4",
            "--post-rate",
            "20",
            "--before-secs",
            "1",
            "--after-secs",
            "2",
        ],
        None,
    );
    assert_eq!(r["results"]["resubscribed"], 12);
}
