//! The TypeScript of the commands and events, written by a test as ts-rs writes the types'.

use std::any::TypeId;

use serde::Serialize;
use ts_rs::{Dependency, TS, TypeVisitor};

use super::{Event, NOTICE, PACKETS, SNAPSHOT, command_bindings};

fn event_bindings(cfg: &ts_rs::Config) -> Vec<EventBinding> {
    vec![
        EventBinding::of("onSnapshot", &SNAPSHOT, cfg),
        EventBinding::of("onPackets", &PACKETS, cfg),
        EventBinding::of("onNotice", &NOTICE, cfg),
    ]
}

/// A Rust type as TypeScript names it, and the generated types that name uses.
#[derive(Debug)]
pub struct TsType {
    pub name: String,
    pub uses: Vec<Dependency>,
}

impl TsType {
    pub fn of<T: TS + 'static + ?Sized>(cfg: &ts_rs::Config) -> Self {
        if TypeId::of::<T>() == TypeId::of::<()>() {
            return Self { name: "void".into(), uses: vec![] };
        }
        /// The type, its generic arguments (the `T` of `Option<T>`), theirs, and so on.
        struct Collect<'a>(&'a ts_rs::Config, Vec<Dependency>);
        impl TypeVisitor for Collect<'_> {
            fn visit<U: TS + 'static + ?Sized>(&mut self) {
                self.1.extend(Dependency::from_ty::<U>(self.0));
                U::visit_generics(self);
            }
        }
        let name = T::name(cfg);
        let mut collect = Collect(cfg, T::dependencies(cfg));
        collect.visit::<T>();
        let mut uses = collect.1;
        // Only the types the name itself mentions: the others are its fields' business.
        uses.retain(|d| name.split(|c: char| !c.is_alphanumeric() && c != '_').any(|word| word == d.ts_name));
        uses.sort();
        uses.dedup();
        Self { name, uses }
    }
}

/// A command as the UI calls it: `invoke(name, { arg: value })`, resolving with `resolves`.
#[derive(Debug)]
pub struct CommandBinding {
    pub name: &'static str,
    /// The UI's function that calls it: the camelCase of `name`.
    pub function: &'static str,
    pub doc: &'static str,
    /// (camelCase name, type), in the order of the Rust function's arguments.
    pub args: Vec<(&'static str, TsType)>,
    pub resolves: TsType,
}

#[derive(Debug)]
pub struct EventBinding {
    /// The UI's function that listens to it.
    pub listener: &'static str,
    pub name: &'static str,
    pub payload: TsType,
}

impl EventBinding {
    fn of<T: TS + Serialize + Clone + 'static>(listener: &'static str, event: &Event<T>, cfg: &ts_rs::Config) -> Self {
        Self { listener, name: event.name, payload: TsType::of::<T>(cfg) }
    }
}

/// The TypeScript module of every command and event.
pub fn typescript(cfg: &ts_rs::Config) -> String {
    let commands = command_bindings(cfg);
    let events = event_bindings(cfg);
    let mut imports = std::collections::BTreeSet::new();
    for t in commands.iter().flat_map(|c| c.args.iter().map(|(_, t)| t).chain([&c.resolves])) {
        imports.extend(t.uses.iter().map(|d| d.ts_name.clone()));
    }
    for e in &events {
        imports.extend(e.payload.uses.iter().map(|d| d.ts_name.clone()));
    }
    let mut out = String::from(
        "// Generated from the desktop app's commands and events (src-tauri/src/bindings.rs) by `cargo test`:\n\
         // do not edit. Change the Rust signatures instead.\n\n\
         import { invoke } from \"@tauri-apps/api/core\";\n\
         import { listen } from \"@tauri-apps/api/event\";\n",
    );
    for name in &imports {
        out += &format!("import type {{ {name} }} from \"./{name}\";\n");
    }
    out += "\n/** Every command of the Rust side, by the camelCase of its Rust name. */\nexport const commands = {\n";
    for c in &commands {
        if !c.doc.is_empty() {
            out += &format!("  /** {} */\n", c.doc);
        }
        let params: Vec<String> = c.args.iter().map(|(n, t)| format!("{n}: {}", t.name)).collect();
        let names: Vec<&str> = c.args.iter().map(|(n, _)| *n).collect();
        let payload = if names.is_empty() { String::new() } else { format!(", {{ {} }}", names.join(", ")) };
        out += &format!(
            "  {}: ({}): Promise<{}> => invoke(\"{}\"{payload}),\n",
            c.function,
            params.join(", "),
            c.resolves.name,
            c.name
        );
    }
    out += "};\n\n/** The Rust side's events, by name. */\nexport const EVENTS = {\n";
    for e in &events {
        out += &format!("  {}: \"{}\",\n", e.listener, e.name);
    }
    out += "} as const;\n\n/** A listener for each event: resolves with the function that stops it. */\nexport const events = {\n";
    for e in &events {
        out += &format!(
            "  {}: (handler: (payload: {ty}) => void): Promise<() => void> =>\n    listen<{ty}>(\"{}\", (e) => \
             handler(e.payload)),\n",
            e.listener,
            e.name,
            ty = e.payload.name
        );
    }
    out += "};\n";
    out
}

mod tests {
    use super::*;

    /// Writes the bindings where ts-rs writes the types' (TS_RS_EXPORT_DIR); `scripts/test` fails when they
    /// changed and were not committed.
    #[test]
    fn export_bindings() {
        let cfg = ts_rs::Config::from_env();
        let text = typescript(&cfg);
        assert!(text.contains("importProfile: (fileName: string, text: string): Promise<ProfileSummary>"), "{text}");
        assert!(text.contains("onSnapshot: (handler: (payload: Snapshot) => void)"), "{text}");
        let path = cfg.out_dir().join("commands.ts");
        if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
            std::fs::write(&path, text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }

    #[test]
    fn commands_are_named_as_tauri_takes_them() {
        let cfg = ts_rs::Config::from_env();
        let all = command_bindings(&cfg);
        let keypair = all.iter().find(|c| c.name == "generate_keypair").unwrap_or_else(|| panic!("{all:?}"));
        assert_eq!(keypair.function, "generateKeypair");
        let settings = all.iter().find(|c| c.name == "set_settings").unwrap_or_else(|| panic!("{all:?}"));
        // Injected arguments (the AppHandle) are not the caller's; the others are camelCase, in order.
        let args: Vec<_> = settings.args.iter().map(|(n, t)| (*n, t.name.as_str())).collect();
        assert_eq!(args, [("settings", "Settings"), ("startAtLogin", "boolean")]);
        assert_eq!(settings.resolves.name, "SettingsView");
    }
}
