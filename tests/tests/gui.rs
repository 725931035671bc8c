//! The desktop app end to end: the real app (built with its UI), driven through WebDriver (tauri-driver with
//! WebKitWebDriver) under Xvfb, talking to a real culvertd in a namespace with a peer in another.

// Test code: a failed unwrap is a failed test, with its location.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use culvert_tests::webdriver::Session;
use culvert_tests::{Lab, SessionKeyring, bin, in_ns, udp_profile, wait_until};

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Where the test run leaves its screenshots of the main views: `$CULVERT_SCREENSHOTS` (scripts/screenshots sets
/// it to docs/screenshots to refresh the README's pictures), else the lab's own directory, which goes with the
/// lab: running the tests never rewrites files of the repository.
fn screenshots(lab: &Lab) -> PathBuf {
    let dir = std::env::var_os("CULVERT_SCREENSHOTS").map(PathBuf::from).unwrap_or_else(|| lab.dir.join("screenshots"));
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

/// Starts Xvfb and returns its display's name. Xvfb picks a free display itself and writes its number once it
/// accepts clients (`-displayfd`): guessing a free number raced with other X servers, and waiting for the socket
/// file gave up on a loaded machine while Xvfb was still compiling its keymap ("Xvfb did not start", seen once).
/// Its stderr goes to the lab's directory and into the failure message.
fn xvfb(lab: &mut Lab) -> String {
    let log = lab.dir.join(format!("{}.xvfb.log", culvert_tests::unique("x")));
    let mut child = Command::new("Xvfb")
        .args(["-displayfd", "1", "-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    lab.children.push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut line);
        let _ = tx.send(line);
    });
    let number = rx.recv_timeout(Duration::from_secs(60)).unwrap_or_default();
    let number = number.trim();
    assert!(
        !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit()),
        "Xvfb did not report a display within 60 s; its stderr:\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    format!(":{number}")
}

/// The app under WebDriver: tauri-driver (and WebKitWebDriver behind it) started in the keyring's session on
/// `display`, the app talking to the helper at `socket`; with `log`, the app's own log (it inherits the driver's
/// stderr) goes there.
fn app_session(lab: &mut Lab, keyring: &SessionKeyring, display: &str, socket: &Path, log: Option<&Path>) -> Session {
    let (port, native) = (free_port(), free_port());
    let mut driver = Command::new(tauri_driver());
    keyring
        .env(&mut driver)
        .args(["--port", &port.to_string(), "--native-port", &native.to_string()])
        .env("DISPLAY", display)
        .env("NO_AT_BRIDGE", "1")
        .env("CULVERT_SOCKET", socket);
    match log {
        Some(log) => {
            let child = driver
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::fs::File::create(log).unwrap())
                .spawn()
                .unwrap();
            lab.children.push(child);
        }
        None => {
            lab.spawn(&mut driver);
        }
    }
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()),
        "tauri-driver did not listen"
    );
    // tauri-driver listens before WebKitWebDriver behind it does: wait for both, and retry the session once
    // more if the first request still finds the proxy's back end not ready (it then closes the connection).
    assert!(
        wait_until(Duration::from_secs(10), || std::net::TcpStream::connect(("127.0.0.1", native)).is_ok()),
        "WebKitWebDriver did not listen"
    );
    (0..3)
        .find_map(|attempt| match Session::start(port, &bin("culvert-app")) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("WebDriver session attempt {attempt}: {e:#}");
                std::thread::sleep(Duration::from_secs(1));
                None
            }
        })
        .expect("no WebDriver session after three attempts")
}

