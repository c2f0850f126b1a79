//! Code generation: a validated [`Registration`] becomes the original function followed by a
//! shim and an `inventory` entry.
//!
//! Every path in the output is absolute (`::mpreg::__private::…`, `::core::…`) so that the
//! expansion works whatever the user has imported, including under `#![no_implicit_prelude]`.

use proc_macro2::{Delimiter, Group, Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::ext::IdentExt;
use syn::{Ident, LitStr};

use crate::parse::{FnModel, Registration, Visibility};
use crate::types::render_type;

/// The full expansion: `original` unchanged, then the registration in an anonymous const so
/// that its items never clash with the user's or with other registrations in the same module.
pub fn registration(registration: &Registration, original: TokenStream) -> TokenStream {
    let function = &registration.function;
    let cfgs = &function.cfgs;
    let shim = shim(function);
    let entry = entry(registration);
    quote! {
        #original
        #(#cfgs)*
        const _: () = {
            #shim
            #entry
        };
    }
}

/// The shim: decodes the positional arguments into a tuple of the parameter types, calls the
/// function, converts its result. Shapes and names are those of `mpreg::__private`.
///
/// Spans are chosen so that the trait errors users actually hit land on their own code
/// rather than on the attribute; see [`argument_tuple`], [`conversion`] and [`shim_call`].
fn shim(function: &FnModel) -> TokenStream {
    let args_ident = Ident::new("__mpreg_args", Span::mixed_site());
    let body = shim_call(function, &args_ident);
    quote! {
        // `deprecated`: registering a deprecated function is a deliberate use, not a new one.
        // `clippy::let_unit_value`: a function returning `()` still has its value bound.
        #[allow(non_snake_case, deprecated, clippy::let_unit_value)]
        fn __mpreg_shim(
            #args_ident: ::mpreg::__private::Bytes,
        ) -> ::mpreg::__private::BoxFuture<::mpreg::__private::HandlerResult> {
            #body
        }
    }
}

/// `shim_sync::<(T0, …,), _>(args, |(__arg0, …,): (T0, …,)| …)`, or its `shim_async` form.
fn shim_call(function: &FnModel, args_ident: &Ident) -> TokenStream {
    // Mixed-site spans: these locals cannot be named by, nor clash with, the user's tokens.
    let args: Vec<Ident> = (0..function.params.len())
        .map(|i| format_ident!("__arg{}", i, span = Span::mixed_site()))
        .collect();
    let tuple = argument_tuple(function);
    let pattern = quote!((#(#args,)*): #tuple);
    let ident = &function.ident;
    let call = quote!(#ident(#(#args),*));
    let (ret, convert) = conversion(function);
    match &function.asyncness {
        // `shim_async` requires the future to be `Send`, and rustc reports a violation on
        // that call: giving the call the span of the function's `async` keyword points "future
        // cannot be sent between threads safely" at the user's function.
        Some(asyncness) => quote_spanned! {asyncness.span=>
            ::mpreg::__private::shim_async::<#tuple, _, _>(#args_ident, |#pattern| async move {
                let #ret = #call.await;
                #convert
            })
        },
        None => quote! {
            ::mpreg::__private::shim_sync::<#tuple, _>(#args_ident, |#pattern| {
                let #ret = #call;
                #convert
            })
        },
    }
}

