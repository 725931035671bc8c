//! What a new user hit on a fresh clone, each as it was met: the README's build, the lab script's help, and
//! `culvert watch` in a pipe.

use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use culvert_tests::{Lab, bin, check, run, udp_profile, wait_until};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The README's `cargo build --release` failed on a fresh clone: it built the desktop app, which embeds a UI
/// that is not built yet. A plain build is culvertd and the CLI.
#[test]
fn a_plain_cargo_build_is_the_helper_and_the_cli() {
    let meta =
        check(Command::new(env!("CARGO")).args(["metadata", "--format-version", "1", "--no-deps"]).current_dir(repo()));
    let meta: serde_json::Value = serde_json::from_str(&meta).unwrap();
    let default: Vec<String> = meta["workspace_default_members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|id| {
            meta["packages"]
                .as_array()?
                .iter()
                .find(|p| p["id"] == *id)
                .and_then(|p| p["name"].as_str())
                .map(str::to_owned)
        })
        .collect();
    assert!(
        default.contains(&"culvert-helper".to_owned()) && default.contains(&"culvert-cli".to_owned()),
        "{default:?}"
    );
    assert!(!default.contains(&"culvert-app".to_owned()), "a plain build needs ui/dist: {default:?}");
}

/// `scripts/lab --help` printed a line of the script, and `--seconds` without a value died of an unbound
/// variable. Neither needs root: the arguments are read first.
#[test]
fn the_lab_script_explains_itself_and_its_arguments() {
    let lab = repo().join("scripts/lab");
    let help = run(Command::new("bash").arg(&lab).arg("--help"));
    let text = String::from_utf8_lossy(&help.stdout);
    assert!(help.status.success() && text.contains("--seconds 10") && !text.contains("set -"), "{text}");
    for args in [&["--seconds"][..], &["--seconds", "soon"]] {
        let out = run(Command::new("bash").arg(&lab).args(args));
        let msg = culvert_tests::stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {msg}");
        assert!(msg.contains("--seconds needs a number") && !msg.contains("unbound"), "{msg}");
    }
}

/// `culvert watch NAME | head -1` panicked on the closed pipe; and at `--interval 200` the lines, stamped in
/// whole seconds, looked duplicated.
#[test]
fn watch_stamps_milliseconds_and_leaves_a_closed_pipe_quietly() {
    let mut lab = Lab::new();
    let (a, _b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    let file =
        lab.profile("lab", &udp_profile("10.9.0.1/24", 8285, "cv-watch", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let h = &lab.helpers[0];
    h.culvert_ok(&["up", file.to_str().unwrap()]);
    let mut watch = Command::new(bin("culvert"))
        .arg("--socket")
        .arg(&h.socket)
        .args(["watch", "lab", "--interval", "200"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(watch.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    let second = lines.next().unwrap().unwrap();
    // `09:33:11.214Z lab  rx ...`: two lines 200 ms apart have different stamps.
    let stamp = |l: &str| l.split_whitespace().next().unwrap_or_default().to_owned();
    assert!(stamp(&first).len() == "00:00:00.000Z".len() && stamp(&first) != stamp(&second), "{first}\n{second}");
    // The reader goes, as `head -1` does: culvert ends by itself, successfully, and says nothing.
    drop(lines);
    let ended = wait_until(Duration::from_secs(5), || matches!(watch.try_wait(), Ok(Some(_))));
    if !ended {
        let _ = watch.kill();
    }
    let out = watch.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(ended, "culvert watch kept running after its reader left");
    assert!(out.status.success() && err.is_empty(), "{:?}: {err}", out.status);
}
