#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| culvert_helper::fuzzing::etcd_records(data));