/// The byte count an element shows in its `data-bytes`; 0 while it is not there.
fn data_bytes(app: &Session, css: &str) -> u64 {
    app.find_all(css)
        .unwrap()
        .first()
        .and_then(|e| app.attribute(e, "data-bytes").unwrap())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
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
    let socket = lab.helpers[0].socket.clone();
    let app = app_session(&mut lab, &keyring, &display, &socket, None);
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

    // Import by dropping a file onto the window. WebDriver cannot drag from another program, so the page gets
    // the drop events a file manager's drag would give it, carrying a real File; the app imports it from there.
    let (private, _) = culvert_tests::culvert_keypair();
    let (_, peer_public) = culvert_tests::culvert_keypair();
    let conf = format!(
        "[Interface]\nPrivateKey = {private}\nAddress = 10.60.0.2/32\n\n[Peer]\nPublicKey = {peer_public}\n\
         AllowedIPs = 10.60.0.0/24\nEndpoint = 192.0.2.1:51820\n"
    );
    let dropped = app
        .execute(
            r#"const [name, text] = arguments;
               const dataTransfer = new DataTransfer();
               dataTransfer.items.add(new File([text], name, { type: "text/plain" }));
               for (const type of ["dragenter", "dragover", "drop"]) {
                 document.body.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer }));
               }
               return dataTransfer.files.length;"#,
            serde_json::json!(["roadwarrior.conf", conf]),
        )
        .unwrap();
    assert_eq!(dropped, 1, "the page could not build a drop with a file");
    let item = app.wait_for("li.profile[data-name=\"roadwarrior\"]", Duration::from_secs(10)).unwrap();
    assert!(!app.text(&item).unwrap().contains("unencrypted"), "wireguard is encrypted: {}", app.text(&item).unwrap());
    assert_eq!(
        keyring.lookup("roadwarrior/private_key").as_deref(),
        Some(private.as_str()),
        "the key is not in the keyring"
    );
    let stored = std::fs::read_to_string(keyring.home.join(".config/culvert/profiles/roadwarrior.toml")).unwrap();
    assert!(!stored.contains(&private), "the private key reached the profile file");

    // Its QR code for a phone: first the warning, then the code, which another decoder reads back as exactly the
    // file `culvert export` prints.
    app.click(&app.wait_for("li.profile[data-name=\"roadwarrior\"] .qr", Duration::from_secs(5)).unwrap()).unwrap();
    let warning = app.wait_for("#qr-warning", Duration::from_secs(5)).unwrap();
    assert!(app.text(&warning).unwrap().contains("private key"), "{}", app.page_text());
    assert!(app.find_all("#qr-code").unwrap().is_empty(), "the code was shown before the warning was read");
    app.click(&app.wait_for("#qr-show", Duration::from_secs(5)).unwrap()).unwrap();
    app.wait_for("#qr-code", Duration::from_secs(10)).unwrap();
    let shown = app
        .execute(
            r##"const svg = document.querySelector("#qr-code");
               const dark = Array.from(svg.querySelectorAll("rect.m"), (r) => [+r.getAttribute("x"), +r.getAttribute("y")]);
               return { size: +svg.dataset.size, dark };"##,
            serde_json::json!([]),
        )
        .unwrap();
    let size = shown["size"].as_u64().unwrap() as usize;
    let mut rows = vec![vec![true; size]; size];
    for xy in shown["dark"].as_array().unwrap() {
        rows[xy[1].as_u64().unwrap() as usize][xy[0].as_u64().unwrap() as usize] = false;
    }
    let scanned = culvert_tests::decode_qr_bitmap(&rows).unwrap();
    let exported = keyring.culvert(&socket, &["export", "roadwarrior"]);
    assert_eq!(scanned, String::from_utf8_lossy(&exported.stdout), "the app's QR code is not the exported file");
    app.click(&app.wait_for("#qr-close", Duration::from_secs(5)).unwrap()).unwrap();

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
    let rx = || data_bytes(&app, "#rx-total");
    assert!(wait_until(Duration::from_secs(15), || rx() > 0), "rx never rose: {}", app.page_text());
    let before = rx();
    assert!(wait_until(Duration::from_secs(10), || rx() > before + 5000), "rx stopped at {before}");
    assert!(!app.find_all("#chart canvas").unwrap().is_empty(), "no chart");

    // Edit while connected: saving applies the change to the running tunnel, which keeps carrying traffic.
    app.click(&app.wait_for("li.profile[data-name=\"office\"] .edit", Duration::from_secs(5)).unwrap()).unwrap();
    let mtu = app.wait_for("#field-mtu", Duration::from_secs(5)).unwrap();
    app.clear(&mtu).unwrap();
    app.send_keys(&mtu, "1380").unwrap();
    let save = app.wait_for("#form-save", Duration::from_secs(5)).unwrap();
    let ready = wait_until(Duration::from_secs(10), || app.property(&save, "disabled").unwrap() == false);
    assert!(ready, "the form would not save: {}", app.page_text());
    app.click(&save).unwrap();
    let info = app.wait_for("#info", Duration::from_secs(10)).unwrap();
    let said = app.text(&info).unwrap();
    assert!(said.contains("applied without reconnecting") && said.contains("1380"), "{said}");
    let link = culvert_tests::ip(&["-n", &a, "link", "show", "cv-office"]);
    assert!(link.contains("mtu 1380"), "{link}");
    assert!(culvert_tests::ping(&a, "10.9.0.2", 1), "no traffic after the live change");
    std::thread::sleep(Duration::from_secs(3));
    std::fs::write(screenshots(&lab).join("connected.png"), app.screenshot().unwrap()).unwrap();

    // The packet view shows the pings.
    let tab = app.wait_for("#packets-tab", Duration::from_secs(5)).unwrap();
    app.click(&tab).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || app.find_all("#packet-rows tr").unwrap().len() >= 3),
        "no packets: {}",
        app.page_text()
    );
    // Among them the pings.
    let rows: Vec<String> = app.find_all("#packet-rows tr").unwrap().iter().map(|r| app.text(r).unwrap()).collect();
    assert!(rows.iter().any(|r| r.contains("icmp") && r.contains("10.9.0.")), "{rows:?}");
    std::fs::write(screenshots(&lab).join("packets.png"), app.screenshot().unwrap()).unwrap();

    // The usage view: today's total, kept in SQLite by the app, holds what crossed the tunnel.
    app.click(&app.wait_for("#usage-tab", Duration::from_secs(5)).unwrap()).unwrap();
    let today = || data_bytes(&app, "#usage-today");
    let counted = lab.helpers[0].status("office")["rx_bytes"].as_u64().unwrap();
    assert!(
        wait_until(Duration::from_secs(25), || today() >= counted),
        "today's usage {} stays below the {counted} bytes culvertd counted: {}",
        today(),
        app.page_text()
    );
    std::fs::write(screenshots(&lab).join("usage.png"), app.screenshot().unwrap()).unwrap();
    let db = keyring.home.join(".local/share/culvert/usage.sqlite3");
    assert!(db.exists(), "no usage database at {}", db.display());

    // culvertd dies under the app (kill -9) and comes back: the app says so, reconnects by itself, and shows the
    // truth: the restarted helper cleaned up the dead one's tunnel, so the profile is down.
    assert!(lab.helpers[0].stop_with(9), "culvertd outlived SIGKILL");
    assert!(
        wait_until(Duration::from_secs(10), || app.find_all("#helper-state.state-ok").unwrap().is_empty()),
        "the app did not notice culvertd go away: {}",
        app.page_text()
    );
    let restarted = lab.spawn_helper(&a, "a", &[]).unwrap();
    lab.helpers[0] = restarted;
    assert!(
        wait_until(Duration::from_secs(15), || !app.find_all("#helper-state.state-ok").unwrap().is_empty()),
        "the app did not reconnect to the restarted culvertd: {}",
        app.page_text()
    );
    assert!(
        wait_until(Duration::from_secs(10), || !app
            .find_all("li.profile[data-name=\"office\"] .down")
            .unwrap()
            .is_empty()),
        "after the restart the profile should show as down: {}",
        app.page_text()
    );
    app.click(&app.wait_for("#overview-tab", Duration::from_secs(5)).unwrap()).unwrap();
    let toggle = app.wait_for("li.profile[data-name=\"office\"] .toggle", Duration::from_secs(5)).unwrap();
    app.click(&toggle).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || lab.helpers[0].culvert(&["status", "office"]).status.success()),
        "the app could not connect through the restarted culvertd"
    );
    assert!(culvert_tests::ping(&a, "10.9.0.2", 1), "no traffic through the tunnel after the restart");

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

    // Settings: start at login writes the autostart entry (and removes it), connect on launch keeps the profile.
    app.click(&app.wait_for("#settings-button", Duration::from_secs(5)).unwrap()).unwrap();
    let entry = keyring.home.join(".config/autostart/Culvert.desktop");
    app.click(&app.wait_for("#setting-start-at-login", Duration::from_secs(5)).unwrap()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || entry.exists()), "no autostart entry at {}", entry.display());
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(
        text.contains(&format!("Exec={}", bin("culvert-app").display())),
        "the entry starts something else: {text}"
    );
    app.click(&app.wait_for("input[data-launch=\"office\"]", Duration::from_secs(5)).unwrap()).unwrap();
    let settings = keyring.home.join(".config/culvert/app.toml");
    assert!(
        wait_until(Duration::from_secs(5), || std::fs::read_to_string(&settings)
            .is_ok_and(|t| t.contains("connect_on_launch = [\"office\"]"))),
        "connect on launch was not saved: {:?}",
        std::fs::read_to_string(&settings)
    );
    std::fs::write(screenshots(&lab).join("settings.png"), app.screenshot().unwrap()).unwrap();
    app.click(&app.wait_for("#setting-start-at-login", Duration::from_secs(5)).unwrap()).unwrap();
    assert!(wait_until(Duration::from_secs(5), || !entry.exists()), "the autostart entry stayed");
    app.click(&app.wait_for("#settings-close", Duration::from_secs(5)).unwrap()).unwrap();

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
    std::fs::write(screenshots(&lab).join("new-profile.png"), app.screenshot().unwrap()).unwrap();
    app.end();
}

