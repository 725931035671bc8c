//! The userspace data plane: engines that move packets between a TUN device and a UDP socket.
//!
//! The protocol logic ([`packet`], [`routing`], [`udp_core`]) is pure: it takes bytes and answers where they
//! go. The IO shell ([`engine`]) drives it over the batch seams in [`io`], which the real TUN device and UDP
//! socket ([`tun_io`], [`udp_io`]) and an in-memory fake ([`fake`], tests only) implement.

pub mod checksum;
pub mod counters;
pub mod engine;
#[cfg(test)]
mod fake;
pub mod gro;
pub mod gso;
pub mod io;
pub mod live;
pub mod packet;
pub mod protocol;
pub mod routing;
pub mod sampler;
pub mod tap_core;
pub mod tun_io;
pub mod udp_core;
pub mod udp_io;
pub mod wait;
pub mod wg_core;
