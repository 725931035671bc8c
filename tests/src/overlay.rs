//! An overlay lab: a real etcd in a namespace of its own on a bridge, hosts on that bridge each with its own
//! culvertd, and pods made by the real CNI `bridge` plugin with `host-local` IPAM from each host's subnet file,
//! as flannel's CNI plugin would configure them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Lab, check, in_ns, ip, run, unique, wait_until};

/// The underlay: 172.31.0.0/24 on one bridge; etcd from .100, hosts from .1.
pub const ETCD_IP: &str = "172.31.0.100";

/// etcd, run by the lab, in the underlay's namespace: one member, or a cluster of several.
#[derive(Debug)]
pub struct Etcd {
    pub ns: String,
    members: Vec<Member>,
    /// The client URLs of every member, as a profile's `etcd` lists them.
    pub endpoints: Vec<String>,
    /// With TLS: the files (etcd asks clients for a certificate signed by the same CA).
    pub pki: Option<Pki>,
    /// `user:password` for etcdctl, once auth is on.
    pub root: Option<String>,
}

/// A CA, etcd's server certificate for 172.31.0.100, and a client certificate (CN `node1`), made with openssl.
#[derive(Debug, Clone)]
pub struct Pki {
    pub dir: PathBuf,
}

impl Pki {
    pub fn make(dir: PathBuf) -> Self {
        std::fs::create_dir_all(&dir).expect("pki dir");
        let openssl = |args: &[&str]| check(Command::new("openssl").current_dir(&dir).args(args));
        let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
        openssl(
            &[&["req", "-x509"][..], &ec, &["-keyout", "ca-key.pem", "-out", "ca.pem", "-days", "2"]]
                .concat()
                .into_iter()
                .chain(["-subj", "/CN=culvert-test-ca"])
                .collect::<Vec<_>>(),
        );
        for (name, cn, ext) in [
            ("server", "etcd", format!("subjectAltName=IP:{ETCD_IP}\nextendedKeyUsage=serverAuth\n")),
            ("node1", "node1", "extendedKeyUsage=clientAuth\n".to_owned()),
        ] {
            std::fs::write(dir.join(format!("{name}.ext")), ext).expect("ext file");
            openssl(
                &[
                    &["req"][..],
                    &ec,
                    &["-keyout", &format!("{name}-key.pem"), "-out", &format!("{name}.csr")],
                    &["-subj", &format!("/CN={cn}")],
                ]
                .concat(),
            );
            openssl(&[
                "x509",
                "-req",
                "-in",
                &format!("{name}.csr"),
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca-key.pem",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &format!("{name}.pem"),
                "-extfile",
                &format!("{name}.ext"),
            ]);
        }
        Self { dir }
    }

    pub fn file(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }
}

#[derive(Debug)]
struct Member {
    name: String,
    ip: String,
    data_dir: PathBuf,
    child: Option<Child>,
}

impl Etcd {
    /// etcdctl against this etcd (every member).
    pub fn ctl(&self, args: &[&str]) -> String {
        check(self.etcdctl(&self.endpoints.join(",")).args(args))
    }

    fn etcdctl(&self, endpoints: &str) -> Command {
        let mut c = in_ns(&self.ns, "etcdctl");
        c.env("ETCDCTL_API", "3").args(["--endpoints", endpoints]);
        if let Some(pki) = &self.pki {
            c.args(["--cacert", &pki.file("ca.pem"), "--cert", &pki.file("node1.pem")]);
            c.args(["--key", &pki.file("node1-key.pem")]);
        }
        if let Some(root) = &self.root {
            c.args(["--user", root]);
        }
        c
    }

    /// Starts (or starts again, on the same data) every member and waits until the cluster answers.
    pub fn start(&mut self) {
        for i in 0..self.members.len() {
            self.spawn(i);
        }
        self.wait_healthy(&self.endpoints.join(","));
    }

    /// Starts member `i` again and waits until it answers.
    pub fn start_member(&mut self, i: usize) {
        self.spawn(i);
        self.wait_healthy(&self.endpoints[i].clone());
    }

