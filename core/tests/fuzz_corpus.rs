//! Every committed input of the core's fuzz targets (fuzz/corpus/<target>/), through the same entry points the
//! fuzzer calls: what a fuzzing run once found keeps being checked by every ordinary test run.

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    culvert_core::fuzzing::replay(&dir, entry);
}

#[test]
fn ipc_frames() {
    replay("ipc_frames", culvert_core::fuzzing::ipc_frames);
}

#[test]
fn profile_toml() {
    replay("profile_toml", culvert_core::fuzzing::profile_toml);
}

#[test]
fn wg_quick_conf() {
    replay("wg_quick_conf", culvert_core::fuzzing::wg_quick_conf);
}

#[test]
fn nm_connection() {
    replay("nm_connection", culvert_core::fuzzing::nm_connection);
}

#[test]
fn ip_header() {
    replay("ip_header", culvert_core::fuzzing::ip_header);
}