/// The tray icon's place on the screen, from the X window tree: (x, y, width, height).
fn tray_icon(display: &str) -> Option<(i32, i32, i32, i32)> {
    let tree = culvert_tests::run(Command::new("xwininfo").args(["-root", "-tree"]).env("DISPLAY", display));
    let text = String::from_utf8_lossy(&tree.stdout).into_owned();
    let line = text.lines().find(|l| l.contains("tray-icon tray app culvert"))?;
    // "... 32x30+0+0  +1246+1": the size, then the position relative to the root.
    let mut parts = line.split_whitespace().rev();
    let abs = parts.next()?;
    let size = parts.next()?.split('+').next()?;
    let (w, h) = size.split_once('x')?;
    let mut xy = abs.trim_start_matches('+').split('+');
    Some((xy.next()?.parse().ok()?, xy.next()?.parse().ok()?, w.parse().ok()?, h.parse().ok()?))
}

/// How much greener than red the icon looks: connected is green, disconnected gray.
fn greenness(display: &str, (x, y, w, h): (i32, i32, i32, i32)) -> f64 {
    let shot = culvert_tests::run(
        Command::new("sh")
            .arg("-c")
            .arg(format!(
                "import -window root -crop {w}x{h}+{x}+{y} png:- | convert png:- -format '%[fx:mean.g-mean.r]' info:"
            ))
            .env("DISPLAY", display),
    );
    String::from_utf8_lossy(&shot.stdout).trim().parse().unwrap_or(0.0)
}

