//! The app's profile store: the same store as `culvert`'s, used off the async runtime.

use culvert_store::Store;

/// Runs a store operation off the async runtime: the keyring's D-Bus calls block.
pub async fn with_store<T: Send + 'static>(
    f: impl FnOnce(&Store) -> Result<T, culvert_store::StoreError> + Send + 'static,
) -> Result<T, String> {
    tauri::async_runtime::spawn_blocking(move || {
        let store = Store::open_default().map_err(|e| e.to_string())?;
        f(&store).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())?
}

/// The stored profiles' names, for the tray (no keyring needed to list them).
pub fn store_names() -> Vec<String> {
    Store::open_default().and_then(|s| s.list()).map(|l| l.into_iter().map(|p| p.name).collect()).unwrap_or_default()
}
