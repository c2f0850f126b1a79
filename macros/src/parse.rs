//! Parsing and validation: attribute options and the annotated function become a
//! [`Registration`], or every problem found becomes one combined `syn::Error`.
//!
//! Problems are accumulated rather than returned at the first one (as tarpc does), so that a
//! user fixing a signature sees all of its problems in one build.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
use syn::ext::IdentExt;
use syn::parse::{Parse, ParseStream};
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{
    Attribute, Expr, ExprArray, ExprLit, FnArg, Ident, Item, ItemFn, Lit, LitStr, Pat, ReturnType,
    Signature, Token, Type,
};

use crate::types::{owned_suggestion, render_type, returns_result, unsupported_parts, Unsupported};

/// The options `#[mpreg::register(...)]` accepts, in the order the docs list them.
const OPTIONS: &[&str] = &["name", "resources", "visibility", "blocking", "idempotent"];

/// Collects errors so that all of them reach the user at once.
#[derive(Default)]
pub struct Errors(Option<syn::Error>);

impl Errors {
    /// Records one more error.
    pub fn push(&mut self, error: syn::Error) {
        match &mut self.0 {
            Some(all) => all.combine(error),
            None => self.0 = Some(error),
        }
    }

    /// Records the error of `result`, if any, and hands back its value otherwise.
    pub fn take<T>(&mut self, result: syn::Result<T>) -> Option<T> {
        result.map_err(|e| self.push(e)).ok()
    }

    /// `Err` with every recorded error, or `Ok` if there was none.
    pub fn finish(self) -> syn::Result<()> {
        self.0.map_or(Ok(()), Err)
    }
}

/// Everything the expansion needs: validated options and the function's model.
pub struct Registration {
    /// The attribute's options.
    pub options: Options,
    /// The annotated function.
    pub function: FnModel,
}

impl Registration {
    /// Parses the attribute's arguments and the annotated item, then checks the rules that
    /// involve both (only `blocking` on an `async fn` so far).
    pub fn parse(attr: TokenStream, item: TokenStream) -> syn::Result<Self> {
        let mut errors = Errors::default();
        let options = errors.take(syn::parse2::<Options>(attr));
        let function = errors
            .take(syn::parse2::<Item>(item))
            .and_then(|item| FnModel::from_item(item, &mut errors));
        if let (Some(options), Some(function)) = (&options, &function) {
            check_blocking(options, function, &mut errors);
        }
        errors.finish()?;
        match (options, function) {
            (Some(options), Some(function)) => Ok(Registration { options, function }),
            // Each `None` above comes with a recorded error, so `finish` has returned.
            _ => unreachable!("a missing part always records an error"),
        }
    }
}

/// `blocking` hands a synchronous body to tokio's blocking pool; an `async fn` has no such
/// body, and running its future there would only block a pool thread on it.
fn check_blocking(options: &Options, function: &FnModel, errors: &mut Errors) {
    if let (Some(span), Some(_)) = (options.blocking, function.asyncness) {
        errors.push(syn::Error::new(
            span,
            "`blocking` cannot be used on an async fn: it runs a synchronous body on tokio's \
             blocking thread pool; remove it, or make the function synchronous",
        ));
    }
}

/// Who may call the function; mirrors `mpreg::Visibility`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Visibility {
    /// Callers in the same process.
    Node,
    /// Callers on the same host.
    Host,
    /// Any member of the cluster (the default).
    #[default]
    Network,
}

impl Visibility {
    /// The accepted spellings, as in `mpreg::Visibility`'s `FromStr`.
    const NAMES: &'static [(&'static str, Visibility)] = &[
        ("node", Visibility::Node),
        ("host", Visibility::Host),
        ("network", Visibility::Network),
    ];
}

/// The validated options of `#[mpreg::register(...)]`.
#[derive(Default)]
pub struct Options {
    /// `name = "..."`; `None` means the function's identifier.
    pub name: Option<LitStr>,
    /// `resources = ["a", "b"]`.
    pub resources: Vec<LitStr>,
    /// `visibility = "node" | "host" | "network"`.
    pub visibility: Visibility,
    /// Where `blocking` (or `blocking = true`) was written, if it was.
    pub blocking: Option<Span>,
    /// `idempotent`: a call that loses its node may be retried on another provider.
    pub idempotent: bool,
}