/// The app's top-level windows (a popup menu is one more).
fn app_windows(display: &str) -> usize {
    let tree = culvert_tests::run(Command::new("xwininfo").args(["-root", "-children"]).env("DISPLAY", display));
    String::from_utf8_lossy(&tree.stdout).lines().filter(|l| l.contains("\"culvert-app\"")).count()
}

/// Opens the tray menu and activates its first entry: the first stored profile's toggle. The icon is looked up
/// afresh: the tray host may move it when the app changes its picture or menu.
fn toggle_first_from_tray(display: &str) {
    let (x, y, w, h) = tray_icon(display).expect("the tray icon is gone");
    let xdo = |args: &[&str]| culvert_tests::check(Command::new("xdotool").args(args).env("DISPLAY", display));
    let before = app_windows(display);
    // A click that lands while the icon is still being embedded opens nothing: click again.
    let opened = (0..3).any(|_| {
        xdo(&["mousemove", &(x + w / 2).to_string(), &(y + h / 2).to_string(), "click", "1"]);
        wait_until(Duration::from_secs(3), || app_windows(display) > before)
    });
    assert!(opened, "the tray menu did not open");
    std::thread::sleep(Duration::from_millis(300));
    xdo(&["key", "Down", "Return"]);
    assert!(wait_until(Duration::from_secs(5), || app_windows(display) <= before), "the tray menu did not close");
}

