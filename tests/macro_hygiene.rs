//! `#[mpreg::register]` expands to absolute paths only: it must compile in a module without
//! the prelude, where `Result`, `String`, `Vec`, `Box` or `Ok` are not in scope, and next to
//! user items whose names would shadow anything the expansion might refer to by a relative
//! path.

#![no_implicit_prelude]

/// Registrations in a module that also defines items named like the ones the expansion
/// uses, so that a relative path in the expansion would pick the wrong one.
mod shadowing {
    #![allow(dead_code, non_camel_case_types)]

    struct Bytes;
    struct BoxFuture;
    struct HandlerResult;
    struct FnEntry;
    struct Visibility;
    struct inventory;
    struct core;
    fn infallible() {}
    fn fallible() {}
    fn shim_sync() {}
    fn shim_async() {}
    fn __mpreg_shim() {}

    #[::mpreg::register(name = "hygiene.sync", resources = ["r"], visibility = "node")]
    pub(crate) fn sync_fn(a: ::std::string::String, b: ::std::vec::Vec<u32>) -> u64 {
        a.len() as u64 + b.len() as u64
    }

    #[::mpreg::register(name = "hygiene.async", visibility = "host")]
    pub(crate) async fn async_fn(a: ::std::string::String) -> ::std::string::String {
        a
    }

    #[::mpreg::register(name = "hygiene.result", blocking)]
    pub(crate) fn result_fn(
        x: ::std::primitive::i64,
    ) -> ::std::result::Result<::std::primitive::i64, ::std::string::String> {
        if x < 0 {
            ::std::result::Result::Err(<::std::string::String as ::std::convert::From<&str>>::from(
                "negative",
            ))
        } else {
            ::std::result::Result::Ok(x)
        }
    }

    #[::mpreg::register(name = "hygiene.async_result")]
    pub(crate) async fn async_result_fn(
        x: ::std::option::Option<::std::primitive::u8>,
    ) -> ::std::io::Result<::std::primitive::u8> {
        ::std::result::Result::Ok(x.unwrap_or(0))
    }

    #[::mpreg::register(name = "hygiene.unit")]
    pub(crate) fn unit_fn() {}

    #[::mpreg::register(name = "hygiene.arg_names")]
    pub(crate) fn arg_names(
        __arg0: ::std::primitive::u8,
        __mpreg_args: ::std::primitive::u8,
    ) -> ::std::primitive::u8 {
        __arg0 + __mpreg_args
    }
}

#[test]
fn registered_functions_stay_callable() {
    // The point of this file is that it compiles; calling the functions also checks that the
    // macro left them untouched.
    let s = <::std::string::String as ::std::convert::From<&str>>::from("ab");
    ::std::assert_eq!(shadowing::sync_fn(s, ::std::vec![1, 2, 3]), 5);
    ::std::assert_eq!(shadowing::result_fn(-1).ok(), ::std::option::Option::None);
    ::std::assert_eq!(shadowing::result_fn(4).ok(), ::std::option::Option::Some(4));
    ::std::assert_eq!(shadowing::arg_names(1, 2), 3);
    shadowing::unit_fn();
    // The async ones are only created, not run: that needs no runtime.
    ::std::mem::drop(shadowing::async_fn(::std::string::String::new()));
    ::std::mem::drop(shadowing::async_result_fn(::std::option::Option::None));
}
