//! What the UI can call and hear, declared once here and in the commands' own signatures, and generated as
//! TypeScript (`ui/src/bindings/commands.ts`, written by `cargo test` like the types' bindings): the command
//! names, their arguments and answers, and the events with their payloads.

use std::marker::PhantomData;

use serde::Serialize;
use tauri::{AppHandle, Emitter, Runtime};

use crate::model::{PacketBatch, Snapshot};

culvert_app_macros::commands!(crate::commands:
    helper_state,
    list_profiles,
    import_profile,
    remove_profile,
    export_profile,
    profile_qr,
    connect,
    disconnect,
    set_always_on,
    set_lockdown,
    watch_packets,
    validate_profile,
    save_profile,
    load_profile,
    generate_keypair,
    get_settings,
    set_settings,
    usage,
    notices,
);

/// An event of the Rust side, named once, with its payload's type.
#[derive(Debug)]
pub struct Event<T> {
    pub name: &'static str,
    payload: PhantomData<fn(T)>,
}

impl<T: Serialize + Clone> Event<T> {
    const fn new(name: &'static str) -> Self {
        Self { name, payload: PhantomData }
    }

    pub fn emit<R: Runtime>(&self, app: &AppHandle<R>, payload: &T) -> tauri::Result<()> {
        app.emit(self.name, payload)
    }
}

/// Each time culvertd's state or the profiles change: everything the window shows.
pub const SNAPSHOT: Event<Snapshot> = Event::new("culvert://snapshot");
/// Packet samples of the watched tunnel.
pub const PACKETS: Event<PacketBatch> = Event::new("culvert://packets");
/// A message for the user from the Rust side's own work, such as a profile that failed to connect on launch.
pub const NOTICE: Event<String> = Event::new("culvert://notice");

#[cfg(test)]
mod typescript;
#[cfg(test)]
pub use typescript::{CommandBinding, TsType};