/// One `key` or `key = value` item, before its value is checked. Values are parsed as any
/// expression so that a wrongly typed value is reported by the option's own check (with a
/// message about that option) instead of by a generic parse error.
struct RawOption {
    /// The option's name.
    key: Ident,
    /// `= value`, when present.
    value: Option<(Token![=], Expr)>,
}

impl Parse for RawOption {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        // `parse_any` so that keywords (`type = ...`) reach the unknown-option error.
        let key = input.call(Ident::parse_any)?;
        let value = if input.peek(Token![=]) {
            Some((input.parse()?, input.parse()?))
        } else {
            None
        };
        Ok(RawOption { key, value })
    }
}

impl ToTokens for RawOption {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        self.key.to_tokens(tokens);
        if let Some((eq, value)) = &self.value {
            eq.to_tokens(tokens);
            value.to_tokens(tokens);
        }
    }
}

impl Parse for Options {
    fn parse(input: ParseStream) -> syn::Result<Self> {
        let raw = Punctuated::<RawOption, Token![,]>::parse_terminated(input)?;
        let mut options = Options::default();
        let mut errors = Errors::default();
        let mut seen: Vec<String> = Vec::new();
        for option in raw {
            let key = option.key.unraw().to_string();
            // Unknown keys are reported as unknown each time, not as duplicates.
            if OPTIONS.contains(&key.as_str()) && seen.contains(&key) {
                errors.push(syn::Error::new_spanned(
                    &option,
                    format!("duplicate option `{key}`: each option may be given at most once"),
                ));
                continue;
            }
            seen.push(key.clone());
            let applied = match key.as_str() {
                "name" => name_option(&option).map(|name| options.name = Some(name)),
                "resources" => resources_option(&option).map(|r| options.resources = r),
                "visibility" => visibility_option(&option).map(|v| options.visibility = v),
                "blocking" => flag_option(&option, "blocking").map(|b| {
                    options.blocking = b.then(|| option.span());
                }),
                "idempotent" => flag_option(&option, "idempotent").map(|b| options.idempotent = b),
                _ => Err(unknown_option(&option, &key)),
            };
            errors.take(applied);
        }
        errors.finish()?;
        Ok(options)
    }
}

/// The error for an option this macro does not know, listing the ones it does.
fn unknown_option(option: &RawOption, key: &str) -> syn::Error {
    let accepted: Vec<String> = OPTIONS.iter().map(|o| format!("`{o}`")).collect();
    syn::Error::new_spanned(
        option,
        format!(
            "unknown option `{key}` for #[mpreg::register]; accepted options are {}",
            accepted.join(", ")
        ),
    )
}

/// The value of `key = value`, or an error explaining the expected form.
fn required_value<'a>(option: &'a RawOption, example: &str) -> syn::Result<&'a Expr> {
    match &option.value {
        Some((_, value)) => Ok(value),
        None => Err(syn::Error::new_spanned(
            &option.key,
            format!("`{}` needs a value: `{example}`", option.key),
        )),
    }
}

/// A string literal, or an error spanning whatever was written instead.
fn string_literal(expr: &Expr, example: &str) -> syn::Result<LitStr> {
    match expr {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Ok(s.clone()),
        other => Err(syn::Error::new_spanned(
            other,
            format!("expected a string literal, e.g. `{example}`"),
        )),
    }
}

/// `name = "..."`: a non-empty string literal.
fn name_option(option: &RawOption) -> syn::Result<LitStr> {
    let example = "name = \"train\"";
    let name = string_literal(required_value(option, example)?, example)?;
    if name.value().is_empty() {
        return Err(syn::Error::new_spanned(
            &name,
            "the function name must not be empty",
        ));
    }
    Ok(name)
}

