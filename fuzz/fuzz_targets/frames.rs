#![no_main]
//! `cargo fuzz run frames`: see `mpreg::fuzzing::frames` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::frames(data));
