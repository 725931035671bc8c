//! A Debian VM booted with systemd, for what a namespace cannot show: the hardened unit under a real PID 1,
//! reboots, and what leaves a machine from its first packets on.
//!
//! The image is Debian bookworm from debootstrap (systemd, its kernel, and the packages a test names), kept under
//! `target/vm/` and keyed by everything it is made from, so a second run boots in seconds. Each VM boots that
//! image copy-on-write (qemu's snapshot: writes live as long as the qemu process, so they outlive guest reboots and
//! are gone after), with a second, small drive of the test's own files at `/mnt/host`. qemu runs in a network
//! namespace of the test's, its NIC a TAP device there (10.88.0.1, the guest 10.88.0.2), and it is driven through a
//! virtio serial port: a small agent in the guest runs each command and answers with its output and exit status.
//! TCG only (KVM cannot run guests on these machines): a boot takes about 30 s on an idle 2-core machine.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use base64::Engine as _;

use crate::{check, ip, run, stderr, unique, wait_until};

/// The host's end of the VM's link, and the guest's address on it.
pub const HOST_ADDR: &str = "10.88.0.1";
pub const GUEST_ADDR: &str = "10.88.0.2";

/// Read in the guest: it changes with every boot.
const BOOT_ID: &str = "cat /proc/sys/kernel/random/boot_id";

const SUITE: &str = "bookworm";
const MIRROR: &str = "http://deb.debian.org/debian";
/// What every image holds besides the test's packages: systemd as init, a kernel with virtio drivers, the tools
/// the agent and the tests run in the guest.
const BASE_PACKAGES: &[&str] =
    &["systemd-sysv", "udev", "linux-image-cloud-amd64", "iproute2", "kmod", "iputils-ping", "procps"];

/// Runs each line from the control port (`SEQ BASE64-COMMAND`) with bash and answers with the output and a marker
/// carrying SEQ and the exit status, so the host can tell an answer from a late answer to an earlier command. The
/// port reads as end-of-file while no host is connected: wait and read again.
const AGENT: &str = r#"#!/bin/bash
exec 3<>/dev/virtio-ports/ctl
while true; do
  if IFS=' ' read -r seq encoded <&3; then
    command=$(printf '%s' "$encoded" | base64 -d)
    out=$(bash -c "$command" 2>&1 </dev/null); rc=$?
    printf '%s\n__CULVERT_RC__ %s %s\n' "$out" "$seq" "$rc" >&3
  else
    sleep 0.2
  fi
done
"#;

/// The port's device unit never became active under systemd 252 here, so the service polls for the port.
const AGENT_UNIT: &str = "[Unit]
Description=Culvert test agent on the virtio control port
[Service]
ExecStartPre=/bin/sh -c 'until [ -e /dev/virtio-ports/ctl ]; do sleep 0.2; done'
ExecStart=/usr/local/sbin/culvert-test-agent
Restart=always
RestartSec=1
[Install]
WantedBy=multi-user.target
";

const NETWORK: &str = "[Match]
Name=eth0
[Network]
Address=10.88.0.2/24
Gateway=10.88.0.1
";

const FSTAB: &str = "/dev/vda / ext4 rw 0 1
/dev/vdb /mnt/host ext4 ro,nofail 0 0
";

/// A bootable image: its disk, and the kernel and initrd qemu boots directly.
#[derive(Debug, Clone)]
pub struct Image {
    pub disk: PathBuf,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
}

fn cache_root() -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../target"))
        .join("vm")
}

/// The package names a .deb depends on (the first of each set of alternatives), for an image it installs into
/// without a network.
pub fn depends_of(deb: &Path) -> Vec<String> {
    let field = check(Command::new("dpkg-deb").arg("--field").arg(deb).arg("Depends"));
    field
        .split(',')
        .filter_map(|d| d.split('|').next()?.split_whitespace().next().map(str::to_owned))
        .filter(|name| !name.is_empty())
        .collect()
}

/// The image with `packages` installed besides the base: built with debootstrap the first time (2-4 minutes), then
/// taken from `target/vm/`.
pub fn image(packages: &[String]) -> Result<Image> {
    image_with(packages, &[])
}

