#![no_main]
//! `cargo fuzz run handshake`: see `mpreg::fuzzing::handshake` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::handshake(data));
