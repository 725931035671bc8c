#![no_main]
libfuzzer_sys::fuzz_target!(|data: &[u8]| culvert_helper::fuzzing::dns_answer(data));
