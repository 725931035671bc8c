#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| culvert_core::fuzzing::nm_connection(data));
