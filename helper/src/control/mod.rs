//! The control plane: who may talk to the helper, the socket it listens on, the registry of tunnels and the
//! protocol spoken on each connection.

pub mod access;
pub mod admission;
pub mod claims;
pub mod connection;
mod errors;
pub mod events;
pub mod helper;
pub mod kill_switch;
pub mod listener;
pub mod system_tunnels;

pub use access::Access;
pub use helper::{Caller, Helper};
