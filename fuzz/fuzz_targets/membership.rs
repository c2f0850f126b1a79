#![no_main]
//! `cargo fuzz run membership`: see `mpreg::fuzzing::membership` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::membership(data));
