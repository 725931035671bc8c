//! An overlay lab: a real etcd in a namespace of its own on a bridge, hosts on that bridge each with its own
//! culvertd, and pods made by the real CNI `bridge` plugin with `host-local` IPAM from each host's subnet file,
//! as flannel's CNI plugin would configure them.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{Lab, check, in_ns, ip, run, unique, wait_until};

/// The underlay: 172.31.0.0/24 on one bridge; etcd at .100, hosts from .1.
pub const ETCD_IP: &str = "172.31.0.100";

/// etcd, run by the lab, in the underlay's namespace.
#[derive(Debug)]
pub struct Etcd {
    pub ns: String,
    pub data_dir: PathBuf,
    pub endpoint: String,
    pub child: Option<Child>,
}

impl Etcd {
    /// etcdctl against this etcd.
    pub fn ctl(&self, args: &[&str]) -> String {
        check(in_ns(&self.ns, "etcdctl").env("ETCDCTL_API", "3").arg("--endpoints").arg(&self.endpoint).args(args))
    }

    /// Starts (or starts again, on the same data) etcd and waits until it answers.
    pub fn start(&mut self) {
        let log = std::fs::File::create(self.data_dir.with_extension("log")).expect("etcd log");
        let child = in_ns(&self.ns, "etcd")
            .args(["--name", "n0", "--data-dir"])
            .arg(&self.data_dir)
            .args(["--listen-client-urls", &self.endpoint, "--advertise-client-urls", &self.endpoint])
            .args([
                "--listen-peer-urls",
                "http://127.0.0.1:2380",
                "--initial-advertise-peer-urls",
                "http://127.0.0.1:2380",
            ])
            .args(["--initial-cluster", "n0=http://127.0.0.1:2380"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start etcd");
        self.child = Some(child);
        let up = wait_until(Duration::from_secs(15), || {
            run(in_ns(&self.ns, "etcdctl").env("ETCDCTL_API", "3").args([
                "--endpoints",
                &self.endpoint,
                "endpoint",
                "health",
            ]))
            .status
            .success()
        });
        assert!(
            up,
            "etcd did not start: {}",
            std::fs::read_to_string(self.data_dir.with_extension("log")).unwrap_or_default()
        );
    }

    /// Ends etcd (by its PID) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
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

/// The underlay namespace with its bridge and etcd.
pub fn underlay(lab: &mut Lab) -> Etcd {
    let ns = lab.netns();
    ip(&["-n", &ns, "link", "add", "br0", "type", "bridge"]);
    ip(&["-n", &ns, "addr", "add", &format!("{ETCD_IP}/24"), "dev", "br0"]);
    ip(&["-n", &ns, "link", "set", "br0", "up"]);
    let data_dir = lab.dir.join(unique("etcd"));
    let mut etcd = Etcd { ns, data_dir, endpoint: format!("http://{ETCD_IP}:2379"), child: None };
    etcd.start();
    etcd
}

/// A host on the bridge at 172.31.0.`n`, with its culvertd (tagged `h<n>`).
pub fn host(lab: &mut Lab, etcd: &Etcd, n: u8, helper_flags: &[&str]) -> String {
    let ns = lab.netns();
    let (inside, outside) = (unique("ve"), unique("vb"));
    ip(&["link", "add", &inside, "netns", &ns, "type", "veth", "peer", "name", &outside, "netns", &etcd.ns]);
    ip(&["-n", &ns, "addr", "add", &format!("172.31.0.{n}/24"), "dev", &inside]);
    ip(&["-n", &ns, "link", "set", &inside, "up"]);
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
    format!(
        "kind = \"overlay\"\netcd = [\"{}\"]\npublic_ip = \"172.31.0.{n}\"\nsubnet_file = \"{}\"\n{extra}",
        etcd.endpoint,
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
