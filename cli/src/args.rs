//! culvert's command line, here rather than in `main` so that its man pages are rendered from the same
//! definitions (`packaging/man`).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use clap_complete::engine::ArgValueCompleter;
use culvert_core::ipc::{MAX_INTERVAL_MS, MIN_INTERVAL_MS};
use culvert_core::profile;

use crate::complete;

#[derive(Debug, Parser)]
#[command(
    name = "culvert",
    version,
    about = "Manage Culvert tunnels through the culvertd helper",
    long_about = "culvert brings Culvert tunnels up and down, changes them while they run, keeps profiles (their \
                  keys in your keyring) and shows live rates, totals, handshakes and packets. It asks culvertd, \
                  the privileged helper, over its Unix socket: a user sees and changes only their own tunnels, \
                  root all of them. Tunnel kinds: udp, wireguard, tap, vxlan, hostgw and overlay; WireGuard \
                  profiles may also be wg-quick .conf files."
)]
pub struct Cli {
    /// The helper's socket [default: $CULVERT_SOCKET, else /run/culvert/culvertd.sock]
    #[arg(long, global = true)]
    pub socket: Option<PathBuf>,
    /// Print JSON instead of text, for scripts: every command that prints something (status: an array of tunnels;
    /// watch: an object per line; up, apply, enable: the tunnel's status; list, import, enabled: an array).
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Bring up a tunnel: from a profile file (a path, or a name ending in .toml or .conf; its stem names the
    /// tunnel), or a stored profile by name, with its keys from your keyring.
    Up {
        /// A profile file (.toml, or .conf for wg-quick), or the name of a stored profile.
        #[arg(add = ArgValueCompleter::new(complete::profile_or_file))]
        profile: String,
    },
    /// Change a tunnel that is up to exactly a profile (a file, or a stored profile's name) without bringing it
    /// down: peers that stay keep their sessions. A tunnel that is down is brought up.
    Apply {
        /// A profile file (.toml, or .conf for wg-quick), or the name of a stored profile.
        #[arg(add = ArgValueCompleter::new(complete::profile_or_file))]
        profile: String,
    },
    /// Make a system tunnel: culvertd keeps the profile (a file, or a stored profile with its keys from your
    /// keyring) root-only and brings it up now and whenever it starts. You own it; root may disable it too.
    Enable {
        /// A profile file (.toml, or .conf for wg-quick), or the name of a stored profile.
        #[arg(add = ArgValueCompleter::new(complete::profile_or_file))]
        profile: String,
        /// Nothing leaves the host around the tunnel while it is enabled, even when it or culvertd fails (a
        /// WireGuard full tunnel; as `kill_switch = true` in TOML, for wg-quick files, which have no key for it).
        #[arg(long)]
        kill_switch: bool,
        /// With the kill switch, the local networks stay reachable outside the tunnel (`allow_lan = true`).
        #[arg(long, requires = "kill_switch")]
        allow_lan: bool,
    },
    /// Bring a system tunnel down and have culvertd forget it.
    Disable {
        /// The system tunnel's name.
        #[arg(add = ArgValueCompleter::new(complete::tunnels))]
        name: String,
    },
    /// List the system tunnels you enabled (root: all), and whether each is up now (--json: objects with `name`,
    /// `kind`, `owner_uid`, `kill_switch` and `state`).
    Enabled,
    /// List the stored profiles.
    List,
    /// Store profile files (.toml, .conf for wg-quick, .nmconnection for NetworkManager), each under its name;
    /// their keys go to your keyring. Each file is reported as stored or skipped, with the reason.
    Import {
        /// Profile files: TOML, wg-quick .conf, or NetworkManager .nmconnection (its interface-name names it);
        /// each file's stem names its profile. `-` reads one profile from standard input (with --name), so that
        /// `sudo cat /etc/wireguard/wg0.conf | culvert import - --name wg0` stores a root-only file as yours.
        #[arg(required = true, num_args = 1..)]
        files: Vec<PathBuf>,
        /// The stored profile's name, instead of the one the file gives (one file, or `-`, only).
        #[arg(long)]
        name: Option<String>,
    },
    /// Print a stored profile: a wg-quick file for WireGuard (keys included), TOML for the other kinds.
    Export {
        /// The stored profile's name.
        #[arg(add = ArgValueCompleter::new(complete::stored_profiles))]
        name: String,
        /// A QR code of the wg-quick file instead, for the WireGuard mobile apps to scan (it holds the private
        /// key: show it to nobody else).
        #[arg(long)]
        qr: bool,
    },
    /// Remove a stored profile and its keys.
    Rm {
        /// The stored profile's name.
        #[arg(add = ArgValueCompleter::new(complete::stored_profiles))]
        name: String,
    },
    /// Bring a tunnel down.
    Down {
        /// The tunnel's name.
        #[arg(required_unless_present = "all", conflicts_with = "all", add = ArgValueCompleter::new(complete::tunnels))]
        name: Option<String>,
        /// Every tunnel you may bring down.
        #[arg(long)]
        all: bool,
    },
    /// Turn lockdown on or off, or say whether it is on: while it is on, nothing leaves the host but through a
    /// WireGuard full tunnel, whether one is up or not, from boot on.
    Lockdown {
        /// on or off; without it, whether lockdown is on.
        state: Option<OnOff>,
    },
    /// Show the tunnels that are up, or one of them.
    Status {
        /// One tunnel's name; without it, every tunnel you may see.
        #[arg(add = ArgValueCompleter::new(complete::tunnels))]
        name: Option<String>,
    },
    /// Print a new WireGuard private key, as `wg genkey` does.
    Genkey,
    /// Read a private key on standard input and print its public key, as `wg pubkey` does.
    Pubkey,
    /// Print a new preshared key, as `wg genpsk` does.
    Genpsk,
    /// Print the VTEP MAC Culvert derives for a VXLAN endpoint (02, the VNI's low byte, the address's low four
    /// bytes), to write peers' profiles in advance.
    VxlanMac {
        #[arg(long)]
        vni: u32,
        /// The endpoint's underlay address.
        #[arg(long)]
        local: std::net::IpAddr,
    },
    /// Serve the tunnels' metrics to Prometheus (http://ADDRESS:PORT/metrics), asking culvertd at each scrape;
    /// by default on its monitor socket, where members of group culvert-monitor see every tunnel.
    Exporter {
        /// The address and port to serve on.
        #[arg(long, default_value_t = std::net::SocketAddr::from(([127, 0, 0, 1], crate::metrics::DEFAULT_PORT)))]
        listen: std::net::SocketAddr,
    },
    #[command(skip)]
    UpLoaded(Box<profile::Profile>),
    #[command(skip)]
    ApplyLoaded(Box<profile::Profile>),
    #[command(skip)]
    EnableLoaded(Box<profile::Profile>, bool, bool),
    /// Show a tunnel's live rates and totals, one line per interval, until Ctrl-C.
    Watch {
        /// The tunnel's name.
        #[arg(add = ArgValueCompleter::new(complete::tunnels))]
        name: String,
        /// Milliseconds between lines.
        #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(i64::from(MIN_INTERVAL_MS)..=i64::from(MAX_INTERVAL_MS)))]
        interval: u32,
        /// Also show the headers of sampled packets (udp, wireguard and tap tunnels).
        #[arg(long)]
        packets: bool,
        /// Sample one packet in N each way.
        #[arg(long, default_value_t = 1, requires = "packets", value_parser = clap::value_parser!(u32).range(1..=i64::from(culvert_core::packets::MAX_ONE_IN)))]
        one_in: u32,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    On,
    Off,
}