/// A desktop session for the tray tests: helpers in two namespaces with a peer up in the second, a keyring with
/// `profile` stored (a udp tunnel to the peer), and Xvfb with an XEmbed tray host (trayer).
struct Desktop {
    lab: Lab,
    a: String,
    keyring: SessionKeyring,
    socket: PathBuf,
    display: String,
}

impl Desktop {
    fn new(profile: &str) -> Self {
        let mut lab = Lab::new();
        let (a, b) = lab.two_hosts();
        lab.start_helper(&a, "a", &[]);
        lab.start_helper(&b, "b", &[]);
        let peer = lab.profile(
            &format!("{profile}peer"),
            &udp_profile("10.9.0.2/24", 8285, "cv-peer", "172.31.0.1:8285", "10.9.0.0/24", 1400),
        );
        lab.helpers[1].culvert_ok(&["up", peer.to_str().unwrap()]);
        let keyring = SessionKeyring::start(&mut lab);
        let interface = format!("cv-{profile}");
        let file =
            lab.profile(profile, &udp_profile("10.9.0.1/24", 8285, &interface, "172.31.0.2:8285", "10.9.0.0/24", 1400));
        let socket = lab.helpers[0].socket.clone();
        assert!(keyring.culvert(&socket, &["import", file.to_str().unwrap()]).status.success());
        let display = xvfb(&mut lab);
        let mut trayer = Command::new("trayer");
        keyring
            .env(&mut trayer)
            .args(["--edge", "top", "--align", "right", "--widthtype", "request", "--height", "32"])
            .env("DISPLAY", &display);
        lab.spawn(&mut trayer);
        std::thread::sleep(Duration::from_millis(500));
        Self { lab, a, keyring, socket, display }
    }

    /// Starts the app in this session, its log in `log`.
    fn launch(&self, log: &std::path::Path) -> std::process::Child {
        let mut app = Command::new(bin("culvert-app"));
        self.keyring
            .env(&mut app)
            .env("DISPLAY", &self.display)
            .env("NO_AT_BRIDGE", "1")
            .env("CULVERT_SOCKET", &self.socket)
            .stderr(std::fs::File::create(log).unwrap())
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap()
    }
}

/// The tray for real: an XEmbed tray host (trayer) under Xvfb, the app's icon in it, its menu opened and a
/// profile toggled with xdotool; the helper shows the tunnel going up and down, and the icon's color follows.
#[test]
fn the_tray_toggles_a_tunnel_and_its_icon_follows() {
    let mut desk = Desktop::new("home");
    let log = desk.lab.dir.join("app.log");
    let child = desk.launch(&log);
    desk.lab.children.push(child);
    let Desktop { lab, a, display, .. } = &desk;
    // The menu lists the stored profile once the first snapshot came.
    let listed = wait_until(Duration::from_secs(20), || {
        std::fs::read_to_string(&log).unwrap_or_default().contains("with 1 profile(s)")
    });
    assert!(listed, "the tray menu never listed the profile: {}", std::fs::read_to_string(&log).unwrap_or_default());

    let mut icon = None;
    assert!(
        wait_until(Duration::from_secs(20), || {
            icon = tray_icon(display);
            icon.is_some()
        }),
        "no tray icon appeared"
    );
    let icon = icon.unwrap();
    let gray = greenness(display, tray_icon(display).unwrap_or(icon));
    assert!(gray.abs() < 0.05, "a disconnected icon is gray, not {gray}");

    toggle_first_from_tray(display);
    assert!(
        wait_until(Duration::from_secs(10), || lab.helpers[0].culvert(&["status", "home"]).status.success()),
        "the tray did not bring the tunnel up"
    );
    assert!(
        wait_until(Duration::from_secs(5), || greenness(display, tray_icon(display).unwrap_or(icon)) > 0.15),
        "the icon did not turn green: {}",
        greenness(display, tray_icon(display).unwrap_or(icon))
    );
    assert!(culvert_tests::ping(a, "10.9.0.2", 1));

    toggle_first_from_tray(display);
    assert!(
        wait_until(Duration::from_secs(10), || !lab.helpers[0].culvert(&["status", "home"]).status.success()),
        "the tray did not bring the tunnel down"
    );
    assert!(
        wait_until(Duration::from_secs(5), || greenness(display, tray_icon(display).unwrap_or(icon)).abs() < 0.05),
        "the icon did not turn gray again"
    );
}