/// As [`image`], with `files` (an absolute path in the guest, and its text) written into it after the packages
/// are installed: configuration the guest must have from its first boot.
pub fn image_with(packages: &[String], files: &[(&str, &str)]) -> Result<Image> {
    let mut wanted: Vec<&str> = packages.iter().map(String::as_str).collect();
    wanted.sort_unstable();
    wanted.dedup();
    let mut recipe = format!(
        "suite {SUITE}\nmirror {MIRROR}\nbase {}\npackages {}\nagent {AGENT}\nunit {AGENT_UNIT}\nnetwork {NETWORK}\n\
         fstab {FSTAB}\n",
        BASE_PACKAGES.join(","),
        wanted.join(",")
    );
    for (path, text) in files {
        recipe.push_str(&format!("file {path}\n{text}\n"));
    }
    let mut hasher = DefaultHasher::new();
    recipe.hash(&mut hasher);
    let dir = cache_root().join(format!("{SUITE}-{:016x}", hasher.finish()));
    let image = Image { disk: dir.join("disk.raw"), kernel: dir.join("vmlinuz"), initrd: dir.join("initrd.img") };
    if fs::read_to_string(dir.join("recipe")).ok().as_deref() == Some(recipe.as_str()) {
        return Ok(image);
    }
    let started = Instant::now();
    let building = dir.with_extension("building");
    // A build that was cut off may have left its /proc mounted.
    let _ = run(Command::new("umount").arg(building.join("root/proc")));
    let _ = fs::remove_dir_all(&building);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&building)?;
    let root = building.join("root");
    // Downloaded packages are kept apart from the image, for the next recipe.
    let debs = cache_root().join("debs");
    fs::create_dir_all(&debs)?;
    let out = run(Command::new("debootstrap")
        .args(["--variant=minbase", &format!("--include={}", BASE_PACKAGES.join(","))])
        .arg(format!("--cache-dir={}", debs.display()))
        .arg(SUITE)
        .arg(&root)
        .arg(MIRROR));
    if !out.status.success() {
        let log = fs::read_to_string(root.join("debootstrap/debootstrap.log")).unwrap_or_default();
        let tail: Vec<&str> = log.lines().rev().take(30).collect();
        bail!("debootstrap failed: {}\n{}", stderr(&out), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
    }
    // apt, not debootstrap, for the test's packages: debootstrap does not resolve virtual packages
    // (libwebkit2gtk-4.1-0 needs a dbus-session-bus).
    if !wanted.is_empty() {
        install_in(&root, &wanted)?;
    }
    let put = |path: &str, text: &str, mode: u32| -> Result<()> {
        let path = root.join(path.trim_start_matches('/'));
        fs::create_dir_all(path.parent().context("a file in a directory")?)?;
        fs::write(&path, text)?;
        check(Command::new("chmod").arg(format!("{mode:o}")).arg(&path));
        Ok(())
    };
    put("/usr/local/sbin/culvert-test-agent", AGENT, 0o755)?;
    put("/etc/systemd/system/culvert-test-agent.service", AGENT_UNIT, 0o644)?;
    put("/etc/systemd/network/10-test.network", NETWORK, 0o644)?;
    put("/etc/fstab", FSTAB, 0o644)?;
    put("/etc/hostname", "culvert-vm\n", 0o644)?;
    for (path, text) in files {
        put(path, text, 0o644)?;
    }
    fs::create_dir_all(root.join("mnt/host"))?;
    // The guest logs in nowhere: root has no password, and the console is only read.
    check(Command::new("chroot").arg(&root).args(["systemctl", "enable", "culvert-test-agent", "systemd-networkd"]));
    // Kernel and initrd are booted by qemu directly, without a boot loader.
    let newest = |prefix: &str| -> Result<PathBuf> {
        let mut found: Vec<PathBuf> = fs::read_dir(root.join("boot"))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with(prefix)))
            .collect();
        found.sort();
        found.pop().with_context(|| format!("no /boot/{prefix}* in the image"))
    };
    fs::copy(newest("vmlinuz-")?, building.join("vmlinuz"))?;
    fs::copy(newest("initrd.img-")?, building.join("initrd.img"))?;
    // Room for the tests' packages and logs; the file is sparse.
    check(Command::new("mke2fs").args(["-q", "-t", "ext4", "-d"]).arg(&root).arg(building.join("disk.raw")).arg("3G"));
    fs::remove_dir_all(&root)?;
    fs::write(building.join("recipe"), &recipe)?;
    fs::rename(&building, &dir)?;
    eprintln!("vm: built image {} in {:.0?}", dir.display(), started.elapsed());
    Ok(image)
}

