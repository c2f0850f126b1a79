#![no_main]
//! `cargo fuzz run workflow`: see `mpreg::fuzzing::workflow` for the properties checked.

libfuzzer_sys::fuzz_target!(|data: &[u8]| mpreg::fuzzing::workflow(data));