/// The app's visible windows titled Culvert (the main window; the tray's menu has no title).
fn visible_main_windows(display: &str) -> usize {
    let out = culvert_tests::run(
        Command::new("xdotool").args(["search", "--onlyvisible", "--name", "^Culvert$"]).env("DISPLAY", display),
    );
    String::from_utf8_lossy(&out.stdout).lines().count()
}

/// Settings at launch, for real: with a tray host, "start minimized" keeps the window hidden while the stored
/// profile marked "connect on launch" comes up; a second launch does not start a second app but shows the first
/// one's window.
#[test]
fn the_app_starts_minimized_connects_on_launch_and_a_second_launch_shows_the_first() {
    let mut desk = Desktop::new("work");
    std::fs::write(
        desk.keyring.home.join(".config/culvert/app.toml"),
        "start_minimized = true\nconnect_on_launch = [\"work\", \"gone\"]\n",
    )
    .unwrap();
    let log = desk.lab.dir.join("app.log");
    let first = desk.launch(&log);
    desk.lab.children.push(first);
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let Desktop { lab, a, display, .. } = &desk;

    assert!(
        wait_until(Duration::from_secs(20), || lab.helpers[0].culvert(&["status", "work"]).status.success()),
        "the profile marked connect on launch did not come up: {}",
        read_log()
    );
    assert!(culvert_tests::ping(a, "10.9.0.2", 1), "no traffic through the tunnel connected on launch");
    // A listed profile that no longer exists is reported, and does not stop the others.
    assert!(
        wait_until(Duration::from_secs(10), || read_log().contains("cannot connect gone on launch")),
        "{}",
        read_log()
    );
    assert!(wait_until(Duration::from_secs(20), || tray_icon(display).is_some()), "no tray icon: {}", read_log());
    assert!(read_log().contains("starting minimized"), "{}", read_log());
    assert_eq!(visible_main_windows(display), 0, "the window showed although start minimized is set");

    // A second launch hands over to the first (over the session bus) and exits; the first shows its window.
    let mut second = desk.launch(&lab.dir.join("second.log"));
    let exited = wait_until(Duration::from_secs(20), || matches!(second.try_wait(), Ok(Some(_))));
    if !exited {
        let _ = second.kill();
        let _ = second.wait();
    }
    assert!(exited, "a second app kept running: {}", std::fs::read_to_string(lab.dir.join("second.log")).unwrap());
    assert!(
        wait_until(Duration::from_secs(10), || visible_main_windows(display) == 1),
        "the first app did not show its window on the second launch"
    );
}

