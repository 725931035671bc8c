//! The desktop app end to end: the real app (built with its UI), driven through WebDriver (tauri-driver with
//! WebKitWebDriver) under Xvfb, talking to a real culvertd in a namespace with a peer in another.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use culvert_tests::webdriver::Session;
use culvert_tests::{Lab, SessionKeyring, bin, in_ns, udp_profile, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where the test run leaves its screenshots of the main views: docs/screenshots in the repository.
fn screenshots() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn tauri_driver() -> PathBuf {
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
    let path = home.join("bin/tauri-driver");
    assert!(path.exists(), "{} is missing: scripts/setup installs it (cargo install tauri-driver)", path.display());
    path
}

/// Starts Xvfb on a free display and returns the display's name.
fn xvfb(lab: &mut Lab) -> String {
    let n = (100..400)
        .find(|n| {
            !std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()
                && !std::path::Path::new(&format!("/tmp/.X{n}-lock")).exists()
        })
        .unwrap();
    lab.spawn(Command::new("Xvfb").args([&format!(":{n}"), "-screen", "0", "1280x800x24", "-nolisten", "tcp"]));
    assert!(
        wait_until(Duration::from_secs(10), || std::path::Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()),
        "Xvfb did not start"
    );
    format!(":{n}")
}

#[test]
fn the_app_imports_a_profile_connects_shows_live_traffic_and_packets_and_disconnects() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    let peer =
        lab.profile("guipeer", &udp_profile("10.9.0.2/24", 8285, "cv-guipeer", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.helpers[1].culvert_ok(&["up", peer.to_str().unwrap()]);
    let file =
        lab.profile("office", &udp_profile("10.9.0.1/24", 8285, "cv-office", "172.31.0.2:8285", "10.9.0.0/24", 1400));

    let keyring = SessionKeyring::start(&mut lab);
    let display = xvfb(&mut lab);
    let (port, native) = (free_port(), free_port());
    let mut driver = Command::new(tauri_driver());
    keyring
        .env(&mut driver)
        .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
        .env("DISPLAY", &display)
        .env("NO_AT_BRIDGE", "1")
        .env("CULVERT_SOCKET", &lab.helpers[0].socket);
    lab.spawn(&mut driver);
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "tauri-driver did not listen"
    );

    let app = Session::start(port, &bin("culvert-app")).unwrap();
    let state = app.wait_for("#helper-state.state-ok", Duration::from_secs(20)).unwrap();
    assert!(app.text(&state).unwrap().contains("culvertd"), "{}", app.page_text());

    // Import through the file input, as the file dialog does.
    let input = app.wait_for("#import-file", Duration::from_secs(5)).unwrap();
    app.send_keys(&input, file.to_str().unwrap()).unwrap();
    let item = app.wait_for("li.profile[data-name=\"office\"]", Duration::from_secs(10)).unwrap();
    assert!(
        app.text(&item).unwrap().contains("unencrypted"),
        "udp is labelled unencrypted: {}",
        app.text(&item).unwrap()
    );
    // The name, not the row's middle: the row holds buttons (Edit among them).
    app.click(&app.wait_for("li.profile[data-name=\"office\"] .name", Duration::from_secs(5)).unwrap()).unwrap();

    // Connect; traffic flows; the counters and the chart follow.
    let toggle = app.wait_for("li.profile[data-name=\"office\"] .toggle", Duration::from_secs(5)).unwrap();
    app.click(&toggle).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || lab.helpers[0].culvert(&["status", "office"]).status.success()),
        "the app did not bring the tunnel up"
    );
    lab.spawn(in_ns(&a, "ping").args(["-i", "0.2", "-s", "1000", "10.9.0.2"]));
    let rx = || -> u64 {
        app.find_all("#rx-total")
            .unwrap()
            .first()
            .and_then(|e| app.attribute(e, "data-bytes").unwrap())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    assert!(wait_until(Duration::from_secs(15), || rx() > 0), "rx never rose: {}", app.page_text());
    let before = rx();
    assert!(wait_until(Duration::from_secs(10), || rx() > before + 5000), "rx stopped at {before}");
    assert!(!app.find_all("#chart canvas").unwrap().is_empty(), "no chart");
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(screenshots().join("connected.png"), app.screenshot().unwrap()).unwrap();

    // The packet view shows the pings.
    let tab = app.wait_for("#packets-tab", Duration::from_secs(5)).unwrap();
    app.click(&tab).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || app.find_all("#packet-rows tr").unwrap().len() >= 3),
        "no packets: {}",
        app.page_text()
    );
    let rows = app.find_all("#packet-rows tr").unwrap();
    let first = app.text(&rows[0]).unwrap();
    assert!(first.contains("icmp") && first.contains("10.9.0."), "{first}");
    std::fs::write(screenshots().join("packets.png"), app.screenshot().unwrap()).unwrap();

    // Disconnect; the state follows, and the helper agrees.
    let toggle = app.wait_for("li.profile[data-name=\"office\"] .toggle", Duration::from_secs(5)).unwrap();
    app.click(&toggle).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || !lab.helpers[0].culvert(&["status", "office"]).status.success()),
        "the app did not bring the tunnel down"
    );
    assert!(
        wait_until(Duration::from_secs(10), || !app
            .find_all("li.profile[data-name=\"office\"] .down")
            .unwrap()
            .is_empty()),
        "the profile does not show as down: {}",
        app.page_text()
    );

    // A new profile's form: WireGuard by default, a key pair in one click, and the helper's own rules as you type.
    let new = app.wait_for("#new-profile", Duration::from_secs(5)).unwrap();
    app.click(&new).unwrap();
    let kind = app.wait_for("#form-kind", Duration::from_secs(5)).unwrap();
    assert_eq!(app.property(&kind, "value").unwrap(), "wireguard");
    app.click(&app.wait_for("#generate-keys", Duration::from_secs(5)).unwrap()).unwrap();
    let public = app.wait_for("#form-public-key", Duration::from_secs(5)).unwrap();
    assert!(
        wait_until(Duration::from_secs(5), || app.text(&public).unwrap().trim().len() == 44),
        "no public key shown"
    );
    let key = app.text(&public).unwrap().trim().to_owned();
    app.send_keys(&app.wait_for("#profile-form .peer [name=\"public_key\"]", Duration::from_secs(5)).unwrap(), &key)
        .unwrap();
    app.send_keys(&app.wait_for("#form-name", Duration::from_secs(5)).unwrap(), "fromform").unwrap();
    app.send_keys(&app.wait_for("#profile-form [name=\"address\"]", Duration::from_secs(5)).unwrap(), "10.1.0.1/33")
        .unwrap();
    let shown = wait_until(Duration::from_secs(10), || {
        app.find_all(".field-error").unwrap().iter().any(|e| app.text(e).unwrap().contains("10.1.0.1/33"))
    });
    assert!(shown, "no field error for the bad address: {}", app.page_text());
    std::fs::write(screenshots().join("new-profile.png"), app.screenshot().unwrap()).unwrap();
    app.end();
}
