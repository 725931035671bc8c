//! Suspend and resume as logind announces them (`PrepareForSleep` on the system bus), so that tunnels can
//! start over at once after a resume: the host may wake on another network, and every session has gone stale.

use futures::{Stream, StreamExt};

const LOGIN1: &str = "org.freedesktop.login1";
const LOGIN1_PATH: &str = "/org/freedesktop/login1";
const LOGIN1_MANAGER: &str = "org.freedesktop.login1.Manager";

/// One item per resume, for as long as the system bus lasts; an error when there is no system bus. Without
/// logind on the bus nothing ever comes: the stream follows the name, so a logind that starts later counts.
pub async fn resumes() -> zbus::Result<impl Stream<Item = ()>> {
    let conn = zbus::Connection::system().await?;
    let manager = zbus::Proxy::new(&conn, LOGIN1, LOGIN1_PATH, LOGIN1_MANAGER).await?;
    let signals = manager.receive_signal("PrepareForSleep").await?;
    // `PrepareForSleep(true)` comes before the sleep, `(false)` after it.
    Ok(signals.filter_map(|message| async move {
        let before: bool = message.body().deserialize().ok()?;
        (!before).then_some(())
    }))
}
