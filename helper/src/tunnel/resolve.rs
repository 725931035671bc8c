//! Host-name endpoints, resolved when a tunnel comes up (all at once: one slow name must not make the others
//! wait behind it), and what a bring-up is doing now, for the answer when it takes too long.

use super::TunnelError;
use std::net::SocketAddr;
use std::sync::Mutex;

use culvert_core::profile::{Endpoint, Profile, Tunnel};

use crate::system::resolver::Resolver;

/// What a tunnel's bring-up is doing, in words that complete "did not finish while ...".
#[derive(Debug, Default)]
pub struct Progress(Mutex<String>);

impl Progress {
    pub fn set(&self, doing: impl Into<String>) {
        *self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = doing.into();
    }

    pub fn get(&self) -> String {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone()
    }
}

/// Each WireGuard peer's endpoint as an address (`None`: the peer has none); empty for the other kinds, whose
/// endpoints are addresses already.
pub type Resolved = Vec<Option<SocketAddr>>;

/// Resolves every host-name endpoint of `profile`; one that does not resolve fails the request, naming the peer.
pub async fn endpoints(resolver: &Resolver, profile: &Profile, progress: &Progress) -> Result<Resolved, TunnelError> {
    let Tunnel::Wireguard(w) = &profile.tunnel else { return Ok(Vec::new()) };
    let names: Vec<String> = w
        .peers
        .iter()
        .filter_map(|p| match &p.endpoint {
            Some(Endpoint::Host { host, .. }) => Some(host.clone()),
            _ => None,
        })
        .collect();
    if !names.is_empty() {
        progress.set(format!("resolving {}", names.join(", ")));
    }
    let lookups = w.peers.iter().enumerate().map(|(i, p)| async move {
        match &p.endpoint {
            None => Ok(None),
            Some(Endpoint::Addr(a)) => Ok(Some(*a)),
            Some(Endpoint::Host { host, port }) => {
                resolver.lookup(host, *port).await.map_err(|reason| TunnelError::Profile {
                    field: format!("peer[{i}].endpoint"),
                    reason: format!("{host} does not resolve: {reason}"),
                    fix: "check the name, or give the peer's address instead".into(),
                })
            }
        }
    });
    futures::future::try_join_all(lookups).await
}
