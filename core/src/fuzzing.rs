//! Entry points of the fuzz targets (`fuzz/fuzz_targets/`): each takes bytes as an outside party could send or
//! write them, and must never panic. The committed corpora (`fuzz/corpus/<target>/`) are replayed through these
//! same functions by ordinary tests on the stable toolchain (`core/tests/fuzz_corpus.rs`).

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use crate::ipc::codec::JsonCodec;
use crate::ipc::{ClientMessage, ServerMessage};
use crate::packets::{Direction, parse};
use crate::profile::{nm_keyfile, parse_toml, wg_quick, write_toml};
use crate::wire::Ip;

/// Frames and messages as the helper reads them from a client, and as a client reads them from a helper.
pub fn ipc_frames(data: &[u8]) {
    fn drain<T: serde::de::DeserializeOwned>(data: &[u8]) {
        let mut codec = JsonCodec::<T, ()>::default();
        let mut buf = BytesMut::from(data);
        while let Ok(Some(_)) = codec.decode(&mut buf) {}
    }
    drain::<ClientMessage>(data);
    drain::<ServerMessage>(data);
}

/// A TOML profile file; one that parses must read back the same from what Culvert writes of it.
pub fn profile_toml(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(profile) = parse_toml("fuzz", text) {
        let again = parse_toml("fuzz", &write_toml(&profile));
        assert_eq!(again.as_ref().ok(), Some(&profile), "a written profile reads back differently");
    }
}

/// A wg-quick `.conf` file; one that parses must read back the same from what Culvert writes of it.
pub fn wg_quick_conf(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok((profile, _)) = wg_quick::parse("wg0", text) {
        let written = wg_quick::write(&profile).expect("a wireguard profile has a wg-quick form");
        let again = wg_quick::parse("wg0", &written).map(|(p, _)| p);
        assert_eq!(again.as_ref().ok(), Some(&profile), "a written file reads back differently");
    }
}

/// A NetworkManager keyfile; one that parses must read back the same from the wg-quick file Culvert writes of
/// it (what `culvert export` prints of an imported connection).
pub fn nm_connection(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(profile) = nm_keyfile::parse("wg0", text) {
        let written = wg_quick::write(&profile).expect("a wireguard profile has a wg-quick form");
        let again = wg_quick::parse(&profile.name, &written).map(|(p, _)| p);
        assert_eq!(again.as_ref().ok(), Some(&profile), "an imported connection exports differently");
    }
}

/// IP headers, and Ethernet frames, as the packet views read them from sampled packets.
pub fn ip_header(data: &[u8]) {
    if let Some(ip) = Ip::new_checked(data) {
        let _ = (ip.source(), ip.destination(), ip.protocol(), ip.ports());
        assert!(ip.payload().len() <= data.len());
    }
    for ethernet in [false, true] {
        let s = parse(0, Direction::In, data, ethernet);
        assert_eq!(s.len as usize, data.len());
    }
}

/// Runs `entry` on every file of `dir` (a target's corpus); panics naming the first input that fails it, and
/// when the directory holds none.
pub fn replay(dir: &std::path::Path, entry: fn(&[u8])) {
    let mut n = 0;
    let files = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for file in files {
        let path = file.unwrap_or_else(|e| panic!("{}: {e}", dir.display())).path();
        let data = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        if std::panic::catch_unwind(|| entry(&data)).is_err() {
            panic!("{} fails its fuzz target", path.display());
        }
        n += 1;
    }
    assert!(n > 0, "{} holds no inputs", dir.display());
}
