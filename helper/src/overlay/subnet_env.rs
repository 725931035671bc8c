//! flannel's subnet file (`/run/flannel/subnet.env`), which CNI configs and scripts read: written as flanneld
//! writes it (`WriteSubnetFile`), atomically, mode 0644, never through a symbolic link.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use culvert_core::profile::OVERLAY_SUBNET_DIRS;
use ipnet::Ipv4Net;

/// The file's text, in flanneld's order.
pub fn text(network: Ipv4Net, subnet: Ipv4Net, mtu: u16, ip_masq: bool) -> String {
    let first = Ipv4Net::new(ip_first(subnet), subnet.prefix_len()).unwrap_or(subnet);
    format!("FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={first}\nFLANNEL_MTU={mtu}\nFLANNEL_IPMASQ={ip_masq}\n")
}

fn ip_first(subnet: Ipv4Net) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::from(u32::from(subnet.network()).saturating_add(1))
}

/// The subnet a previous run wrote to `path`, if the file is there and says one.
pub fn previous_subnet(path: &Path) -> Option<Ipv4Net> {
    if std::fs::symlink_metadata(path).ok()?.file_type().is_symlink() {
        return None;
    }
    let text = std::fs::read_to_string(path).ok()?;
    let line = text.lines().find_map(|l| l.strip_prefix("FLANNEL_SUBNET="))?;
    line.trim().parse::<Ipv4Net>().ok().map(|n| n.trunc())
}

/// Writes `text` to `path` through a new file beside it, renamed over it. Only directly under one of the
/// directories the profile rules allow; the directory is made if missing, and neither it nor the file may be
/// a symbolic link.
pub fn write(path: &Path, text: &str) -> std::io::Result<()> {
    let refused = |why: &str| std::io::Error::new(std::io::ErrorKind::PermissionDenied, why.to_owned());
    let dir = path.parent().ok_or_else(|| refused("has no directory"))?;
    let allowed = OVERLAY_SUBNET_DIRS.iter().any(|d| Path::new(d) == dir);
    if !allowed {
        return Err(refused("is not directly under /run/flannel/ or /run/culvert/"));
    }
    match std::fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() || !m.is_dir() => {
            return Err(refused("lies in a directory that is a link"));
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            std::fs::create_dir(dir)?;
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))?;
        }
        Err(e) => return Err(e),
    }
    crate::system::files::write_atomically(path, text.as_bytes(), 0o644)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_says_what_flanneld_says_in_its_order() {
        let t = text("10.5.0.0/16".parse().unwrap(), "10.5.34.0/24".parse().unwrap(), 1450, false);
        assert_eq!(
            t,
            "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\nFLANNEL_MTU=1450\nFLANNEL_IPMASQ=false\n"
        );
    }

    #[test]
    fn only_the_two_directories_are_written_and_a_previous_subnet_reads_back() {
        let e = write(Path::new("/tmp/subnet.env"), "x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let e = write(Path::new("/run/flannel/../subnet.env"), "x").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        let dir = std::env::temp_dir().join(format!("culvert-subnet-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("subnet.env");
        std::fs::write(&file, "FLANNEL_NETWORK=10.5.0.0/16\nFLANNEL_SUBNET=10.5.34.1/24\n").unwrap();
        assert_eq!(previous_subnet(&file), Some("10.5.34.0/24".parse().unwrap()));
        let link = dir.join("link.env");
        std::os::unix::fs::symlink(&file, &link).unwrap();
        assert_eq!(previous_subnet(&link), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
