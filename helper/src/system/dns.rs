//! DNS while a tunnel is up: through systemd-resolved over D-Bus where it runs, else through resolvconf where it
//! is installed, else by rewriting /etc/resolv.conf with the original kept in the state directory. Whichever is
//! used is recorded, so `down` and a restart after a crash put things back.

use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The resolver file the fallback rewrites.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// The first line of a resolver file Culvert wrote: how a second tunnel, and crash cleanup, recognize it.
pub(crate) const MARKER: &str = "# Written by culvertd";
/// Debian resolvconf's order of records.
const INTERFACE_ORDER: &str = "/etc/resolvconf/interface-order";
const RESOLVCONF_PATHS: [&str; 2] = ["/usr/sbin/resolvconf", "/sbin/resolvconf"];
/// How long to wait for the system bus before deciding systemd-resolved is not there.
const BUS_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    pub servers: Vec<IpAddr>,
    pub search: Vec<String>,
    /// Send every query to these servers (a full tunnel), not only the search domains'.
    pub default_route: bool,
}

/// How DNS was set for a tunnel, and so how to undo it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "via", rename_all = "snake_case")]
pub enum DnsChange {
    /// Link settings in systemd-resolved; they also go when the link goes.
    Resolved { ifindex: u32, interface: String },
    /// An interface record in resolvconf.
    Resolvconf { interface: String },
    /// /etc/resolv.conf rewritten; `backup` holds the original, or `symlink` what it pointed to.
    File { backup: PathBuf, symlink: Option<PathBuf> },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Resolved,
    Resolvconf,
    File,
}

/// Which way to set DNS on this machine.
pub async fn backend() -> Backend {
    if resolved_runs().await {
        Backend::Resolved
    } else if resolvconf().is_some() {
        Backend::Resolvconf
    } else {
        Backend::File
    }
}

async fn resolved_runs() -> bool {
    let probe = async {
        let conn = zbus::Connection::system().await.ok()?;
        super::bus::name_has_owner(&conn, "org.freedesktop.resolve1").await.ok()
    };
    matches!(tokio::time::timeout(BUS_TIMEOUT, probe).await, Ok(Some(true)))
}

fn resolvconf() -> Option<&'static str> {
    RESOLVCONF_PATHS.into_iter().find(|p| Path::new(p).exists())
}

/// The record's name in resolvconf for a tunnel's link. Debian's resolvconf lists records in the order of
/// `interface-order` and has no exclusive mode (it ignores openresolv's `-x`): a record named after the link
/// alone would fall under the final `*`, after the LAN's, and the tunnel's servers would be asked last. Named
/// under the file's first plain `NAME*` pattern (`tun*` on Debian), as wg-quick names its records, they come
/// first. openresolv has no such file, and takes the link's name.
fn resolvconf_record(interface_order: &str, interface: &str) -> String {
    let prefix = interface_order.lines().map(str::trim).find_map(|line| {
        let name = line.strip_suffix('*')?;
        (!name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')).then_some(name)
    });
    match prefix {
        Some(prefix) => format!("{prefix}.{interface}"),
        None => interface.to_owned(),
    }
}

/// What the change will be, decided before it is made so that it can be recorded first.
pub fn plan(backend: Backend, interface: &str, ifindex: u32, backup: PathBuf) -> Result<DnsChange, String> {
    Ok(match backend {
        Backend::Resolved => DnsChange::Resolved { ifindex, interface: interface.into() },
        Backend::Resolvconf => {
            let order = std::fs::read_to_string(INTERFACE_ORDER).unwrap_or_default();
            DnsChange::Resolvconf { interface: resolvconf_record(&order, interface) }
        }
        Backend::File => {
            if std::fs::read_to_string(RESOLV_CONF).unwrap_or_default().starts_with(MARKER) {
                return Err("another Culvert tunnel has set DNS in /etc/resolv.conf already; bring it down \
                            first, or remove DNS from this profile"
                    .into());
            }
            let meta = std::fs::symlink_metadata(RESOLV_CONF);
            let symlink = match meta {
                Ok(m) if m.file_type().is_symlink() => {
                    Some(std::fs::read_link(RESOLV_CONF).map_err(|e| format!("reading {RESOLV_CONF}: {e}"))?)
                }
                _ => None,
            };
            DnsChange::File { backup, symlink }
        }
    })
}

/// The resolver file's text for `config`.
pub fn resolv_conf_text(tunnel: &str, config: &DnsConfig) -> String {
    let mut out = format!("{MARKER} for tunnel {tunnel}; the original comes back when the tunnel goes down.\n");
    for s in &config.servers {
        out.push_str(&format!("nameserver {s}\n"));
    }
    if !config.search.is_empty() {
        out.push_str(&format!("search {}\n", config.search.join(" ")));
    }
    out
}

/// Makes the change.
pub async fn apply(change: &DnsChange, tunnel: &str, config: &DnsConfig) -> Result<(), String> {
    match change {
        DnsChange::Resolved { ifindex, .. } => resolved_apply(*ifindex, config).await.map_err(|e| e.to_string()),
        DnsChange::Resolvconf { interface } => {
            let text = resolv_conf_text(tunnel, config);
            run_resolvconf(&["-a", interface, "-m", "0", "-x"], Some(&text)).await
        }
        DnsChange::File { backup, symlink } => {
            let current = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
            if let Some(dir) = backup.parent() {
                std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
            }
            // Applied again (a live change of the servers), the file is ours already: the backup keeps the original.
            if symlink.is_none() && !current.starts_with(MARKER) {
                std::fs::write(backup, current).map_err(|e| format!("keeping the original resolver file: {e}"))?;
            }
            write_resolv_conf(&resolv_conf_text(tunnel, config), symlink.is_some())
                .map_err(|e| format!("writing {RESOLV_CONF}: {e}"))
        }
    }
}

/// Puts things back; undoing what is already undone is a no-op.
pub async fn undo(change: &DnsChange) -> io::Result<()> {
    match change {
        DnsChange::Resolved { ifindex, .. } => {
            // A link that is gone took its settings with it; RevertLink on it fails, harmlessly.
            let _ = resolved_revert(*ifindex).await;
            Ok(())
        }
        DnsChange::Resolvconf { interface } => {
            run_resolvconf(&["-d", interface, "-f"], None).await.map_err(io::Error::other)
        }
        DnsChange::File { backup, symlink } => {
            let current = std::fs::read_to_string(RESOLV_CONF).unwrap_or_default();
            if !current.starts_with(MARKER) {
                // Someone else has rewritten it since; theirs wins.
                let _ = std::fs::remove_file(backup);
                return Ok(());
            }
            match symlink {
                Some(target) => {
                    std::fs::remove_file(RESOLV_CONF)?;
                    std::os::unix::fs::symlink(target, RESOLV_CONF)?;
                }
                None => {
                    let original = match std::fs::read(backup) {
                        Ok(b) => b,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                        Err(e) => return Err(e),
                    };
                    // In place: /etc/resolv.conf may be a mount point, which rename cannot replace.
                    std::fs::write(RESOLV_CONF, original)?;
                }
            }
            match std::fs::remove_file(backup) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
                _ => Ok(()),
            }
        }
    }
}