/// `resources = ["a", "b"]`: an array of non-empty string literals. Every bad element is
/// reported, not just the first.
fn resources_option(option: &RawOption) -> syn::Result<Vec<LitStr>> {
    let example = "resources = [\"gpu\", \"dataset-1\"]";
    let value = required_value(option, example)?;
    let Expr::Array(ExprArray { elems, .. }) = value else {
        return Err(syn::Error::new_spanned(
            value,
            format!("expected an array of string literals, e.g. `{example}`"),
        ));
    };
    let mut errors = Errors::default();
    let mut resources = Vec::new();
    for elem in elems {
        let Some(resource) = errors.take(string_literal(elem, "\"gpu\"")) else {
            continue;
        };
        if resource.value().is_empty() {
            errors.push(syn::Error::new_spanned(
                &resource,
                "resource names must not be empty",
            ));
        }
        resources.push(resource);
    }
    errors.finish()?;
    Ok(resources)
}

/// `visibility = "node" | "host" | "network"`.
fn visibility_option(option: &RawOption) -> syn::Result<Visibility> {
    let example = "visibility = \"host\"";
    let lit = string_literal(required_value(option, example)?, example)?;
    let value = lit.value();
    Visibility::NAMES
        .iter()
        .find(|(name, _)| *name == value)
        .map(|(_, visibility)| *visibility)
        .ok_or_else(|| {
            syn::Error::new_spanned(
                &lit,
                format!(
                    "unknown visibility {value:?}; expected one of \"node\", \"host\" or \"network\""
                ),
            )
        })
}

/// A flag: `blocking` alone, or `blocking = true | false` (likewise `idempotent`).
fn flag_option(option: &RawOption, flag: &str) -> syn::Result<bool> {
    match &option.value {
        None => Ok(true),
        Some((
            _,
            Expr::Lit(ExprLit {
                lit: Lit::Bool(b), ..
            }),
        )) => Ok(b.value),
        Some((_, other)) => Err(syn::Error::new_spanned(
            other,
            format!("expected `true` or `false` (or write just `{flag}`)"),
        )),
    }
}

/// The annotated function, reduced to what the expansion needs.
pub struct FnModel {
    /// The function's identifier, possibly raw (`r#type`); the shim calls it by this.
    pub ident: Ident,
    /// `async`, if the function is async.
    pub asyncness: Option<Token![async]>,
    /// The parameters, in order.
    pub params: Vec<Param>,
    /// The span of the parenthesised parameter list, for errors about all arguments at once.
    pub params_span: Span,
    /// The span of the return type, or of the attribute if there is none, for errors about
    /// the returned value.
    pub output_span: Span,
    /// Whether the return type is a `Result` (see [`returns_result`]).
    pub returns_result: bool,
    /// The function's `#[cfg(...)]` attributes, repeated on the generated items so that they
    /// disappear together with the function.
    pub cfgs: Vec<Attribute>,
}

/// One parameter of the function.
pub struct Param {
    /// Its identifier (the name callers use for keyword arguments, once unraw'd).
    pub ident: Ident,
    /// Its type, with the user's spans, so that serde errors point at it.
    pub ty: Type,
}

impl FnModel {
    /// Checks that `item` is a supported function and models it. Returns `None` only when the
    /// item is not a function at all; other problems are recorded in `errors` and the model is
    /// still returned, so that checks needing it (like `blocking` on `async`) still run.
    pub fn from_item(item: Item, errors: &mut Errors) -> Option<FnModel> {
        let function = match item {
            Item::Fn(function) => function,
            other => {
                errors.push(not_a_function(&other));
                return None;
            }
        };
        let ItemFn { attrs, sig, .. } = function;
        check_signature_shape(&sig, errors);
        let params = sig
            .inputs
            .iter()
            .filter_map(|arg| param(arg, errors))
            .collect();
        check_return_type(&sig.output, errors);
        Some(FnModel {
            returns_result: returns_result(&sig.output),
            params_span: sig.paren_token.span.join(),
            output_span: match &sig.output {
                ReturnType::Type(_, ty) => ty.span(),
                ReturnType::Default => Span::call_site(),
            },
            ident: sig.ident,
            asyncness: sig.asyncness,
            params,
            cfgs: attrs
                .into_iter()
                .filter(|a| a.path().is_ident("cfg"))
                .collect(),
        })
    }
}

