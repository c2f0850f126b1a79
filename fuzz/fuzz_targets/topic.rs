#![no_main]
//! `cargo fuzz run topic`: see `mpreg::fuzzing::topic` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::topic(data));
