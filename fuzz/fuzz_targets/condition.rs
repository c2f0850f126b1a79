#![no_main]
//! `cargo fuzz run condition`: see `mpreg::fuzzing::condition` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::condition(data));