/// The error for an attribute placed on something other than a function. It points at the
/// attribute itself (call site), which is short and always where the mistake is.
fn not_a_function(item: &Item) -> syn::Error {
    let what = match item {
        Item::Struct(_) => "a struct",
        Item::Enum(_) => "an enum",
        Item::Union(_) => "a union",
        Item::Trait(_) | Item::TraitAlias(_) => "a trait",
        Item::Impl(_) => "an impl block",
        Item::Mod(_) => "a module",
        Item::Const(_) => "a const",
        Item::Static(_) => "a static",
        Item::Type(_) => "a type alias",
        Item::Use(_) => "a use declaration",
        Item::ForeignMod(_) => "an extern block",
        Item::Macro(_) => "a macro invocation",
        _ => "this item",
    };
    syn::Error::new(
        Span::call_site(),
        format!("#[mpreg::register] can only be applied to a free function, not {what}"),
    )
}

/// Checks the parts of a signature other than parameters and return type: qualifiers,
/// generics, variadics.
fn check_signature_shape(sig: &Signature, errors: &mut Errors) {
    if let Some(unsafety) = &sig.unsafety {
        errors.push(syn::Error::new_spanned(
            unsafety,
            "#[mpreg::register] cannot be used on an `unsafe fn`: remote callers cannot uphold \
             its safety requirements; register a safe function that wraps it",
        ));
    }
    if let Some(abi) = &sig.abi {
        errors.push(syn::Error::new_spanned(
            abi,
            format!(
                "#[mpreg::register] functions cannot declare an ABI (`{}`): register a plain \
                 Rust function that calls it",
                abi.to_token_stream()
            ),
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new_spanned(
            variadic,
            "#[mpreg::register] functions cannot be C-variadic: for a function over any number \
             of arguments, use `mpreg::Function::variadic`",
        ));
    }
    if !sig.generics.params.is_empty() {
        errors.push(syn::Error::new_spanned(
            &sig.generics,
            "#[mpreg::register] functions cannot be generic: each argument is decoded into one \
             concrete type; remove the generic parameters and use concrete owned types",
        ));
    }
    if let Some(where_clause) = &sig.generics.where_clause {
        errors.push(syn::Error::new_spanned(
            where_clause,
            "#[mpreg::register] functions cannot be generic: remove the `where` clause",
        ));
    }
}

/// Models one parameter, recording every problem with it; `None` if it cannot be modelled.
fn param(arg: &FnArg, errors: &mut Errors) -> Option<Param> {
    let typed = match arg {
        FnArg::Receiver(receiver) => {
            errors.push(syn::Error::new_spanned(
                receiver,
                "#[mpreg::register] cannot be used on methods: `self` parameters are not \
                 supported; register a free function (it may call the method)",
            ));
            return None;
        }
        FnArg::Typed(typed) => typed,
    };
    check_type(&typed.ty, Position::Param, errors);
    match &*typed.pat {
        // `mut x` is fine (it only affects the body), `ref x` and `x @ pat` are not plain names.
        Pat::Ident(p) if p.by_ref.is_none() && p.subpat.is_none() => Some(Param {
            ident: p.ident.clone(),
            ty: (*typed.ty).clone(),
        }),
        other => {
            errors.push(syn::Error::new_spanned(
                other,
                "#[mpreg::register] parameters must be plain identifiers (`name: Type` or \
                 `mut name: Type`): the identifier is the parameter's name for keyword \
                 arguments; destructure inside the function body instead",
            ));
            None
        }
    }
}

/// Checks the return type: owned, no `impl Trait`.
fn check_return_type(output: &ReturnType, errors: &mut Errors) {
    if let ReturnType::Type(_, ty) = output {
        check_type(ty, Position::Return, errors);
    }
}

/// Where a checked type appears; it changes the wording of the errors.
#[derive(Clone, Copy)]
enum Position {
    /// A parameter's type: decoded from the request.
    Param,
    /// The return type: encoded into the response.
    Return,
}

/// Records an error for each part of `ty` a registered function cannot use.
fn check_type(ty: &Type, position: Position, errors: &mut Errors) {
    for part in unsupported_parts(ty) {
        // A result may borrow from 'static data (`-> &'static str`, `Err("bad input")`):
        // it outlives the call, so encoding it afterwards is fine.
        if matches!(position, Position::Return) && is_static(&part) {
            continue;
        }
        errors.push(unsupported_error(&part, position));
    }
}

/// Whether an unsupported part only borrows `'static` data.
fn is_static(part: &Unsupported<'_>) -> bool {
    match part {
        Unsupported::Reference(r) => r.lifetime.as_ref().is_some_and(|l| l.ident == "static"),
        Unsupported::Lifetime(l) => l.ident == "static",
        _ => false,
    }
}

/// The error message for one unsupported part of a type.
fn unsupported_error(part: &Unsupported<'_>, position: Position) -> syn::Error {
    let subject = match position {
        Position::Param => {
            "#[mpreg::register] parameters must be owned types: arguments are decoded from each \
             request and cannot borrow from it"
        }
        Position::Return => {
            "#[mpreg::register] functions must return owned types: the result is encoded after \
             the call and cannot borrow (except from `'static` data)"
        }
    };
    match part {
        Unsupported::Reference(r) => {
            let written = render_type(&Type::Reference((*r).clone()));
            let fix = match owned_suggestion(r) {
                Some(owned) => format!("use `{owned}` instead of `{written}`"),
                None => format!("use an owned type instead of `{written}`"),
            };
            syn::Error::new_spanned(r, format!("{subject}; {fix}"))
        }
        Unsupported::Lifetime(l) => syn::Error::new_spanned(
            l,
            format!(
                "{subject}; `{l}` makes this type borrow: use an owned type without lifetimes \
                 (e.g. `String` instead of `Cow<{l}, str>`)"
            ),
        ),
        Unsupported::ImplTrait(i) => {
            let message = match position {
                Position::Param => {
                    "#[mpreg::register] parameters cannot be `impl Trait`: each argument is \
                     decoded into one concrete type; name an owned type instead"
                }
                Position::Return => {
                    "#[mpreg::register] functions cannot return `impl Trait`: name the concrete \
                     return type"
                }
            };
            syn::Error::new_spanned(i, message)
        }
        Unsupported::SelfType(p) => syn::Error::new_spanned(
            p,
            "#[mpreg::register] cannot be used on associated functions: `Self` only exists \
             inside an impl; register a free function (it may call this one)",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn options(tokens: TokenStream) -> syn::Result<Options> {
        syn::parse2(tokens)
    }

    fn messages(error: syn::Error) -> Vec<String> {
        error.into_iter().map(|e| e.to_string()).collect()
    }

    fn option_errors(tokens: TokenStream) -> Vec<String> {
        messages(options(tokens).err().expect("expected an error"))
    }

    #[test]
    fn defaults_without_options() {
        let o = options(quote!()).unwrap();
        assert!(o.name.is_none());
        assert!(o.resources.is_empty());
        assert_eq!(o.visibility, Visibility::Network);
        assert!(o.blocking.is_none());
    }

    #[test]
    fn parses_every_option_in_any_order() {
        let o = options(quote!(
            blocking,
            visibility = "host",
            resources = ["a", "b"],
            name = "x"
        ))
        .unwrap();
        assert_eq!(o.name.unwrap().value(), "x");
        let resources: Vec<String> = o.resources.iter().map(LitStr::value).collect();
        assert_eq!(resources, ["a", "b"]);
        assert_eq!(o.visibility, Visibility::Host);
        assert!(o.blocking.is_some());
    }

    #[test]
    fn accepts_trailing_comma_and_blocking_values() {
        assert!(options(quote!(blocking = true,))
            .unwrap()
            .blocking
            .is_some());
        assert!(options(quote!(blocking = false))
            .unwrap()
            .blocking
            .is_none());
        assert_eq!(
            options(quote!(visibility = "node")).unwrap().visibility,
            Visibility::Node
        );
        assert!(options(quote!(resources = []))
            .unwrap()
            .resources
            .is_empty());
    }

    #[test]
    fn unknown_option_lists_accepted_ones() {
        let errors = option_errors(quote!(nmae = "x"));
        assert_eq!(
            errors,
            [
                "unknown option `nmae` for #[mpreg::register]; accepted options are `name`, \
              `resources`, `visibility`, `blocking`, `idempotent`"
            ]
        );
        assert_eq!(option_errors(quote!(type = "x")).len(), 1);
    }

    #[test]
    fn bad_visibility_lists_accepted_values() {
        assert_eq!(
            option_errors(quote!(visibility = "public")),
            ["unknown visibility \"public\"; expected one of \"node\", \"host\" or \"network\""]
        );
    }

    #[test]
    fn duplicate_options_are_rejected() {
        assert_eq!(
            option_errors(quote!(name = "a", name = "b")),
            ["duplicate option `name`: each option may be given at most once"]
        );
    }

    #[test]
    fn every_bad_option_is_reported() {
        let errors = option_errors(quote!(
            name = 5,
            resources = "gpu",
            visibility = node,
            blocking = "yes",
            colour = "red"
        ));
        assert_eq!(errors.len(), 5, "{errors:#?}");
    }

    #[test]
    fn bad_resources_are_each_reported() {
        let errors = option_errors(quote!(resources = ["", 3, "ok"]));
        assert_eq!(errors.len(), 2, "{errors:#?}");
    }

    #[test]
    fn options_need_values() {
        assert_eq!(
            option_errors(quote!(name)),
            ["`name` needs a value: `name = \"train\"`"]
        );
    }

    fn registration(attr: TokenStream, item: TokenStream) -> syn::Result<Registration> {
        Registration::parse(attr, item)
    }

    fn registration_errors(attr: TokenStream, item: TokenStream) -> Vec<String> {
        messages(registration(attr, item).err().expect("expected an error"))
    }

    #[test]
    fn models_a_supported_function() {
        let r = registration(
            quote!(),
            quote!(
                pub async fn train(mut model: String, epochs: u32) -> Result<u32, String> {}
            ),
        )
        .unwrap();
        let f = r.function;
        assert_eq!(f.ident, "train");
        assert!(f.asyncness.is_some());
        assert!(f.returns_result);
        let names: Vec<String> = f.params.iter().map(|p| p.ident.to_string()).collect();
        assert_eq!(names, ["model", "epochs"]);
    }

    #[test]
    fn keeps_only_cfg_attributes() {
        let r = registration(
            quote!(),
            quote!(
                #[cfg(test)]
                #[inline]
                #[doc = "x"]
                fn f() {}
            ),
        )
        .unwrap();
        assert_eq!(r.function.cfgs.len(), 1);
    }

    #[test]
    fn reports_every_signature_problem_at_once() {
        let errors = registration_errors(
            quote!(bogus),
            quote!(
                unsafe extern "C" fn f<T>((a, b): (u8, u8), s: &str, t: impl Into<T>) -> &'a str
                where
                    T: Clone,
                {
                }
            ),
        );
        // unknown option, unsafe, abi, generics, where, pattern, &str, impl Trait, return &'a str
        assert_eq!(errors.len(), 9, "{errors:#?}");
    }

    #[test]
    fn static_references_may_be_returned() {
        assert!(registration(
            quote!(),
            quote!(
                fn f() -> Result<&'static str, &'static str> {
                    Ok("x")
                }
            )
        )
        .is_ok());
    }

    #[test]
    fn blocking_async_is_rejected_even_with_other_errors() {
        let errors = registration_errors(
            quote!(blocking),
            quote!(
                async fn f(s: &str) {}
            ),
        );
        assert_eq!(errors.len(), 2, "{errors:#?}");
        assert!(errors[1].starts_with("`blocking` cannot be used on an async fn"));
        assert!(registration(
            quote!(blocking = false),
            quote!(
                async fn f() {}
            )
        )
        .is_ok());
        assert!(registration(
            quote!(blocking),
            quote!(
                fn f() {}
            )
        )
        .is_ok());
    }

    #[test]
    fn receivers_and_non_functions_are_rejected() {
        let errors = registration_errors(
            quote!(),
            quote!(
                fn f(&self) {}
            ),
        );
        assert!(
            errors[0].contains("cannot be used on methods"),
            "{errors:#?}"
        );
        let errors = registration_errors(
            quote!(),
            quote!(
                struct S;
            ),
        );
        assert_eq!(
            errors,
            ["#[mpreg::register] can only be applied to a free function, not a struct"]
        );
    }

    #[test]
    fn borrowed_parameter_suggests_owned_type() {
        let errors = registration_errors(
            quote!(),
            quote!(
                fn f(s: &str) {}
            ),
        );
        assert_eq!(
            errors,
            [
                "#[mpreg::register] parameters must be owned types: arguments are decoded from \
              each request and cannot borrow from it; use `String` instead of `&str`"
            ]
        );
    }
}