fn write_resolv_conf(text: &str, replace_symlink: bool) -> io::Result<()> {
    if replace_symlink {
        // Never write through the link into another program's file.
        std::fs::remove_file(RESOLV_CONF)?;
    }
    std::fs::write(RESOLV_CONF, text)?;
    let mut perms = std::fs::metadata(RESOLV_CONF)?.permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o644);
    std::fs::set_permissions(RESOLV_CONF, perms)
}

async fn run_resolvconf(args: &[&str], input: Option<&str>) -> Result<(), String> {
    use tokio::io::AsyncWriteExt;
    let program = resolvconf().ok_or("resolvconf is gone")?;
    let mut child = tokio::process::Command::new(program)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .map_err(|e| format!("running {program}: {e}"))?;
    if let (Some(mut stdin), Some(text)) = (child.stdin.take(), input) {
        stdin.write_all(text.as_bytes()).await.map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().await.map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{program} {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

const RESOLVED: &str = "org.freedesktop.resolve1";
const RESOLVED_PATH: &str = "/org/freedesktop/resolve1";
const RESOLVED_MANAGER: &str = "org.freedesktop.resolve1.Manager";

async fn resolved_apply(ifindex: u32, config: &DnsConfig) -> zbus::Result<()> {
    let conn = zbus::Connection::system().await?;
    let index = i32::try_from(ifindex).unwrap_or(i32::MAX);
    let servers: Vec<(i32, Vec<u8>)> = config
        .servers
        .iter()
        .map(|ip| match ip {
            IpAddr::V4(a) => (libc::AF_INET, a.octets().to_vec()),
            IpAddr::V6(a) => (libc::AF_INET6, a.octets().to_vec()),
        })
        .collect();
    conn.call_method(Some(RESOLVED), RESOLVED_PATH, Some(RESOLVED_MANAGER), "SetLinkDNS", &(index, servers)).await?;
    let mut domains: Vec<(String, bool)> = config.search.iter().map(|d| (d.clone(), false)).collect();
    if config.default_route {
        // "~." routes every query to this link, as a full tunnel wants.
        domains.push((".".into(), true));
    }
    conn.call_method(Some(RESOLVED), RESOLVED_PATH, Some(RESOLVED_MANAGER), "SetLinkDomains", &(index, domains))
        .await?;
    conn.call_method(
        Some(RESOLVED),
        RESOLVED_PATH,
        Some(RESOLVED_MANAGER),
        "SetLinkDefaultRoute",
        &(index, config.default_route),
    )
    .await?;
    Ok(())
}

async fn resolved_revert(ifindex: u32) -> zbus::Result<()> {
    let conn = zbus::Connection::system().await?;
    let index = i32::try_from(ifindex).unwrap_or(i32::MAX);
    conn.call_method(Some(RESOLVED), RESOLVED_PATH, Some(RESOLVED_MANAGER), "RevertLink", &(index,)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolvconf_records_sort_under_the_first_plain_pattern_as_wg_quicks_do() {
        let debian = "# interface-order(5)\nlo.inet6\nlo.inet\nlo.@(dnsmasq|pdnsd)\nlo\ntun*\ntap*\n\
                      @(br|eth)*([^.]).inet\n*\n";
        assert_eq!(resolvconf_record(debian, "office"), "tun.office");
        // No file (openresolv), or no plain pattern in it: the link's own name.
        assert_eq!(resolvconf_record("", "office"), "office");
        assert_eq!(resolvconf_record("lo\n@(br|eth)*\n*\n", "office"), "office");
    }

    #[test]
    fn the_resolver_file_lists_servers_then_search_domains() {
        let config = DnsConfig {
            servers: vec!["10.8.0.53".parse().unwrap(), "fd00::53".parse().unwrap()],
            search: vec!["corp.example".into(), "lab.example".into()],
            default_route: true,
        };
        let text = resolv_conf_text("office", &config);
        assert!(text.starts_with(MARKER));
        assert!(
            text.contains("nameserver 10.8.0.53\nnameserver fd00::53\nsearch corp.example lab.example\n"),
            "{text}"
        );
    }
}
