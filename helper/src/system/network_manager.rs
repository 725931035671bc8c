//! NetworkManager, where it runs, leaves Culvert's links alone: each link culvertd creates is marked unmanaged
//! over D-Bus (`Device.Managed = false`) before it gets an address, so that NetworkManager neither configures it
//! nor takes its addresses away on a reload. NetworkManager keeps the mark (in /run/NetworkManager/devices) across
//! its own restarts for as long as the link lives; culvertd's unit is ordered after NetworkManager's, so that the
//! tunnels brought up at boot are created while it runs, and culvertd marks its links again whenever
//! NetworkManager takes its name on the bus (one started by hand, or installed, after the tunnels came up). Only
//! these links are touched: a conf.d rule could match them only by driver (`driver:tun`), which would unmanage
//! every other VPN's device too.

use std::time::Duration;

use futures::{Stream, StreamExt};
use zbus::zvariant::{OwnedObjectPath, Value};

const NETWORK_MANAGER: &str = "org.freedesktop.NetworkManager";
const PATH: &str = "/org/freedesktop/NetworkManager";
const DEVICE: &str = "org.freedesktop.NetworkManager.Device";
/// NetworkManager learns of a new link from netlink and then waits for udev to finish with it; in the VM test
/// (TCG, 2 vCPUs) `culvert up` took 0.6-0.8 s in all with it. Past this, the tunnel goes on without the mark.
pub const FIND_NEW_LINK_WITHIN: Duration = Duration::from_secs(2);
/// A NetworkManager that has just started takes its name on the bus before it has taken in the system's links.
pub const FIND_AFTER_START_WITHIN: Duration = Duration::from_secs(15);
const FIND_EVERY: Duration = Duration::from_millis(20);
/// How long a bus that does not answer may hold up a tunnel's `up`.
const BUS_TIMEOUT: Duration = Duration::from_secs(2);

/// What became of the link in NetworkManager's eyes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// No NetworkManager on the system bus (or no system bus): nothing to do.
    NotRunning,
    /// Marked unmanaged.
    Unmanaged,
}

/// Marks `interface` unmanaged in NetworkManager if it runs, waiting up to `within` for NetworkManager to list the
/// link. An error says why it could not be: the tunnel works without the mark, so callers log it rather than fail.
pub async fn leave_alone(interface: &str, within: Duration) -> Result<Outcome, String> {
    let Ok(Ok(conn)) = tokio::time::timeout(BUS_TIMEOUT, zbus::Connection::system()).await else {
        return Ok(Outcome::NotRunning);
    };
    let running = tokio::time::timeout(BUS_TIMEOUT, super::bus::name_has_owner(&conn, NETWORK_MANAGER)).await;
    if !matches!(running, Ok(Ok(true))) {
        return Ok(Outcome::NotRunning);
    }
    let device = find_device(&conn, interface, within).await?;
    let body = (DEVICE, "Managed", Value::from(false));
    let set =
        conn.call_method(Some(NETWORK_MANAGER), device.as_str(), Some("org.freedesktop.DBus.Properties"), "Set", &body);
    match tokio::time::timeout(BUS_TIMEOUT, set).await {
        Ok(Ok(_)) => Ok(Outcome::Unmanaged),
        Ok(Err(e)) => Err(format!("NetworkManager refused to leave {interface} unmanaged: {e}")),
        Err(_) => Err(format!("NetworkManager did not answer within {BUS_TIMEOUT:?} about {interface}")),
    }
}

/// The device's object path, once NetworkManager has taken the new link in.
async fn find_device(conn: &zbus::Connection, interface: &str, within: Duration) -> Result<OwnedObjectPath, String> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let body = (interface,);
        let call = conn.call_method(Some(NETWORK_MANAGER), PATH, Some(NETWORK_MANAGER), "GetDeviceByIpIface", &body);
        let last = match tokio::time::timeout(BUS_TIMEOUT, call).await {
            Ok(Ok(reply)) => match reply.body().deserialize::<OwnedObjectPath>() {
                Ok(path) => return Ok(path),
                Err(e) => e.to_string(),
            },
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {BUS_TIMEOUT:?}"),
        };
        if tokio::time::Instant::now() >= deadline {
            return Err(format!("NetworkManager did not list {interface} within {within:?}: {last}"));
        }
        tokio::time::sleep(FIND_EVERY).await;
    }
}

/// One item each time NetworkManager takes its name on the system bus (it started, or started again), for as long
/// as the bus lasts; an error when there is no system bus.
pub async fn starts() -> zbus::Result<impl Stream<Item = ()>> {
    let conn = zbus::Connection::system().await?;
    let bus = zbus::fdo::DBusProxy::new(&conn).await?;
    let changes = bus.receive_name_owner_changed_with_args(&[(0, NETWORK_MANAGER)]).await?;
    Ok(changes.filter_map(|change| async move { change.args().ok()?.new_owner().is_some().then_some(()) }))
}
