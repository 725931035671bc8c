//! The system bus, as the services culvertd asks (systemd-resolved, NetworkManager) are found on it.

/// Whether `name` has an owner on the bus of `conn`: whether the service runs.
pub async fn name_has_owner(conn: &zbus::Connection, name: &str) -> zbus::Result<bool> {
    let reply = conn
        .call_method(
            Some("org.freedesktop.DBus"),
            "/org/freedesktop/DBus",
            Some("org.freedesktop.DBus"),
            "NameHasOwner",
            &(name,),
        )
        .await?;
    reply.body().deserialize::<bool>()
}