/// Installs `packages` into the tree at `root` with its own apt (from the mirror), with /proc mounted for their
/// scripts only while they run.
fn install_in(root: &Path, packages: &[&str]) -> Result<()> {
    let proc_dir = root.join("proc");
    check(Command::new("mount").args(["-t", "proc", "proc"]).arg(&proc_dir));
    let apt = |args: &[&str]| {
        run(Command::new("chroot").arg(root).arg("apt-get").args(args).env("DEBIAN_FRONTEND", "noninteractive"))
    };
    let update = apt(&["update", "-qq"]);
    let install = update
        .status
        .success()
        .then(|| apt(&[&["install", "-y", "-qq", "--no-install-recommends"][..], packages].concat()));
    let _ = apt(&["clean"]);
    let _ = run(Command::new("umount").arg(&proc_dir));
    match install {
        None => bail!("apt-get update in the image failed: {}", stderr(&update)),
        Some(out) if !out.status.success() => {
            bail!("apt-get install {packages:?} in the image failed: {}", stderr(&out))
        }
        Some(_) => {}
    }
    let lists = root.join("var/lib/apt/lists");
    for entry in fs::read_dir(&lists)?.flatten() {
        if entry.path().is_file() {
            fs::remove_file(entry.path())?;
        }
    }
    Ok(())
}

/// A running VM, powered off (its qemu killed by PID) and its namespace and files removed when dropped.
#[derive(Debug)]
pub struct Vm {
    pub ns: String,
    pub dir: PathBuf,
    qemu: Child,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
    seq: u64,
}

