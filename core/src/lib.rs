//! Culvert's shared core: what the helper, the CLI and the desktop app must agree on.
//!
//! * [`profile`]: tunnel profiles, parsed from TOML files and validated with errors that name the field, the
//!   problem and the fix. The helper runs the same validation on every `Up` request it receives.
//! * [`ipc`]: the messages between clients and `culvertd`, and their framing on the Unix socket.
//! * [`client`]: the async client the CLI (and later the desktop app) talk to the helper with.
//! * [`stats`]: the status and counter snapshots the helper reports, and rates computed from them.
//! * [`wire`]: a checked view of IP headers, shared by the data plane and the packet views.

pub mod client;
pub mod fuzzing;
pub mod ifname;
pub mod ipc;
pub mod keys;
pub mod mac;
pub mod packets;
pub mod profile;
pub mod stats;
pub mod wire;

/// Where `culvertd` listens unless told otherwise.
pub const DEFAULT_SOCKET: &str = "/run/culvert/culvertd.sock";
/// The environment variable that names the socket for the helper and every client.
pub const SOCKET_ENV: &str = "CULVERT_SOCKET";
/// The group whose members may use the helper.
pub const DEFAULT_GROUP: &str = "culvert";
/// The socket of culvertd's read-only role, for monitors such as `culvert exporter`: its own directory, since
/// `/run/culvert` is for group culvert only.
pub const DEFAULT_MONITOR_SOCKET: &str = "/run/culvert-monitor/culvertd.sock";
/// Members of this group may read the status and counters of every tunnel through the monitor socket, and
/// change nothing.
pub const DEFAULT_MONITOR_GROUP: &str = "culvert-monitor";
