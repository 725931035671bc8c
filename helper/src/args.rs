//! The command lines of culvertd and culvert-wg, here rather than in their `main`s so that their man pages are
//! rendered from the same definitions (`packaging/man`).

use std::path::PathBuf;

use clap::Parser;

#[derive(Debug, Parser)]
#[command(
    name = "culvertd",
    version,
    about = "Culvert's privileged helper: tunnels, routes and the data plane",
    long_about = "culvertd does everything of Culvert that needs privileges: it creates TUN and TAP devices, \
                  VXLAN links, addresses, routes and firewall tables, runs the userspace data plane, and serves \
                  culvert and the desktop app on an authenticated Unix socket. It runs as root or with \
                  CAP_NET_ADMIN, normally as the systemd unit culvertd.service; members of its group may use it, \
                  each seeing and changing only their own tunnels."
)]
pub struct Culvertd {
    /// The Unix socket clients connect to.
    #[arg(long, env = culvert_core::SOCKET_ENV, default_value = culvert_core::DEFAULT_SOCKET)]
    pub socket: PathBuf,
    /// Where the helper records what it created, to undo it after a crash. Locked while the helper runs.
    #[arg(long, default_value = "/var/lib/culvert")]
    pub state_dir: PathBuf,
    /// Where system tunnels (`culvert enable`) are kept, root-only; brought up whenever culvertd starts.
    #[arg(long, default_value = "/etc/culvert")]
    pub config_dir: PathBuf,
    /// Members of this group may use the helper; if it does not exist, only root may.
    #[arg(long, default_value = culvert_core::DEFAULT_GROUP)]
    pub group: String,
    /// Clients served at once, in all; more are refused with a message that says so.
    #[arg(long, default_value_t = crate::control::admission::DEFAULT_TOTAL, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,
    /// Clients served at once for each user other than root.
    #[arg(long, default_value_t = crate::control::admission::DEFAULT_PER_USER, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_user: u32,
    /// Seconds culvertd works on one request (bringing a tunnel up, say) before it undoes it and answers why.
    #[arg(long, default_value_t = crate::control::helper::DEFAULT_REQUEST_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// The read-only socket for monitors (`culvert exporter`): the status and counters of every tunnel, never a
    /// packet sample, never a change. Only when --monitor-group exists.
    #[arg(long, default_value = culvert_core::DEFAULT_MONITOR_SOCKET)]
    pub monitor_socket: PathBuf,
    /// Members of this group may use the monitor socket (and see every tunnel in full on the main one, if they may
    /// use it too); if it does not exist, there is no monitor socket.
    #[arg(long, default_value = culvert_core::DEFAULT_MONITOR_GROUP)]
    pub monitor_group: String,
    /// Put the kill switch's table in place as the last run left it (and lockdown, if it is on), then exit:
    /// for the unit that runs before the network is up at boot.
    #[arg(long)]
    pub block_at_boot: bool,
}

#[derive(Debug, Parser)]
#[command(
    name = "culvert-wg",
    version,
    about = "A userspace WireGuard device on Culvert's engine, configured with wg and wg-quick",
    long_about = "culvert-wg makes a WireGuard device in userspace on Culvert's engine, with wireguard-go's \
                  command line: it creates the TUN device INTERFACE with no configuration, opens its API socket \
                  and, unless --foreground, detaches once both exist. wg and wg-quick configure it; it reads no \
                  Culvert profile, needs no culvertd, and adds no address, route or rule of its own. Moved to \
                  another network namespace, the device keeps working: its UDP socket stays where it started.",
    after_help = "Environment: LOG_LEVEL=verbose|error|silent (default error), as wireguard-go's.\n\
                  With wg-quick: WG_QUICK_USERSPACE_IMPLEMENTATION=culvert-wg wg-quick up wg0"
)]
pub struct CulvertWg {
    /// Stay in the foreground instead of detaching once the device and its API socket exist.
    #[arg(short, long)]
    pub foreground: bool,
    /// The TUN device to create; its API socket is /var/run/wireguard/INTERFACE.sock.
    pub interface: String,
}
