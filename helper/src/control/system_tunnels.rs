//! System tunnels (`culvert enable`): profiles culvertd keeps in `<config-dir>/tunnels/`, root-only, and brings
//! up whenever it starts. Each file holds its profile whole, keys inline as `/etc/wireguard/` holds them for
//! wg-quick@ (a `.conf` for WireGuard, TOML for the other kinds), and in its first line the uid of the user who
//! enabled it, its owner. An overlay's PEM files are kept beside it, so that nothing a user owns is read again.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use culvert_core::profile::{self, Profile, Tunnel};

use crate::system::files::{self, remove_if_there};

/// The first line of every file: who enabled it, and for a `.conf` (wg-quick has no key for them) the kill
/// switch's settings: `# culvert: enabled by uid 1000; kill_switch; allow_lan`.
const OWNER_LINE: &str = "# culvert: enabled by uid ";
const KILL_SWITCH: &str = "kill_switch";
const ALLOW_LAN: &str = "allow_lan";

#[derive(Debug)]
pub struct SystemTunnels {
    dir: PathBuf,
}

/// A stored system tunnel, or why its file could not be read.
pub type Stored = Result<(u32, Profile), String>;

impl SystemTunnels {
    /// `<config_dir>/tunnels`, made root-only if it is not there.
    pub fn open(config_dir: &Path) -> io::Result<Self> {
        let dir = config_dir.join("tunnels");
        fs::DirBuilder::new().recursive(true).mode(0o700).create(&dir)?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))?;
        Ok(Self { dir })
    }

    fn files(&self, name: &str) -> [PathBuf; 2] {
        [self.dir.join(format!("{name}.conf")), self.dir.join(format!("{name}.toml"))]
    }

    /// Keeps `profile` as enabled by `owner`, replacing what was kept under its name.
    pub fn store(&self, owner: u32, profile: &Profile) -> io::Result<()> {
        let name = &profile.name;
        let mut kept = profile.clone();
        if let Tunnel::Overlay(o) = &mut kept.tunnel {
            for (field, file) in
                [("etcd_ca", &mut o.etcd_ca), ("etcd_cert", &mut o.etcd_cert), ("etcd_key", &mut o.etcd_key)]
            {
                let Some(file) = file else { continue };
                let path = self.dir.join(format!("{name}.{field}.pem"));
                files::write_atomically(&path, file.pem.as_bytes(), 0o600)?;
                file.path = path.display().to_string();
            }
        }
        let (path, text, flags) = match (profile::wg_quick::write(&kept), &kept.tunnel) {
            (Some(conf), Tunnel::Wireguard(w)) => {
                let flags = [(KILL_SWITCH, w.kill_switch), (ALLOW_LAN, w.allow_lan)]
                    .iter()
                    .filter(|(_, on)| *on)
                    .map(|(flag, _)| format!("; {flag}"))
                    .collect();
                (self.files(name)[0].clone(), conf, flags)
            }
            (Some(conf), _) => (self.files(name)[0].clone(), conf, String::new()),
            (None, _) => (self.files(name)[1].clone(), profile::write_toml(&kept), String::new()),
        };
        let text = zeroize::Zeroizing::new(format!("{OWNER_LINE}{owner}{flags}\n{text}"));
        files::write_atomically(&path, text.as_bytes(), 0o600)?;
        // A tunnel that changed kind leaves no file of its old kind behind.
        for other in self.files(name).into_iter().filter(|p| *p != path) {
            remove_if_there(&other)?;
        }
        Ok(())
    }

    /// Forgets system tunnel `name`; whether there was one.
    pub fn remove(&self, name: &str) -> io::Result<bool> {
        let mut found = false;
        for path in self.files(name) {
            found |= remove_if_there(&path)?;
        }
        for field in ["etcd_ca", "etcd_cert", "etcd_key"] {
            remove_if_there(&self.dir.join(format!("{name}.{field}.pem")))?;
        }
        Ok(found)
    }

    /// Who enabled system tunnel `name`, if it is one.
    pub fn owner(&self, name: &str) -> Option<u32> {
        profile::validate_name(name).ok()?;
        self.files(name).iter().find_map(|p| fs::read_to_string(p).ok()).and_then(|text| owner_of(&text))
    }

    /// Every system tunnel, by name.
    pub fn list(&self) -> BTreeMap<String, Stored> {
        let mut all = BTreeMap::new();
        let Ok(entries) = fs::read_dir(&self.dir) else { return all };
        for entry in entries.flatten() {
            let path = entry.path();
            if !path.extension().is_some_and(|e| e == "toml" || e == "conf") {
                continue;
            }
            let Some(name) = profile::name_from_path(&path) else { continue };
            all.insert(name, self.read(&path));
        }
        all
    }

    fn read(&self, path: &Path) -> Stored {
        let text = zeroize::Zeroizing::new(fs::read_to_string(path).map_err(|e| e.to_string())?);
        let owner = owner_of(&text).ok_or_else(|| format!("{} has no `{OWNER_LINE}N` first line", path.display()))?;
        let mut profile = profile::parse_file(path, &text).map_err(|e| e.to_string())?;
        profile::read_etcd_files(&mut profile, &self.dir).map_err(|e| e.to_string())?;
        if let Tunnel::Wireguard(w) = &mut profile.tunnel
            && path.extension().is_some_and(|e| e == "conf")
        {
            let flags: Vec<&str> = text.lines().next().unwrap_or_default().split(';').map(str::trim).collect();
            w.kill_switch = flags.contains(&KILL_SWITCH);
            w.allow_lan = flags.contains(&ALLOW_LAN);
        }
        Ok((owner, profile))
    }
}