impl Vm {
    /// Boots `image` with the files of `share` on its second drive (`/mnt/host` in the guest), and waits until its
    /// agent answers. `ns` is a namespace of the caller's (it removes it), with `lo` up.
    pub fn boot(image: &Image, ns: &str, share: &Path) -> Result<Self> {
        let dir = std::env::temp_dir().join(unique("culvert-vm-"));
        fs::create_dir_all(&dir)?;
        let shared = dir.join("share.raw");
        check(Command::new("mke2fs").args(["-q", "-t", "ext4", "-d"]).arg(share).arg(&shared).arg("512M"));
        ip(&["-n", ns, "tuntap", "add", "dev", "tapvm", "mode", "tap"]);
        ip(&["-n", ns, "addr", "add", &format!("{HOST_ADDR}/24"), "dev", "tapvm"]);
        ip(&["-n", ns, "link", "set", "tapvm", "up"]);
        let ctl = dir.join("ctl.sock");
        let drive = |file: &Path, extra: &str| format!("file={},if=virtio,format=raw,{extra}", file.display());
        let qemu = Command::new("ip")
            .args(["netns", "exec", ns, "qemu-system-x86_64", "-accel", "tcg", "-m", "1024", "-smp", "2"])
            .args(["-nodefaults", "-no-user-config", "-display", "none", "-monitor", "none"])
            .arg("-serial")
            .arg(format!("file:{}", dir.join("console.log").display()))
            .arg("-kernel")
            .arg(&image.kernel)
            .arg("-initrd")
            .arg(&image.initrd)
            // idle=halt: TCG's default CPU is an AMD family 15 part, for which the kernel picks the AMD E400
            // idle routine with its broadcast timer; a guest CPU idle in it once left the other spinning on a
            // static key's patch site (a soft lockup of 104 s in hash_conntrack_raw's get_random_once while
            // culvertd wrote to etcd), and plain HLT has no such dependency.
            .args(["-append", "console=ttyS0 root=/dev/vda rw net.ifnames=0 systemd.show_status=1 idle=halt"])
            .arg("-drive")
            .arg(drive(&image.disk, "snapshot=on"))
            .arg("-drive")
            .arg(drive(&shared, "readonly=on"))
            .args(["-netdev", "tap,id=n0,ifname=tapvm,script=no,downscript=no"])
            .args(["-device", "virtio-net-pci,netdev=n0", "-device", "virtio-rng-pci"])
            .arg("-chardev")
            .arg(format!("socket,id=ctl,path={},server=on,wait=off", ctl.display()))
            .args(["-device", "virtio-serial-pci", "-device", "virtserialport,chardev=ctl,name=ctl"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(fs::File::create(dir.join("qemu.log"))?)
            .spawn()
            .context("starting qemu-system-x86_64 (scripts/setup installs qemu-system-x86)")?;
        let started = Instant::now();
        let connect = || UnixStream::connect(&ctl).ok();
        let mut stream = None;
        wait_until(Duration::from_secs(10), || {
            stream = connect();
            stream.is_some()
        });
        let Some(stream) = stream else {
            let qemu_log = fs::read_to_string(dir.join("qemu.log")).unwrap_or_default();
            let mut qemu = qemu;
            let _ = qemu.kill();
            let _ = qemu.wait();
            bail!("qemu did not open its control socket: {qemu_log}");
        };
        let writer = stream.try_clone()?;
        let mut vm = Self { ns: ns.to_owned(), dir, qemu, reader: BufReader::new(stream), writer, seq: 0 };
        vm.wait_for_agent(Duration::from_secs(300))?;
        // The agent runs what it is sent, and says how it ended: a harness that answered 0 to everything would
        // pass every test.
        let answer = vm.try_sh("echo agent; exit 3", Duration::from_secs(30))?;
        if answer != (3, "agent\n".to_owned()) {
            bail!("the guest's agent answered {answer:?} to `echo agent; exit 3`");
        }
        eprintln!("vm: booted and answering in {:.1?}", started.elapsed());
        Ok(vm)
    }

    /// Waits until the guest's agent answers (after boot or a reboot).
    fn wait_for_agent(&mut self, within: Duration) -> Result<()> {
        let deadline = Instant::now() + within;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.qemu.try_wait() {
                bail!("qemu exited while booting; console:\n{}", self.console_tail(40));
            }
            if let Ok((0, _)) = self.try_sh("true", Duration::from_secs(3)) {
                return Ok(());
            }
        }
        bail!("the guest's agent did not answer within {within:?}; console:\n{}", self.console_tail(40))
    }

    /// The last `lines` lines the guest wrote to its console.
    pub fn console_tail(&self, lines: usize) -> String {
        let text = fs::read_to_string(self.dir.join("console.log")).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    /// Runs `command` with bash in the guest, as root: its exit status and output (stdout and stderr).
    pub fn try_sh(&mut self, command: &str, within: Duration) -> Result<(i32, String)> {
        self.seq += 1;
        let seq = self.seq;
        let encoded = base64::engine::general_purpose::STANDARD.encode(command);
        writeln!(self.writer, "{seq} {encoded}")?;
        self.writer.flush()?;
        let deadline = Instant::now() + within;
        let mut output = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                bail!("no answer within {within:?} to: {command}");
            }
            self.reader.get_ref().set_read_timeout(Some(left))?;
            let mut line = String::new();
            match self.reader.read_line(&mut line) {
                Ok(0) => bail!("the control socket closed"),
                Ok(_) => {}
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    bail!("no answer within {within:?} to: {command}")
                }
                Err(e) => return Err(e.into()),
            }
            if let Some(marker) = line.trim_end().strip_prefix("__CULVERT_RC__ ") {
                let mut fields = marker.split_whitespace();
                let (Some(s), Some(rc)) = (fields.next(), fields.next()) else { continue };
                if s.parse::<u64>().ok() == Some(seq) {
                    return Ok((rc.parse().unwrap_or(-1), output));
                }
                // An earlier command's late answer.
                output.clear();
                continue;
            }
            output.push_str(&line);
        }
    }

    /// Runs `command` in the guest; it must succeed within 2 minutes. Its output.
    pub fn sh(&mut self, command: &str) -> String {
        match self.try_sh(command, Duration::from_secs(120)) {
            Ok((0, out)) => out,
            Ok((rc, out)) => panic!("in the VM, `{command}` exited with {rc}:\n{out}"),
            Err(e) => panic!("in the VM, `{command}`: {e:#}\nconsole:\n{}", self.console_tail(30)),
        }
    }

    /// The guest's boot id: it changes with every boot.
    pub fn boot_id(&mut self) -> String {
        self.sh(BOOT_ID).trim().to_owned()
    }

    /// Reboots the guest through systemd and waits until it answers again, from a new boot.
    pub fn reboot(&mut self) -> Result<()> {
        let before = self.boot_id();
        let started = Instant::now();
        // Answered before systemd stops the agent.
        self.sh("systemd-run --on-active=1 systemctl reboot >/dev/null");
        // Each question is short: one the old agent read but did not answer before it was stopped is never
        // answered, and one it did not read is answered by the new agent, after the boot.
        let deadline = Instant::now() + Duration::from_secs(360);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.qemu.try_wait() {
                bail!("qemu exited ({status}) during the reboot; console:\n{}", self.console_tail(40));
            }
            match self.try_sh(BOOT_ID, Duration::from_secs(3)) {
                Ok((0, id)) if id.trim() != before => {
                    eprintln!("vm: rebooted and answering in {:.1?}", started.elapsed());
                    return Ok(());
                }
                _ => std::thread::sleep(Duration::from_millis(500)),
            }
        }
        bail!("the guest did not reboot; console:\n{}", self.console_tail(40))
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        let _ = run(Command::new("ip").args(["-n", &self.ns, "link", "del", "tapvm"]));
        if std::thread::panicking() {
            eprintln!("vm: the guest's console, last lines:\n{}", self.console_tail(60));
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}
