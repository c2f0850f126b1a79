#![no_main]
//! `cargo fuzz run gateway`: see `mpreg::fuzzing::gateway` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::gateway(data));
