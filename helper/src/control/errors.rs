//! The one place where the tunnel layer's errors become the wire's: each kept its source until here, and is said
//! here as the sentence a user reads, with what to do.

use culvert_core::ipc::IpcError;

use crate::overlay::OverlayError;
use crate::tunnel::TunnelError;

impl From<OverlayError> for IpcError {
    fn from(e: OverlayError) -> Self {
        let fix = match &e {
            OverlayError::Unreachable { .. } | OverlayError::Etcd { .. } => {
                "check that etcd runs and that this host reaches the profile's `etcd` URLs".to_owned()
            }
            OverlayError::Refused { .. } => "check etcd_username and etcd_password (for a stored profile, import it \
                 again), and that etcd grants that user read and write on the prefix"
                .to_owned(),
            OverlayError::NoConfig { key } => format!(
                "put the network's config there first, as for flannel: etcdctl put {key} \
                 '{{\"Network\":\"10.5.0.0/16\",\"Backend\":{{\"Type\":\"vxlan\"}}}}'"
            ),
            OverlayError::BadConfig { .. } => "correct that key of the config JSON in etcd".to_owned(),
            OverlayError::Full { .. } => "make Network larger or SubnetLen longer in the config".to_owned(),
            OverlayError::Contended { .. } => "try again".to_owned(),
            OverlayError::PublicIp(_) => "set `public_ip` in the profile".to_owned(),
            OverlayError::NodeKey(_) => "check the state directory (--state-dir) is root's and writable".to_owned(),
        };
        IpcError::Overlay { message: e.to_string(), fix }
    }
}

impl From<TunnelError> for IpcError {
    fn from(e: TunnelError) -> Self {
        match e {
            TunnelError::Profile { field, reason, fix } => IpcError::InvalidProfile { field, reason, fix },
            TunnelError::Bind { port, source } if source.kind() == std::io::ErrorKind::AddrInUse => {
                IpcError::InvalidProfile {
                    field: "listen_port".into(),
                    reason: format!("UDP port {port} is already in use"),
                    fix: "choose another listen_port, or stop the program that uses it".into(),
                }
            }
            TunnelError::Bind { port, source } => {
                IpcError::System { op: format!("binding UDP port {port}"), message: source.to_string() }
            }
            TunnelError::Device { interface, source } => IpcError::System {
                op: format!("creating the TUN device {interface}"),
                message: match source.raw_os_error() {
                    Some(libc::EPERM) => "permission denied: culvertd must run as root or with CAP_NET_ADMIN".into(),
                    _ => source.to_string(),
                },
            },
            TunnelError::Netlink(n) => IpcError::System { op: n.op, message: n.message },
            TunnelError::Record(source) => IpcError::System {
                op: "writing the tunnel's record in the state directory".into(),
                message: source.to_string(),
            },
            TunnelError::Mark { mark, source } => IpcError::System {
                op: format!("marking the tunnel's socket with fwmark {mark:#x}"),
                message: source.to_string(),
            },
            TunnelError::Sysctl { key, source } => {
                IpcError::System { op: format!("setting sysctl {key}"), message: source.to_string() }
            }
            TunnelError::Dns(message) => IpcError::System { op: "setting DNS".into(), message },
            TunnelError::Uapi(e) => {
                IpcError::System { op: "opening the WireGuard API socket".into(), message: e.to_string() }
            }
            TunnelError::Other { op, message } => IpcError::System { op, message },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_in_use_is_the_profiles_listen_port_and_a_missing_capability_says_which() {
        let busy = TunnelError::Bind { port: 8285, source: std::io::Error::from(std::io::ErrorKind::AddrInUse) };
        match IpcError::from(busy) {
            IpcError::InvalidProfile { field, reason, .. } => {
                assert!(field == "listen_port" && reason.contains("8285"))
            }
            other => panic!("{other:?}"),
        }
        let denied =
            TunnelError::Device { interface: "cv0".into(), source: std::io::Error::from_raw_os_error(libc::EPERM) };
        assert!(IpcError::from(denied).to_string().contains("CAP_NET_ADMIN"));
    }
}