/// The tuple type the arguments decode into, `(T0, T1,)`. It is passed to the shim function
/// explicitly because rustc blames an explicit generic argument for an unmet bound; its
/// elements are the user's type tokens and its parentheses span the user's parameter list,
/// so "`Opaque: Deserialize` is not satisfied" points at the parameters.
fn argument_tuple(function: &FnModel) -> Group {
    let types = function.params.iter().map(|p| &p.ty);
    let mut tuple = Group::new(Delimiter::Parenthesis, quote!(#(#types,)*));
    tuple.set_span(function.params_span);
    tuple
}

/// The local holding the function's value, and the expression converting it with
/// `fallible` or `infallible` (see [`crate::types::returns_result`]).
///
/// Both carry the return type's span: rustc reports an unmet bound on a call's argument
/// only when the argument comes from the same (user) context as the call, and a result that
/// is not `Serialize`, or an error that is not `Display`, then points at the return type.
fn conversion(function: &FnModel) -> (Ident, TokenStream) {
    let span = function.output_span;
    let ret = Ident::new("__mpreg_ret", span);
    let convert = if function.returns_result {
        quote_spanned!(span=> ::mpreg::__private::fallible(#ret))
    } else {
        quote_spanned!(span=> ::mpreg::__private::infallible(#ret))
    };
    (ret, convert)
}

/// The `inventory::submit!` of the function's `FnEntry`.
fn entry(registration: &Registration) -> TokenStream {
    let function = &registration.function;
    let options = &registration.options;
    let name = options
        .name
        .clone()
        .unwrap_or_else(|| default_name(&function.ident));
    let params = function.params.iter().map(|p| {
        let name = p.ident.unraw().to_string();
        let ty = render_type(&p.ty);
        quote!((#name, #ty))
    });
    let resources = &options.resources;
    let visibility = visibility_path(options.visibility);
    let blocking = options.blocking.is_some();
    let idempotent = options.idempotent;
    // `line!()` reports the line of its invocation's span; spanning it on the function's
    // identifier gives the line of `fn name` instead of the attribute's.
    let line = quote_spanned!(function.ident.span()=> ::core::line!());
    quote! {
        ::mpreg::__private::inventory::submit! {
            ::mpreg::__private::FnEntry {
                name: #name,
                params: &[#(#params),*],
                resources: &[#(#resources),*],
                visibility: #visibility,
                blocking: #blocking,
                idempotent: #idempotent,
                module: ::core::module_path!(),
                file: ::core::file!(),
                line: #line,
                shim: __mpreg_shim,
            }
        }
    }
}

/// The name used when none is given: the identifier without any `r#`, so `fn r#type` is
/// called as `type`.
fn default_name(ident: &Ident) -> LitStr {
    LitStr::new(&ident.unraw().to_string(), ident.span())
}

/// The `mpreg::Visibility` variant for `visibility`.
fn visibility_path(visibility: Visibility) -> TokenStream {
    match visibility {
        Visibility::Node => quote!(::mpreg::__private::Visibility::Node),
        Visibility::Host => quote!(::mpreg::__private::Visibility::Host),
        Visibility::Network => quote!(::mpreg::__private::Visibility::Network),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn expand(attr: TokenStream, item: TokenStream) -> String {
        let r = Registration::parse(attr, item.clone()).unwrap();
        registration(&r, item).to_string()
    }

    #[test]
    fn sync_plain_function_uses_shim_sync_and_infallible() {
        let out = expand(
            quote!(),
            quote!(
                fn add(a: i64, b: Vec<u32>) -> i64 {
                    a
                }
            ),
        );
        assert!(out.contains("shim_sync"), "{out}");
        assert!(
            out.contains("shim_sync :: < (i64 , Vec < u32 > ,) , _ >"),
            "{out}"
        );
        assert!(
            out.contains("let __mpreg_ret = add (__arg0 , __arg1) ;"),
            "{out}"
        );
        assert!(out.contains("infallible (__mpreg_ret)"), "{out}");
        assert!(
            out.contains("(\"a\" , \"i64\") , (\"b\" , \"Vec<u32>\")"),
            "{out}"
        );
        assert!(out.contains("Visibility :: Network"), "{out}");
        assert!(out.contains("blocking : false"), "{out}");
    }

    #[test]
    fn async_result_function_uses_shim_async_and_fallible() {
        let out = expand(
            quote!(name = "renamed", resources = ["gpu"], visibility = "node"),
            quote!(
                async fn f(x: String) -> std::io::Result<u8> {
                    Ok(0)
                }
            ),
        );
        assert!(
            out.contains("shim_async :: < (String ,) , _ , _ >"),
            "{out}"
        );
        assert!(
            out.contains("let __mpreg_ret = f (__arg0) . await ;"),
            "{out}"
        );
        assert!(out.contains("fallible (__mpreg_ret)"), "{out}");
        assert!(out.contains("name : \"renamed\""), "{out}");
        assert!(out.contains("resources : & [\"gpu\"]"), "{out}");
        assert!(out.contains("Visibility :: Node"), "{out}");
    }

    #[test]
    fn zero_params_use_unit_tuple() {
        let out = expand(
            quote!(blocking),
            quote!(
                fn ping() {}
            ),
        );
        assert!(out.contains("| () : () |"), "{out}");
        assert!(out.contains("params : & []"), "{out}");
        assert!(out.contains("blocking : true"), "{out}");
    }

    #[test]
    fn raw_identifiers_are_called_raw_and_named_plain() {
        let out = expand(
            quote!(),
            quote!(
                fn r#type(r#in: u8) {}
            ),
        );
        assert!(out.contains("= r#type (__arg0) ;"), "{out}");
        assert!(out.contains("name : \"type\""), "{out}");
        assert!(out.contains("(\"in\" , \"u8\")"), "{out}");
    }

    #[test]
    fn cfg_attributes_are_repeated_on_the_registration() {
        let out = expand(
            quote!(),
            quote!(
                #[cfg(feature = "x")]
                fn f() {}
            ),
        );
        assert_eq!(out.matches("# [cfg (feature = \"x\")]").count(), 2, "{out}");
    }
}
