//! Everything the helper changes in the system: links, addresses and routes through netlink, and the record
//! of those changes in the state directory that lets a restarted helper undo what a crashed one left.

pub mod dns;
pub mod files;
pub mod memory;
pub mod netlink;
pub mod nft;
pub mod notify;
pub mod record;
pub mod sleep;
pub mod socket_file;
pub mod state_dir;
pub mod sysctl;

pub use netlink::{Netlink, NetlinkError};
pub use record::{Object, Record, Records};