    fn spawn(&mut self, i: usize) {
        let cluster: Vec<String> = self.members.iter().map(|m| format!("{}=http://{}:2380", m.name, m.ip)).collect();
        let m = &mut self.members[i];
        let log = std::fs::File::create(m.data_dir.with_extension("log")).expect("etcd log");
        let scheme = if self.pki.is_some() { "https" } else { "http" };
        let client = format!("{scheme}://{}:2379", m.ip);
        let peer = format!("http://{}:2380", m.ip);
        let mut etcd = in_ns(&self.ns, "etcd");
        if let Some(pki) = &self.pki {
            etcd.args(["--cert-file", &pki.file("server.pem"), "--key-file", &pki.file("server-key.pem")]);
            etcd.args(["--trusted-ca-file", &pki.file("ca.pem"), "--client-cert-auth"]);
        }
        let child = etcd
            .args(["--name", &m.name, "--data-dir"])
            .arg(&m.data_dir)
            .args(["--listen-client-urls", &client, "--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer, "--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &cluster.join(","), "--initial-cluster-state", "new"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        m.child = Some(child);
    }

    fn wait_healthy(&self, endpoints: &str) {
        let up = wait_until(Duration::from_secs(20), || {
            run(self.etcdctl(endpoints).args(["endpoint", "health"])).status.success()
        });
        let logs: Vec<String> = self
            .members
            .iter()
            .map(|m| std::fs::read_to_string(m.data_dir.with_extension("log")).unwrap_or_default())
            .collect();
        assert!(up, "etcd did not start: {}", logs.join("\n---\n"));
    }

    /// Ends every member (by its PID) and waits for them.
    pub fn stop(&mut self) {
        for i in 0..self.members.len() {
            self.stop_member(i);
        }
    }

    /// Ends member `i` (by its PID), as when its machine dies.
    pub fn stop_member(&mut self, i: usize) {
        if let Some(mut child) = self.members[i].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Etcd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The underlay namespace with its bridge and a one-member etcd.
pub fn underlay(lab: &mut Lab) -> Etcd {
    underlay_with(lab, 1)
}

/// The underlay namespace with its bridge and a one-member etcd that speaks only TLS and wants a client
/// certificate.
pub fn underlay_tls(lab: &mut Lab) -> Etcd {
    let pki = Pki::make(lab.dir.join("pki"));
    underlay_of(lab, 1, Some(pki))
}

/// The underlay namespace with its bridge and an etcd cluster of `members` at .100, .101, ...
pub fn underlay_with(lab: &mut Lab, members: u8) -> Etcd {
    underlay_of(lab, members, None)
}

/// A one-member etcd without TLS in `ns`, listening on `address`, which the caller put on a link there.
pub fn etcd_at(lab: &Lab, ns: &str, address: &str) -> Etcd {
    let member = Member { name: "n0".into(), ip: address.into(), data_dir: lab.dir.join(unique("etcd")), child: None };
    let endpoints = vec![format!("http://{address}:2379")];
    let mut etcd = Etcd { ns: ns.into(), members: vec![member], endpoints, pki: None, root: None };
    etcd.start();
    etcd
}

fn underlay_of(lab: &mut Lab, members: u8, pki: Option<Pki>) -> Etcd {
    let ns = lab.netns();
    ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]);
    let tag = unique("etcd");
    let members: Vec<Member> = (0..members)
        .map(|i| {
            let ip_addr = format!("172.31.0.{}", 100 + i);
            ip(&["-n", &ns, "addr", "add", &format!("{ip_addr}/24"), "dev", "br0"]);
            Member { name: format!("n{i}"), ip: ip_addr, data_dir: lab.dir.join(format!("{tag}-n{i}")), child: None }
        })
        .collect();
    ip(&["-n", &ns, "link", "set", "br0", "up"]);
    let scheme = if pki.is_some() { "https" } else { "http" };
    let endpoints = members.iter().map(|m| format!("{scheme}://{}:2379", m.ip)).collect();
    let mut etcd = Etcd { ns, members, endpoints, pki, root: None };
    etcd.start();
    etcd
}

/// A host on the bridge at 172.31.0.`n`, with its culvertd (tagged `h<n>`).
pub fn host(lab: &mut Lab, etcd: &Etcd, n: u8, helper_flags: &[&str]) -> String {
    host_at(lab, etcd, n, &format!("172.31.0.{n}/24"), None, helper_flags)
}

/// A host on the bridge at `address`, routed by `default_via` when it is on a subnet of its own, with its
/// culvertd (tagged `h<n>`).
pub fn host_at(
    lab: &mut Lab,
    etcd: &Etcd,
    n: u8,
    address: &str,
    default_via: Option<&str>,
    helper_flags: &[&str],
) -> String {
    let ns = lab.netns();
    let (inside, outside) = (unique("ve"), unique("vb"));
    ip(&["link", "add", &inside, "netns", &ns, "type", "veth", "peer", "name", &outside, "netns", &etcd.ns]);
    ip(&["-n", &ns, "addr", "add", address, "dev", &inside]);
    ip(&["-n", &ns, "link", "set", &inside, "up"]);
    if let Some(via) = default_via {
        ip(&["-n", &ns, "route", "add", "default", "via", via]);
    }
    ip(&["-n", &etcd.ns, "link", "set", &outside, "master", "br0", "up"]);
    // A node routes for its pods, as a Kubernetes node is set up to.
    check(in_ns(&ns, "sysctl").args(["-qw", "net.ipv4.ip_forward=1"]));
    lab.start_helper(&ns, &format!("h{n}"), helper_flags);
    ns
}

/// The subnet file of host `n`: in /run/culvert/, where culvertd may write, named for this test run.
pub fn subnet_file(lab: &mut Lab, n: u8) -> PathBuf {
    let path = PathBuf::from(format!("/run/culvert/{}-h{n}.env", unique("ov")));
    lab.stray_files.push(path.clone());
    path
}

/// An overlay profile for host `n`.
pub fn profile(etcd: &Etcd, n: u8, subnet_file: &std::path::Path, extra: &str) -> String {
    let endpoints: Vec<String> = etcd.endpoints.iter().map(|e| format!("\"{e}\"")).collect();
    format!(
        "kind = \"overlay\"\netcd = [{}]\npublic_ip = \"172.31.0.{n}\"\nsubnet_file = \"{}\"\n{extra}",
        endpoints.join(", "),
        subnet_file.display()
    )
}

/// The value of `KEY=` in a subnet file.
pub fn subnet_value(file: &std::path::Path, key: &str) -> String {
    let text = std::fs::read_to_string(file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
    text.lines().find_map(|l| l.strip_prefix(&format!("{key}="))).unwrap_or_default().to_owned()
}

/// A pod of host `host_ns`: a namespace given an address from the host's subnet by the CNI bridge plugin with
/// host-local IPAM, configured from the subnet file as flannel's CNI plugin would. Returns (namespace, address).
pub fn pod(lab: &mut Lab, host_ns: &str, file: &std::path::Path) -> (String, String) {
    let pod = lab.netns();
    // host-local takes the network's own address; the subnet file gives the first host's, as flannel's does.
    let subnet =
        subnet_value(file, "FLANNEL_SUBNET").parse::<ipnet::Ipv4Net>().expect("FLANNEL_SUBNET").trunc().to_string();
    let network = subnet_value(file, "FLANNEL_NETWORK");
    let mtu = subnet_value(file, "FLANNEL_MTU");
    let ipam_dir = lab.dir.join(format!("ipam-{host_ns}"));
    let config = serde_json::json!({
        "cniVersion": "0.3.1",
        "name": "culvert-overlay",
        "type": "bridge",
        "bridge": "cni0",
        "isDefaultGateway": true,
        "ipMasq": false,
        "mtu": mtu.parse::<u32>().expect("FLANNEL_MTU"),
        "ipam": {
            "type": "host-local",
            "subnet": subnet,
            "dataDir": ipam_dir,
            "routes": [{"dst": network}],
        },
    });
    let mut child = in_ns(host_ns, "/usr/lib/cni/bridge")
        .env("CNI_COMMAND", "ADD")
        .env("CNI_CONTAINERID", &pod)
        .env("CNI_NETNS", format!("/var/run/netns/{pod}"))
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", "/usr/lib/cni")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run the CNI bridge plugin");
    std::io::Write::write_all(child.stdin.as_mut().expect("stdin"), config.to_string().as_bytes()).expect("config");
    drop(child.stdin.take());
    let out = child.wait_with_output().expect("CNI plugin");
    assert!(
        out.status.success(),
        "CNI ADD failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).expect("CNI result JSON");
    let address =
        result["ips"][0]["address"].as_str().expect("an address").split('/').next().unwrap_or_default().to_owned();
    (pod, address)
}

/// Routes of `ns` to `subnet` (as `ip route` prints them), empty when there is none.
pub fn route_to(ns: &str, subnet: &str) -> String {
    String::from_utf8_lossy(&run(Command::new("ip").args(["-n", ns, "route", "show", subnet])).stdout).trim().to_owned()
}

/// A TCP stream between two pods (socat at both ends) carrying numbered chunks for as long as it runs, so that
/// a test can show that a connection lived through what happened meanwhile.
#[derive(Debug)]
pub struct Stream {
    server: Child,
    client: Child,
    writer: Option<std::thread::JoinHandle<Vec<u8>>>,
    reader: Option<std::thread::JoinHandle<Vec<u8>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Stream {
    /// Opens the stream from `from` to `to_addr` in namespace `to`, and starts sending 1 KiB every 10 ms.
    pub fn open(from: &str, to: &str, to_addr: &str, port: u16) -> Self {
        let mut server = in_ns(to, "socat")
            .args(["-u", &format!("TCP-LISTEN:{port},reuseaddr"), "STDOUT"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("socat server");
        let mut out = server.stdout.take().expect("server stdout");
        let reader = std::thread::spawn(move || {
            let mut received = Vec::new();
            let _ = std::io::Read::read_to_end(&mut out, &mut received);
            received
        });
        let listening = wait_until(Duration::from_secs(5), || {
            !run(in_ns(to, "ss").args(["-Hltn", &format!("sport = :{port}")])).stdout.is_empty()
        });
        assert!(listening, "the receiving socat did not listen");
        let mut client = in_ns(from, "socat")
            .args(["-u", "STDIN", &format!("TCP:{to_addr}:{port},connect-timeout=5")])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("socat client");
        let mut stdin = client.stdin.take().expect("client stdin");
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopping = stop.clone();
        let writer = std::thread::spawn(move || {
            let mut sent = Vec::new();
            let mut n: u32 = 0;
            while !stopping.load(std::sync::atomic::Ordering::Relaxed) {
                let chunk: Vec<u8> = (0..1024u32).map(|i| (n.wrapping_mul(31).wrapping_add(i) % 251) as u8).collect();
                if std::io::Write::write_all(&mut stdin, &chunk).is_err() {
                    break;
                }
                sent.extend_from_slice(&chunk);
                n += 1;
                std::thread::sleep(Duration::from_millis(10));
            }
            sent
        });
        Self { server, client, writer: Some(writer), reader: Some(reader), stop }
    }

    /// Ends the stream and returns (sent, received): equal when the connection lived throughout.
    pub fn close(mut self) -> (Vec<u8>, Vec<u8>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let sent = self.writer.take().expect("writer").join().expect("writer thread");
        let client_ok = wait_until(Duration::from_secs(10), || matches!(self.client.try_wait(), Ok(Some(_))));
        assert!(client_ok, "the sending socat did not finish");
        let server_ok = wait_until(Duration::from_secs(10), || matches!(self.server.try_wait(), Ok(Some(_))));
        assert!(server_ok, "the receiving socat did not see the stream end");
        let received = self.reader.take().expect("reader").join().expect("reader thread");
        (sent, received)
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for child in [&mut self.client, &mut self.server] {
            if matches!(child.try_wait(), Ok(None)) {
                let _ = child.kill();
            }
            let _ = child.wait();
        }
    }
}
