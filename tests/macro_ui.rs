//! Compile-time behaviour of `#[mpreg::register]`: every unsupported signature or option is a
//! clear error on the right tokens (`tests/ui/fail`, with reviewed `.stderr` files), and every
//! supported form compiles (`tests/ui/pass`).
//!
//! After changing a message in `mpreg-macros`, regenerate the expectations with
//! `TRYBUILD=overwrite cargo test --test macro_ui` and review the diff.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/fail/*.rs");
    t.pass("tests/ui/pass/*.rs");
}
