//! culvertd, Culvert's privileged helper, as a library: the binary (`main.rs`) only parses its flags and starts
//! it; the fuzz targets (`fuzz/`) reach the parsers of outside bytes through [`fuzzing`].
//!
//! It owns everything that touches the kernel (TUN devices, addresses, routes) and the userspace data plane, and
//! serves clients on an authenticated Unix socket. Layers point down: [`control`] (socket, authorization,
//! registry) -> [`overlay`] (etcd's map of a flannel network) -> [`tunnel`] (bringing tunnels up) -> [`dataplane`] (engines) and [`system`] (netlink, records).
//! [`wg_device`] is `culvert-wg`'s: one WireGuard device that only `wg` configures, on the same engine.

pub mod args;
pub mod clock;
pub mod control;
pub mod dataplane;
pub mod fuzzing;
pub mod overlay;
pub mod system;
pub mod tunnel;
pub mod wg_device;
