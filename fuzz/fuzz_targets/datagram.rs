#![no_main]
//! `cargo fuzz run datagram`: see `mpreg::fuzzing::datagram` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::datagram(data));
