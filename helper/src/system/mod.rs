//! Everything the helper changes in the system: links, addresses and routes through netlink, and the record
//! of those changes in the state directory that lets a restarted helper undo what a crashed one left.

pub mod bus;
pub mod dns;
pub mod dns_wire;
pub mod files;
pub mod memory;
pub mod netlink;
pub mod network_manager;
pub mod nft;
pub mod notify;
pub mod peer_groups;
pub mod record;
pub mod resolver;
pub mod sleep;
pub mod socket_file;
pub mod state_dir;
pub mod sysctl;

pub use netlink::{Netlink, NetlinkError};

/// The mark on culvertd's own control traffic (its DNS lookups of endpoint names while the kill switch holds):
/// the kill switch lets it out to port 53, and full tunnels' policy rules route it by the main table, so that
/// it reaches the host's own network past any tunnel. "cvct" in ASCII: far from the tables and marks full
/// tunnels take (51820 on) and from the low bits other software masks.
pub const CONTROL_MARK: u32 = 0x6376_6374;
pub use record::{Object, Record, Records};