fn owner_of(text: &str) -> Option<u32> {
    let first = text.lines().next()?.strip_prefix(OWNER_LINE)?;
    first.split(';').next()?.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_system_tunnel_is_kept_whole_root_only_with_its_owner_and_forgotten_whole() {
        let dir = std::env::temp_dir().join(format!("culvert-system-{}", std::process::id()));
        let system = SystemTunnels::open(&dir).unwrap();
        let text = "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\nAddress = 10.8.0.1/24\n\
                    [Peer]\nPublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\nAllowedIPs = 10.8.0.2/32\n\
                    Endpoint = 192.0.2.7:51820\n";
        let profile = profile::parse_file(Path::new("wg0.conf"), text).unwrap();
        system.store(1000, &profile).unwrap();
        let file = dir.join("tunnels/wg0.conf");
        let kept = fs::read_to_string(&file).unwrap();
        assert!(kept.starts_with("# culvert: enabled by uid 1000\n") && kept.contains("yAnz5TF"), "{kept}");
        assert_eq!(fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(system.owner("wg0"), Some(1000));
        let listed = system.list();
        let (owner, back) = listed["wg0"].as_ref().unwrap();
        assert_eq!((*owner, back), (1000, &profile));
        // wg-quick has no key for the kill switch: the first line keeps it.
        let mut guarded =
            profile::parse_file(Path::new("wg0.conf"), &text.replace("10.8.0.2/32", "0.0.0.0/0")).unwrap();
        let Tunnel::Wireguard(w) = &mut guarded.tunnel else { panic!() };
        w.kill_switch = true;
        system.store(1000, &guarded).unwrap();
        let kept = fs::read_to_string(&file).unwrap();
        assert!(kept.starts_with("# culvert: enabled by uid 1000; kill_switch\n"), "{kept}");
        assert_eq!(system.list()["wg0"].as_ref().unwrap(), &(1000, guarded));
        assert!(system.remove("wg0").unwrap());
        assert!(system.list().is_empty() && system.owner("wg0").is_none());
        fs::remove_dir_all(&dir).unwrap();
    }
}