/// culvertd's switches from the window, for real: "Always on" makes the stored profile a system tunnel (culvertd
/// keeps it root-only and brings it up; `culvert enabled` lists it); lockdown turned on in Settings blocks the
/// host (a udp tunnel is no WireGuard full tunnel, so its traffic stops too) and the tray says why, with its
/// blocked icon; both go off again from the window.
#[test]
fn the_app_keeps_a_profile_always_on_and_lockdown_blocks_with_the_tray_saying_why() {
    let mut desk = Desktop::new("always");
    let log = desk.lab.dir.join("app.log");
    let (socket, display) = (desk.socket.clone(), desk.display.clone());
    let app = app_session(&mut desk.lab, &desk.keyring, &display, &socket, Some(&log));
    let read_log = || std::fs::read_to_string(&log).unwrap_or_default();
    let Desktop { lab, a, .. } = &desk;
    let helper = &lab.helpers[0];
    app.wait_for("#helper-state.state-ok", Duration::from_secs(20)).unwrap();
    app.click(&app.wait_for("li.profile[data-name=\"always\"] .name", Duration::from_secs(10)).unwrap()).unwrap();

    // Always on: culvertd keeps the profile and brings the tunnel up.
    let switch = app.wait_for("#always-on", Duration::from_secs(5)).unwrap();
    assert_eq!(app.property(&switch, "checked").unwrap(), false);
    app.click(&switch).unwrap();
    let enabled = || helper.culvert_ok(&["enabled"]);
    assert!(wait_until(Duration::from_secs(10), || enabled().contains("always: udp up")), "{}", enabled());
    assert!(lab.dir.join("a-config/tunnels/always.toml").exists(), "culvertd did not keep the profile");
    assert!(culvert_tests::ping(a, "10.9.0.2", 1), "no traffic through the tunnel made always on");
    assert!(
        wait_until(Duration::from_secs(5), || !app
            .find_all("li.profile[data-name=\"always\"] .tag.always-on")
            .unwrap()
            .is_empty()),
        "the row does not say always on: {}",
        app.page_text()
    );

    // Lockdown from Settings: culvertd turns it on, nothing but a full tunnel passes, and the tray says why.
    let icon = {
        let mut found = None;
        assert!(wait_until(Duration::from_secs(20), || {
            found = tray_icon(&display);
            found.is_some()
        }));
        found.unwrap()
    };
    app.click(&app.wait_for("#settings-button", Duration::from_secs(5)).unwrap()).unwrap();
    // The switch is culvertd's: it is usable once a snapshot has said what culvertd has.
    let switch = app.wait_for("#setting-lockdown", Duration::from_secs(5)).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || app.property(&switch, "disabled").unwrap() == false),
        "the lockdown switch stays disabled: {}",
        app.page_text()
    );
    app.click(&switch).unwrap();
    let lockdown = || helper.culvert_ok(&["lockdown"]);
    assert!(
        wait_until(Duration::from_secs(10), || lockdown().contains("lockdown is on")),
        "{}: {}",
        lockdown(),
        app.page_text()
    );
    assert!(!culvert_tests::ping(a, "10.9.0.2", 1), "a udp tunnel passed under lockdown");
    assert!(
        wait_until(Duration::from_secs(5), || !app.find_all("#lockdown-state").unwrap().is_empty()),
        "the top bar does not say lockdown is on"
    );
    assert!(
        wait_until(Duration::from_secs(10), || read_log().contains("tray: blocked: lockdown is on")),
        "the tray did not say why it is blocked: {}",
        read_log()
    );
    let red = || greenness(&display, tray_icon(&display).unwrap_or(icon));
    assert!(wait_until(Duration::from_secs(5), || red() < -0.15), "the blocked icon is not red: {}", red());
    std::fs::write(screenshots(lab).join("lockdown.png"), app.screenshot().unwrap()).unwrap();

    // Off again: traffic flows, the tray is back to connected.
    app.click(&app.wait_for("#setting-lockdown", Duration::from_secs(5)).unwrap()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || lockdown().contains("lockdown is off")), "{}", lockdown());
    assert!(wait_until(Duration::from_secs(5), || culvert_tests::ping(a, "10.9.0.2", 1)), "no traffic after lockdown");
    assert!(wait_until(Duration::from_secs(10), || red() > 0.15), "the icon did not turn green again: {}", red());
    app.click(&app.wait_for("#settings-close", Duration::from_secs(5)).unwrap()).unwrap();

    // Always on off: culvertd forgets the profile and brings the tunnel down.
    app.click(&app.wait_for("#always-on", Duration::from_secs(5)).unwrap()).unwrap();
    assert!(wait_until(Duration::from_secs(10), || enabled().contains("no system tunnel")), "{}", enabled());
    assert!(!helper.culvert(&["status", "always"]).status.success(), "the tunnel stayed up");
    assert!(!lab.dir.join("a-config/tunnels/always.toml").exists(), "culvertd kept the profile");
    app.end();
}

/// The notifications a real notification daemon (dunst) received on the app's session bus, as dbus-monitor saw
/// the calls: the whole text of every `Notify` so far.
fn notified(file: &Path) -> String {
    std::fs::read_to_string(file).unwrap_or_default()
}

