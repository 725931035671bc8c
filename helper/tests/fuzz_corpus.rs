//! Every committed input of the helper's fuzz targets (fuzz/corpus/<target>/), through the same entry points the
//! fuzzer calls: what a fuzzing run once found keeps being checked by every ordinary test run.

fn replay(target: &str, entry: fn(&[u8])) {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus").join(target);
    culvert_core::fuzzing::replay(&dir, entry);
}

#[test]
fn uapi_request() {
    replay("uapi_request", culvert_helper::fuzzing::uapi_request);
}

#[test]
fn datagram() {
    replay("datagram", culvert_helper::fuzzing::datagram);
}

#[test]
fn device_packet() {
    replay("device_packet", culvert_helper::fuzzing::device_packet);
}

#[test]
fn etcd_records() {
    replay("etcd_records", culvert_helper::fuzzing::etcd_records);
}

#[test]
fn dns_answer() {
    replay("dns_answer", culvert_helper::fuzzing::dns_answer);
}
