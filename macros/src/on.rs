//! `#[mpreg::on("condition")]` on free functions and `#[mpreg::handlers]` on `impl` blocks:
//! parse into a small model, check what can be checked at compile time, expand.
//!
//! A condition is only checked for its shape here (every unit event has three non-empty
//! `:`-separated parts, parentheses balance): the full grammar lives in `mpreg` itself, which
//! validates each condition when a node starts and names the handler if it fails.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote, quote_spanned};
use syn::spanned::Spanned;
use syn::{Attribute, FnArg, ImplItem, ImplItemFn, ItemFn, ItemImpl, LitStr, Signature, Type};

use crate::parse::Errors;

/// `#[mpreg::on("…")]` on a free function.
pub fn on(attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream> {
    let mut errors = Errors::default();
    let condition = errors.take(condition_of(attr, Span::call_site()));
    let function = syn::parse2::<ItemFn>(item.clone())?;
    let node_param = errors.take(free_signature(&function.sig));
    errors.finish()?;
    let (Some(condition), Some(node_param)) = (condition, node_param) else {
        return Err(syn::Error::new(
            Span::call_site(),
            "invalid message handler",
        ));
    };
    let ident = &function.sig.ident;
    let node = format_ident!("__mpreg_node", span = Span::mixed_site());
    let msgs = format_ident!("__mpreg_messages", span = Span::mixed_site());
    let args = match node_param {
        NodeParam::None => quote!(#msgs),
        NodeParam::Owned => quote!(#node, #msgs),
        NodeParam::Borrowed => quote!(&#node, #msgs),
    };
    let call = match function.sig.asyncness {
        Some(a) => quote_spanned!(a.span=> #ident(#args).await),
        None => quote!(#ident(#args)),
    };
    let name = ident.to_string();
    let cfgs: Vec<&Attribute> = function
        .attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .collect();
    Ok(quote! {
        #item
        #(#cfgs)*
        const _: () = {
            #[allow(non_snake_case, deprecated, clippy::let_unit_value, unused_variables)]
            fn __mpreg_on_shim(
                #node: ::mpreg::__private::Node,
                #msgs: ::std::vec::Vec<::mpreg::__private::Message>,
            ) -> ::mpreg::__private::HandlerFuture<'static> {
                ::std::boxed::Box::pin(async move {
                    let __mpreg_out = #call;
                    ::mpreg::__private::HandlerOutcome::report(__mpreg_out, #name);
                })
            }
            ::mpreg::__private::inventory::submit! {
                ::mpreg::__private::OnEntry {
                    name: ::core::concat!(::core::module_path!(), "::", #name),
                    condition: #condition,
                    file: ::core::file!(),
                    line: ::core::line!(),
                    shim: __mpreg_on_shim,
                }
            }
        };
    })
}

/// `#[mpreg::handlers]` on an `impl` block. On error the block is still emitted, without
/// its `#[on]` attributes, so that the only errors are ours (not "cannot find attribute").
pub fn handlers(attr: TokenStream, item: TokenStream) -> TokenStream {
    let mut block = match syn::parse2::<ItemImpl>(item) {
        Ok(block) => block,
        Err(e) => return e.into_compile_error(),
    };
    let mut errors = Errors::default();
    if !attr.is_empty() {
        errors.push(syn::Error::new(
            attr.span(),
            "`#[mpreg::handlers]` takes no options",
        ));
    }
    if !block.generics.params.is_empty() {
        errors.push(syn::Error::new(
            block.generics.span(),
            "`#[mpreg::handlers]` does not support generic impl blocks",
        ));
    }
    if let Some((_, path, _)) = &block.trait_ {
        errors.push(syn::Error::new(
            path.span(),
            "`#[mpreg::handlers]` goes on an inherent `impl Type { .. }` block",
        ));
    }
    let self_ty = &block.self_ty;
    let type_name = quote!(#self_ty).to_string().replace(' ', "");
    let mut methods = Vec::new();
    let mut marked = 0;
    for item in &mut block.items {
        let ImplItem::Fn(method) = item else { continue };
        let Some(condition) = errors.take(take_on(method)).flatten() else {
            continue;
        };
        marked += 1;
        if errors.take(method_signature(&method.sig)).is_some() {
            methods.push((
                method.sig.ident.clone(),
                method.sig.asyncness.is_some(),
                condition,
            ));
        }
    }
    if marked == 0 {
        errors.push(syn::Error::new(
            block.self_ty.span(),
            "`#[mpreg::handlers]` found no method marked `#[on(\"source:tag:amount\")]`",
        ));
    }
    match errors.finish() {
        Ok(()) => expand_handlers(&block, &type_name, &methods),
        Err(e) => {
            let mut tokens = e.into_compile_error();
            tokens.extend(quote!(#block));
            tokens
        }
    }
}

fn expand_handlers(
    block: &ItemImpl,
    type_name: &str,
    methods: &[(syn::Ident, bool, LitStr)],
) -> TokenStream {
    let self_ty = &block.self_ty;
    let msgs = format_ident!("__mpreg_messages", span = Span::mixed_site());
    let entries = methods.iter().map(|(ident, _, condition)| {
        let name = format!("{type_name}::{ident}");
        quote!((#name, #condition))
    });
    let arms = methods.iter().enumerate().map(|(i, (ident, is_async, _))| {
        let name = format!("{type_name}::{ident}");
        let call = if *is_async {
            quote!(self.#ident(#msgs).await)
        } else {
            quote!(self.#ident(#msgs))
        };
        quote! {
            #i => ::std::boxed::Box::pin(async move {
                let __mpreg_out = #call;
                ::mpreg::__private::HandlerOutcome::report(__mpreg_out, #name);
            }),
        }
    });
    quote! {
        #block
        #[allow(clippy::let_unit_value)]
        impl ::mpreg::__private::Handlers for #self_ty {
            fn conditions() -> ::std::vec::Vec<(&'static str, &'static str)> {
                ::std::vec![#(#entries),*]
            }
            fn handle(
                &mut self,
                index: ::core::primitive::usize,
                #msgs: ::std::vec::Vec<::mpreg::__private::Message>,
            ) -> ::mpreg::__private::HandlerFuture<'_> {
                match index {
                    #(#arms)*
                    _ => ::std::boxed::Box::pin(async {}),
                }
            }
        }
    }
}

/// Removes the method's `#[on("…")]` attribute and returns its condition, if it has one.
fn take_on(method: &mut ImplItemFn) -> syn::Result<Option<LitStr>> {
    let Some(pos) = method.attrs.iter().position(is_on) else {
        return Ok(None);
    };
    let attr = method.attrs.remove(pos);
    if let Some(dup) = method.attrs.iter().find(|a| is_on(a)) {
        return Err(syn::Error::new(
            dup.span(),
            "a handler takes one `#[on(..)]`; combine conditions with `&` and `|`",
        ));
    }
    let tokens = match &attr.meta {
        syn::Meta::List(list) => list.tokens.clone(),
        _ => TokenStream::new(),
    };
    condition_of(tokens, attr.span()).map(Some)
}

fn is_on(attr: &Attribute) -> bool {
    attr.path().segments.last().is_some_and(|s| s.ident == "on")
}

/// The attribute's one string literal, checked for shape.
fn condition_of(tokens: TokenStream, span: Span) -> syn::Result<LitStr> {
    if tokens.is_empty() {
        return Err(syn::Error::new(
            span,
            "expected a condition: `#[on(\"source:tag:amount\")]`",
        ));
    }
    let lit: LitStr = syn::parse2(tokens).map_err(|e| {
        syn::Error::new(
            e.span(),
            "expected one string literal: `#[on(\"source:tag:amount\")]`",
        )
    })?;
    check_shape(&lit.value()).map_err(|m| syn::Error::new(lit.span(), m))?;
    Ok(lit)
}

/// Compile-time check of a condition's shape; the message quotes the bad part.
pub fn check_shape(text: &str) -> Result<(), String> {
    let mut depth = 0i32;
    for c in text.chars() {
        depth += match c {
            '(' => 1,
            ')' => -1,
            _ => 0,
        };
        if depth < 0 {
            return Err(format!("bad condition {text:?}: unbalanced `)`"));
        }
    }
    if depth != 0 {
        return Err(format!("bad condition {text:?}: unclosed `(`"));
    }
    let units = text.split(['&', '|', '(', ')']).map(str::trim);
    let mut any = false;
    for unit in units.filter(|u| !u.is_empty()) {
        any = true;
        let parts: Vec<&str> = unit.split(':').collect();
        if parts.len() != 3 || parts.iter().any(|p| p.trim().is_empty()) {
            return Err(format!(
                "bad condition {text:?}: `{unit}` is not a unit event `source:tag:amount`"
            ));
        }
    }
    if !any {
        return Err(format!(
            "bad condition {text:?}: no unit event `source:tag:amount`"
        ));
    }
    Ok(())
}

/// How a free handler takes the node.
enum NodeParam {
    None,
    Owned,
    Borrowed,
}

const FREE_SHAPE: &str = "a `#[mpreg::on]` handler takes `(messages: Vec<Message>)` or `(node: &Node, messages: Vec<Message>)`";

fn common_checks(sig: &Signature) -> syn::Result<()> {
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        return Err(syn::Error::new(
            sig.generics.span(),
            "message handlers cannot be generic",
        ));
    }
    if let Some(u) = &sig.unsafety {
        return Err(syn::Error::new(
            u.span(),
            "message handlers cannot be `unsafe`",
        ));
    }
    Ok(())
}

fn free_signature(sig: &Signature) -> syn::Result<NodeParam> {
    common_checks(sig)?;
    let params: Vec<&FnArg> = sig.inputs.iter().collect();
    let typed = |a: &FnArg| match a {
        FnArg::Typed(t) => Some((*t.ty).clone()),
        FnArg::Receiver(_) => None,
    };
    let bad = |span: Span| syn::Error::new(span, FREE_SHAPE);
    match params.as_slice() {
        [m] => {
            let ty = typed(m).ok_or_else(|| bad(m.span()))?;
            expect_messages(&ty).map(|()| NodeParam::None)
        }
        [n, m] => {
            let node = typed(n).ok_or_else(|| bad(n.span()))?;
            let msgs = typed(m).ok_or_else(|| bad(m.span()))?;
            expect_messages(&msgs)?;
            match &node {
                Type::Reference(r)
                    if r.mutability.is_none() && last_ident(&r.elem) == Some("Node".into()) =>
                {
                    Ok(NodeParam::Borrowed)
                }
                t if last_ident(t) == Some("Node".into()) => Ok(NodeParam::Owned),
                t => Err(bad(t.span())),
            }
        }
        _ => Err(bad(sig
            .inputs
            .span()
            .join(sig.ident.span())
            .unwrap_or(sig.ident.span()))),
    }
}

fn method_signature(sig: &Signature) -> syn::Result<()> {
    common_checks(sig)?;
    let shape = "a handler method takes `(&mut self, messages: Vec<Message>)` (or `&self`)";
    let mut inputs = sig.inputs.iter();
    match inputs.next() {
        Some(FnArg::Receiver(r)) if r.reference.is_some() => {}
        Some(other) => return Err(syn::Error::new(other.span(), shape)),
        None => return Err(syn::Error::new(sig.ident.span(), shape)),
    }
    match (inputs.next(), inputs.next()) {
        (Some(FnArg::Typed(t)), None) => expect_messages(&t.ty),
        (_, Some(extra)) | (Some(extra), None) => Err(syn::Error::new(extra.span(), shape)),
        (None, None) => Err(syn::Error::new(sig.ident.span(), shape)),
    }
}

fn expect_messages(ty: &Type) -> syn::Result<()> {
    if last_ident(ty) == Some("Vec".into()) {
        Ok(())
    } else {
        Err(syn::Error::new(
            ty.span(),
            "expected `Vec<Message>`: a handler receives the messages of one firing",
        ))
    }
}

fn last_ident(ty: &Type) -> Option<String> {
    match ty {
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::check_shape;

    #[test]
    fn shapes() {
        assert!(check_shape("worker:update:60%").is_ok());
        assert!(check_shape("a:b:1 & (c:d:2 | *:e:3)").is_ok());
        let e = check_shape("worker:update").unwrap_err();
        assert!(e.contains("`worker:update` is not a unit event"), "{e}");
        assert!(check_shape("(a:b:1").unwrap_err().contains("unclosed `(`"));
        assert!(check_shape("a:b:1)")
            .unwrap_err()
            .contains("unbalanced `)`"));
        assert!(check_shape("  ").unwrap_err().contains("no unit event"));
        assert!(check_shape("a::1").is_err());
    }
}
