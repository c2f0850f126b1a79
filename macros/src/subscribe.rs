//! `#[mpreg::subscribe("pattern", group = "g", lossless)]`: parse the attribute, check the function
//! (through the same [`FnModel`] as `#[register]`), and expand to a shim plus an
//! `inventory` entry.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::parse::{Parse, ParseStream};
use syn::{Item, LitStr, Token};

use crate::parse::{Errors, FnModel};

/// The attribute's arguments: the pattern, then optionally `group = "name"` and
/// `lossless`, in any order.
pub struct SubscribeArgs {
    /// Topic pattern, checked when the node starts (the runtime owns the grammar).
    pub pattern: LitStr,
    /// Queue group, if any.
    pub group: Option<LitStr>,
    /// Whether a full queue slows the publishers instead of dropping the oldest.
    pub lossless: bool,
}

const OPTIONS: &str = "the options are `group = \"name\"` and `lossless`";

impl Parse for SubscribeArgs {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        if input.is_empty() {
            return Err(syn::Error::new(
                Span::call_site(),
                "expected a topic pattern: #[mpreg::subscribe(\"sensors.*.temp\")]",
            ));
        }
        let pattern: LitStr = input.parse().map_err(|e| {
            syn::Error::new(
                e.span(),
                "expected a topic pattern as a string literal, e.g. \"sensors.*.temp\"",
            )
        })?;
        let mut args = SubscribeArgs {
            pattern,
            group: None,
            lossless: false,
        };
        while input.parse::<Option<Token![,]>>()?.is_some() && !input.is_empty() {
            args.option(input)?;
        }
        if !input.is_empty() {
            return Err(input.error("unexpected tokens after the options of #[mpreg::subscribe]"));
        }
        if args.pattern.value().is_empty() {
            return Err(syn::Error::new(
                args.pattern.span(),
                "the topic pattern must not be empty",
            ));
        }
        Ok(args)
    }
}

impl SubscribeArgs {
    /// One option after the pattern.
    fn option(&mut self, input: ParseStream) -> syn::Result<()> {
        let key: syn::Ident = input.parse()?;
        let twice = || syn::Error::new(key.span(), format!("`{key}` is given twice"));
        if key == "group" {
            if self.group.is_some() {
                return Err(twice());
            }
            input.parse::<Token![=]>()?;
            self.group = Some(input.parse::<LitStr>()?);
        } else if key == "lossless" {
            if self.lossless {
                return Err(twice());
            }
            if input.peek(Token![=]) {
                return Err(input.error("`lossless` takes no value: write `lossless`"));
            }
            self.lossless = true;
        } else {
            return Err(syn::Error::new(
                key.span(),
                format!("unknown option `{key}` for #[mpreg::subscribe]; {OPTIONS}"),
            ));
        }
        Ok(())
    }
}

/// Parses and validates; the function must take the payload and optionally the metadata.
pub fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<(SubscribeArgs, FnModel)> {
    let mut errors = Errors::default();
    let args = errors.take(syn::parse2::<SubscribeArgs>(attr));
    let function = errors
        .take(syn::parse2::<Item>(item))
        .and_then(|item| FnModel::from_item(item, &mut errors));
    if let Some(f) = &function {
        if f.params.is_empty() || f.params.len() > 2 {
            errors.push(syn::Error::new(
                f.params_span,
                "a subscriber takes the payload, and optionally `mpreg::PubMeta` (topic and sender) second: `fn on_temp(t: f64, meta: mpreg::PubMeta)`",
            ));
        }
    }
    errors.finish()?;
    match (args, function) {
        (Some(a), Some(f)) => Ok((a, f)),
        _ => unreachable!("a missing part always records an error"),
    }
}

/// The original function, then in an anonymous const a shim and the `SubEntry`.
pub fn expand(args: &SubscribeArgs, function: &FnModel, original: TokenStream) -> TokenStream {
    let cfgs = &function.cfgs;
    let ident = &function.ident;
    let payload_ty = &function.params[0].ty;
    let p = format_ident!("__mpreg_p", span = Span::mixed_site());
    let arg = format_ident!("__mpreg_arg", span = Span::mixed_site());
    let call = if function.params.len() == 2 {
        quote!(#ident(#arg, ::mpreg::__private::sub_meta(#p)))
    } else {
        quote!(#ident(#arg))
    };
    let span = function.output_span;
    let convert = if function.returns_result {
        quote_spanned!(span=> ::mpreg::__private::fallible(__mpreg_ret))
    } else {
        quote_spanned!(span=> ::mpreg::__private::infallible(__mpreg_ret))
    };
    let ret = syn::Ident::new("__mpreg_ret", span);
    let body = match &function.asyncness {
        Some(a) => quote_spanned! {a.span=>
            ::mpreg::__private::sub_async::<#payload_ty, _, _>(#p, |#arg, #p| {
                let __mpreg_fut = #call;
                async move { let #ret = __mpreg_fut.await; #convert }
            })
        },
        None => quote! {
            ::mpreg::__private::sub_sync::<#payload_ty, _>(#p, |#arg, #p| {
                let #ret = #call;
                #convert
            })
        },
    };
    let pattern = &args.pattern;
    let group = match &args.group {
        Some(g) => quote!(::core::option::Option::Some(#g)),
        None => quote!(::core::option::Option::None),
    };
    let lossless = args.lossless;
    let name = ident.to_string();
    let line = quote_spanned!(ident.span()=> ::core::line!());
    quote! {
        #original
        #(#cfgs)*
        const _: () = {
            #[allow(non_snake_case, deprecated, clippy::let_unit_value, unused_variables)]
            fn __mpreg_sub(
                #p: ::mpreg::__private::Publication,
            ) -> ::mpreg::__private::BoxFuture<::mpreg::__private::HandlerResult> {
                #body
            }
            ::mpreg::__private::inventory::submit! {
                ::mpreg::__private::SubEntry {
                    pattern: #pattern,
                    group: #group,
                    lossless: #lossless,
                    function: #name,
                    module: ::core::module_path!(),
                    file: ::core::file!(),
                    line: #line,
                    handler: __mpreg_sub,
                }
            }
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(tokens: TokenStream) -> syn::Result<SubscribeArgs> {
        syn::parse2(tokens)
    }

    #[test]
    fn options_come_in_any_order() {
        let a = args(quote!("a.*", lossless, group = "g")).unwrap();
        assert!(a.lossless);
        assert_eq!(a.group.unwrap().value(), "g");
        let a = args(quote!("a.*", group = "g")).unwrap();
        assert!(!a.lossless);
        let a = args(quote!("a.*", lossless,)).unwrap();
        assert!(a.lossless && a.group.is_none());
    }

    #[test]
    fn repeated_valued_or_unknown_options_are_refused() {
        let err = |t| args(t).err().expect("refused").to_string();
        assert_eq!(
            err(quote!("a", lossless, lossless)),
            "`lossless` is given twice"
        );
        assert!(err(quote!("a", lossless = true)).contains("takes no value"));
        assert!(err(quote!("a", lossy)).contains("`group = \"name\"` and `lossless`"));
    }
}
