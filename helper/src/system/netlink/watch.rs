//! The kernel's announcements of changes to the host's network: links, addresses and routes (rtnetlink's
//! multicast groups), so that tunnels can follow the underlay instead of waiting for their timers.

use futures::StreamExt;
use netlink_packet_core::NetlinkPayload;
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::route::RouteAttribute;
use rtnetlink::constants::{RTMGRP_IPV4_IFADDR, RTMGRP_IPV4_ROUTE, RTMGRP_IPV6_IFADDR, RTMGRP_IPV6_ROUTE, RTMGRP_LINK};
use rtnetlink::sys::{AsyncSocket, SocketAddr};

/// Changes waiting to be taken: when the taker is behind, more are dropped, since one waiting change already
/// makes it look again (it acts on the state, not on each message).
const PENDING: usize = 64;

/// One announced change: the interface it concerns, when the message names one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub index: Option<u32>,
}

/// Subscribes to link, address and route changes in the helper's network namespace. The subscription ends
/// when the receiver is dropped.
pub fn watch() -> std::io::Result<tokio::sync::mpsc::Receiver<Change>> {
    let (mut connection, _handle, mut messages) = rtnetlink::new_connection()?;
    let groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
    connection.socket_mut().socket_mut().bind(&SocketAddr::new(0, groups))?;
    let (tx, rx) = tokio::sync::mpsc::channel(PENDING);
    let connection = tokio::spawn(connection);
    tokio::spawn(async move {
        while let Some((message, _)) = messages.next().await {
            let NetlinkPayload::InnerMessage(inner) = message.payload else { continue };
            let Some(change) = change_of(&inner) else { continue };
            match tx.try_send(change) {
                Ok(()) | Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => break,
            }
        }
        connection.abort();
    });
    Ok(rx)
}

fn change_of(message: &RouteNetlinkMessage) -> Option<Change> {
    let index = match message {
        RouteNetlinkMessage::NewLink(l) | RouteNetlinkMessage::DelLink(l) => Some(l.header.index),
        RouteNetlinkMessage::NewAddress(a) | RouteNetlinkMessage::DelAddress(a) => Some(a.header.index),
        RouteNetlinkMessage::NewRoute(r) | RouteNetlinkMessage::DelRoute(r) => {
            r.attributes.iter().find_map(|a| match a {
                RouteAttribute::Oif(index) => Some(*index),
                _ => None,
            })
        }
        _ => return None,
    };
    Some(Change { index })
}
