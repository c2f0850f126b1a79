#![no_main]
//! `cargo fuzz run args`: see `mpreg::fuzzing::args` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::args(data));
