use super::*;

const WG0: &str = "[Interface]
PrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=
Address = 10.8.0.1/24
ListenPort = 51820
[Peer]
PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=
PresharedKey = /UwcSPg38hW/D9Y3tcS1FOV0K1wuURMbS0sesJEP5ak=
AllowedIPs = 10.8.0.2/32
Endpoint = 192.0.2.7:51820
";

/// A directory of this test's own, removed when it goes (the test passed or not).
struct Scratch(PathBuf);

impl std::ops::Deref for Scratch {
    type Target = PathBuf;
    fn deref(&self) -> &PathBuf {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn scratch(tag: &str) -> Scratch {
    let dir = std::env::temp_dir().join(format!("culvert-store-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    Scratch(dir)
}

#[test]
fn keys_go_to_the_keyring_and_never_to_the_file() {
    let dir = scratch("keys");
    let file = dir.join("office.conf");
    std::fs::write(&file, WG0).unwrap();
    let store = Store::open(dir.join("profiles"), Secrets::in_memory());
    let imported = store.import(&file).unwrap();
    let stored = std::fs::read_to_string(dir.join("profiles/office.toml")).unwrap();
    assert!(!stored.contains("yAnz5TF") && !stored.contains("/UwcSPg38"), "a secret reached the file:\n{stored}");
    assert!(stored.contains("kind = \"wireguard\"") && stored.contains("xTIBA5rb"), "{stored}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.join("profiles/office.toml")).unwrap().permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    // Loading puts the keys back; export writes a wg-quick file with them.
    assert_eq!(store.load("office").unwrap(), imported);
    let exported = store.export("office").unwrap();
    assert!(exported.contains("PrivateKey = yAnz5TF") && exported.contains("PresharedKey = /UwcSPg38"), "{exported}");
    assert_eq!(
        store.list().unwrap(),
        vec![Listed { name: "office".into(), kind: Some(Kind::Wireguard), problem: None }]
    );
    // A second import of the same name is refused; removing deletes the file and the keys.
    assert!(matches!(store.import(&file), Err(StoreError::Exists(_))));
    store.remove("office").unwrap();
    assert!(store.list().unwrap().is_empty());
    assert!(store.secrets.get(&secrets::private_key_account("office")).unwrap().is_none());
    assert!(matches!(store.load("office"), Err(StoreError::NotFound(_))));
}

#[test]
fn a_profile_whose_key_left_the_keyring_says_how_to_fix_it() {
    let dir = scratch("missing");
    let file = dir.join("office.conf");
    std::fs::write(&file, WG0).unwrap();
    let store = Store::open(dir.join("profiles"), Secrets::in_memory());
    store.import(&file).unwrap();
    store.secrets.delete(&secrets::private_key_account("office")).unwrap();
    let e = store.load("office").unwrap_err().to_string();
    assert!(
        e.contains("private key of profile `office` is not in your keyring") && e.contains("culvert import"),
        "{e}"
    );
}

/// A crash mid-write leaves a temporary file beside the profile, never a half-written profile.
#[test]
fn atomic_writes_survive_a_crash_mid_write() {
    let dir = scratch("atomic");
    let profiles = dir.join("profiles");
    let store = Store::open(profiles.clone(), Secrets::in_memory());
    let v1 = profile::parse_toml(
        "lab",
        "kind = \"udp\"\naddress = [\"10.9.0.1/24\"]\nlisten_port = 8285\n[[peer]]\nendpoint = \"192.0.2.2:8285\"\nallowed_ips = [\"10.9.0.0/24\"]\n",
    )
    .unwrap();
    store.save(&v1).unwrap();
    // What a crash between writing the temporary file and renaming it leaves behind.
    std::fs::write(profiles.join(format!(".lab.toml.{}.tmp", std::process::id() + 1)), b"kind = \"udp\"\naddre")
        .unwrap();
    assert_eq!(store.load("lab").unwrap(), v1);
    assert_eq!(store.list().unwrap().len(), 1, "temporary files are not profiles");
    // A write that fails (here: the directory became a file's name) leaves the old profile whole.
    let blocked = Store::open(profiles.join("lab.toml"), Secrets::in_memory());
    assert!(blocked.save(&v1).is_err());
    assert_eq!(store.load("lab").unwrap(), v1);
    let mut v2 = v1;
    v2.name = "lab".into();
    if let Tunnel::Udp(u) = &mut v2.tunnel {
        u.listen_port = 9000;
    }
    store.save(&v2).unwrap();
    assert_eq!(store.load("lab").unwrap(), v2);
}

#[test]
fn names_that_are_not_profile_names_are_not_found() {
    let dir = scratch("names");
    let store = Store::open(dir.join("profiles"), Secrets::in_memory());
    for bad in ["../etc/passwd", "", ".hidden", "a/b"] {
        assert!(matches!(store.load(bad), Err(StoreError::NotFound(_))), "{bad}");
    }
}

#[test]
fn an_overlays_etcd_password_goes_to_the_keyring_and_its_pem_files_are_read_by_the_client() {
    let dir = scratch("etcd");
    std::fs::write(dir.join("ca.pem"), "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n").unwrap();
    let file = dir.join("site.toml");
    std::fs::write(
        &file,
        "kind = \"overlay\"\netcd = [\"https://10.99.0.10:2379\"]\netcd_ca = \"ca.pem\"\n\
         etcd_username = \"node1\"\netcd_password = \"s3cret-pw\"\n",
    )
    .unwrap();
    let store = Store::open(dir.join("profiles"), Secrets::in_memory());
    store.import(&file).unwrap();
    let stored = std::fs::read_to_string(dir.join("profiles/site.toml")).unwrap();
    assert!(!stored.contains("s3cret-pw"), "the password reached the file:\n{stored}");
    assert!(stored.contains(&format!("etcd_ca = \"{}\"", dir.join("ca.pem").display())), "{stored}");
    let loaded = store.load("site").unwrap();
    let Tunnel::Overlay(o) = &loaded.tunnel else { panic!("{loaded:?}") };
    assert_eq!(o.etcd_password.as_ref().map(|p| p.expose()), Some("s3cret-pw"));
    assert!(o.etcd_ca.as_ref().unwrap().pem.contains("BEGIN CERTIFICATE"));
    store.remove("site").unwrap();
    assert!(store.secrets.get(&secrets::etcd_password_account("site")).unwrap().is_none());
}