/// Desktop notifications through a real notification daemon under Xvfb: a tunnel connected, one taken down
/// elsewhere, the helper gone and back; and none once they are turned off in Settings.
#[test]
fn the_app_notifies_of_tunnels_and_the_helper_and_can_be_told_not_to() {
    let mut lab = Lab::new();
    let (a, b) = lab.two_hosts();
    lab.start_helper(&a, "a", &[]);
    lab.start_helper(&b, "b", &[]);
    let peer = lab
        .profile("notepeer", &udp_profile("10.9.0.2/24", 8285, "cv-notepeer", "172.31.0.1:8285", "10.9.0.0/24", 1400));
    lab.helpers[1].culvert_ok(&["up", peer.to_str().unwrap()]);
    let file =
        lab.profile("noted", &udp_profile("10.9.0.1/24", 8285, "cv-noted", "172.31.0.2:8285", "10.9.0.0/24", 1400));
    let keyring = SessionKeyring::start(&mut lab);
    let display = xvfb(&mut lab);

    // The daemon that shows them, and a monitor of what it was sent.
    let mut dunst = Command::new("dunst");
    keyring.env(&mut dunst).env("DISPLAY", &display).stdout(std::process::Stdio::null());
    lab.spawn(&mut dunst);
    let calls = lab.dir.join("notify-calls.txt");
    let mut monitor = Command::new("dbus-monitor");
    keyring
        .env(&mut monitor)
        .args(["--session", "interface='org.freedesktop.Notifications',member='Notify'"])
        .stdin(std::process::Stdio::null())
        .stdout(std::fs::File::create(&calls).unwrap())
        .stderr(std::process::Stdio::null());
    // Not through lab.spawn, which sends what a child prints nowhere.
    lab.children.push(monitor.spawn().unwrap());
    assert!(
        wait_until(Duration::from_secs(5), || notified(&calls).contains("NameAcquired")),
        "dbus-monitor is not listening"
    );
    let owner = || {
        let mut c = Command::new("dbus-send");
        keyring.env(&mut c).args([
            "--session",
            "--print-reply",
            "--dest=org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus.NameHasOwner",
            "string:org.freedesktop.Notifications",
        ]);
        culvert_tests::run(&mut c).stdout.ends_with(b"true\n")
    };
    assert!(wait_until(Duration::from_secs(10), owner), "dunst did not take the notifications' name");

    let socket = lab.helpers[0].socket.clone();
    let app = app_session(&mut lab, &keyring, &display, &socket, None);
    app.wait_for("#helper-state.state-ok", Duration::from_secs(20)).unwrap();
    let input = app.wait_for("#import-file", Duration::from_secs(5)).unwrap();
    app.send_keys(&input, file.to_str().unwrap()).unwrap();
    app.click(&app.wait_for("li.profile[data-name=\"noted\"] .toggle", Duration::from_secs(10)).unwrap()).unwrap();
    let said = |what: &str| wait_until(Duration::from_secs(10), || notified(&calls).contains(what));
    assert!(said("noted connected"), "no notification of the connection: {}", notified(&calls));

    // Down from the command line, not from the app: a surprise to the app, so it says so.
    lab.helpers[0].culvert_ok(&["down", "noted"]);
    assert!(said("noted disconnected"), "no notification of the fall: {}", notified(&calls));

    // The helper stops, and comes back.
    assert!(lab.helpers[0].stop_with(15), "culvertd did not stop on SIGTERM");
    assert!(said("helper stopped"), "no notification of the helper's going: {}", notified(&calls));
    lab.helpers.remove(0);
    // On the same socket: the helper is now the lab's last.
    lab.start_helper(&a, "a", &[]);
    assert!(said("helper is back"), "no notification of the helper's return: {}", notified(&calls));
    let restarted = lab.helpers.len() - 1;

    // Off in Settings: connecting again says nothing.
    app.click(&app.wait_for("#settings-button", Duration::from_secs(5)).unwrap()).unwrap();
    app.click(&app.wait_for("#setting-notifications", Duration::from_secs(5)).unwrap()).unwrap();
    app.click(&app.wait_for("#settings-close", Duration::from_secs(5)).unwrap()).unwrap();
    let connected_before = notified(&calls).matches("noted connected").count();
    let toggle = app.wait_for("li.profile[data-name=\"noted\"] .toggle", Duration::from_secs(10)).unwrap();
    app.click(&toggle).unwrap();
    assert!(
        wait_until(Duration::from_secs(10), || lab.helpers[restarted].culvert(&["status", "noted"]).status.success()),
        "the app did not connect"
    );
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(notified(&calls).matches("noted connected").count(), connected_before, "notified while turned off");
    app.end();
}
