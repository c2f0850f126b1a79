//! Pure helpers over `syn::Type`: rendering a type as text, recognising `Result` return types
//! and finding the parts of a type that a registered function cannot use.
//!
//! They take syntax only (no name resolution is possible in a proc macro), so every rule here
//! is about what the user wrote, not about what the type resolves to.

use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};
use quote::ToTokens;
use syn::punctuated::Punctuated;
use syn::{
    GenericArgument, Lifetime, Path, PathArguments, ReturnType, Token, Type, TypeImplTrait,
    TypeParamBound, TypeReference,
};

/// Renders a type compactly, the way rustc prints types in diagnostics: no spaces around
/// `<`, `>` and `::`, one space after `,` and `;`, spaces around `->`, `=` and `+`.
///
/// `quote`'s own `to_string()` puts a space between every token (`Vec < u32 >`), which reads
/// badly in signatures shown to callers (`FnEntry::params`) and in error messages.
pub fn render_type(ty: &Type) -> String {
    render_tokens(ty.to_token_stream())
}

/// Renders any token stream with the spacing rules of [`render_type`].
pub fn render_tokens(tokens: TokenStream) -> String {
    let pieces = pieces(tokens);
    let mut out = String::new();
    let mut prev: Option<&Piece> = None;
    for piece in &pieces {
        if let Some(prev) = prev {
            if needs_space(prev, piece) {
                out.push(' ');
            }
        }
        out.push_str(piece.text());
        prev = Some(piece);
    }
    out
}

/// One printable unit of a type, after multi-character tokens have been glued back together.
#[derive(Debug)]
enum Piece {
    /// An identifier, a literal or a lifetime (`'a`): words that need a space between them.
    Word(String),
    /// A punctuation token; `::` and `->` count as one.
    Punct(String),
    /// A delimited group, already rendered with its delimiters.
    Group(String),
}

impl Piece {
    /// The text to print for this piece.
    fn text(&self) -> &str {
        match self {
            Piece::Word(s) | Piece::Punct(s) | Piece::Group(s) => s,
        }
    }

    /// Whether this is the punctuation `p`.
    fn is_punct(&self, p: &str) -> bool {
        matches!(self, Piece::Punct(s) if s == p)
    }

    /// Whether this is a keyword that must stay separated from a following `(`, `[` or `::`
    /// (`dyn (A)`, `<T as ::x::Y>`); other words hug them (`Fn(u32)`, `std::x`).
    fn is_spaced_keyword(&self) -> bool {
        matches!(self, Piece::Word(s) if matches!(s.as_str(), "as" | "dyn" | "impl" | "const" | "mut"))
    }
}

/// Splits a token stream into [`Piece`]s. Token trees are single characters for punctuation,
/// so `::`, `->` and lifetimes are reassembled here; other joint punctuation (`>>`, `>,`) is
/// kept apart on purpose, since each `>` closes its own generic list.
fn pieces(tokens: TokenStream) -> Vec<Piece> {
    let mut out = Vec::new();
    let mut iter = tokens.into_iter().peekable();
    while let Some(tt) = iter.next() {
        match tt {
            TokenTree::Ident(i) => out.push(Piece::Word(i.to_string())),
            TokenTree::Literal(l) => out.push(Piece::Word(l.to_string())),
            TokenTree::Group(g) => {
                let inner = render_tokens(g.stream());
                match g.delimiter() {
                    Delimiter::Parenthesis => out.push(Piece::Group(format!("({inner})"))),
                    Delimiter::Bracket => out.push(Piece::Group(format!("[{inner}]"))),
                    Delimiter::Brace => out.push(Piece::Group(format!("{{ {inner} }}"))),
                    // Invisible groups come from `macro_rules!` fragments (`$t:ty`); they are
                    // transparent to the reader, so splice their contents in place.
                    Delimiter::None => out.extend(pieces(g.stream())),
                }
            }
            TokenTree::Punct(p) => {
                let c = p.as_char();
                let joint = p.spacing() == Spacing::Joint;
                let next = match iter.peek() {
                    Some(TokenTree::Punct(n)) if joint => Some(n.as_char()),
                    _ => None,
                };
                match (c, next) {
                    (':', Some(':')) | ('-', Some('>')) => {
                        iter.next();
                        let mut glued = String::from(c);
                        glued.push(if c == ':' { ':' } else { '>' });
                        out.push(Piece::Punct(glued));
                    }
                    ('\'', _) => {
                        // A lifetime is an apostrophe followed by an identifier.
                        let mut word = String::from('\'');
                        if let Some(TokenTree::Ident(i)) = iter.peek() {
                            word.push_str(&i.to_string());
                            iter.next();
                        }
                        out.push(Piece::Word(word));
                    }
                    _ => out.push(Piece::Punct(c.to_string())),
                }
            }
        }
    }
    out
}

/// Whether a space goes between two consecutive pieces. The rules are checked in order; the
/// first that applies wins.
fn needs_space(prev: &Piece, next: &Piece) -> bool {
    let spaced_ops = ["->", "=", "+"];
    if next.is_punct(",") || next.is_punct(";") {
        return false;
    }
    if prev.is_punct(",") || prev.is_punct(";") {
        return true;
    }
    if spaced_ops
        .iter()
        .any(|op| prev.is_punct(op) || next.is_punct(op))
    {
        return true;
    }
    if next.is_punct("::") || matches!(next, Piece::Group(_)) {
        return prev.is_spaced_keyword();
    }
    if ["::", "<", "&", "*", "?", "!"]
        .iter()
        .any(|op| prev.is_punct(op))
    {
        return false;
    }
    if next.is_punct("<") || next.is_punct(">") || next.is_punct("!") {
        return false;
    }
    // `<Vec<u8> as Trait>`: a word after a closing `>` is separate; `>>`, `>::` are not.
    if prev.is_punct(">") {
        return matches!(next, Piece::Word(_));
    }
    matches!(prev, Piece::Word(_) | Piece::Group(_)) && matches!(next, Piece::Word(_))
}

/// Strips the wrappers that do not change a type: parentheses and the invisible groups
/// `macro_rules!` puts around `$t:ty` fragments.
fn peel(ty: &Type) -> &Type {
    match ty {
        Type::Group(g) => peel(&g.elem),
        Type::Paren(p) => peel(&p.elem),
        other => other,
    }
}

/// Whether a return type is a `Result`, decided syntactically: the type is a path whose last
/// segment is named `Result` (`Result<T, E>`, `io::Result<T>`, `anyhow::Result<T>`, ...).
///
/// A proc macro cannot resolve type aliases, so an alias with another name is treated as a
/// plain value, and a user type that happens to be named `Result` must convert like one.
pub fn returns_result(output: &ReturnType) -> bool {
    match output {
        ReturnType::Default => false,
        ReturnType::Type(_, ty) => match peel(ty) {
            Type::Path(p) if p.qself.is_none() => {
                p.path.segments.last().is_some_and(|s| s.ident == "Result")
            }
            _ => false,
        },
    }
}

/// A part of a parameter or return type that a registered function cannot use.
pub enum Unsupported<'a> {
    /// `&T` or `&mut T`: arguments are decoded from a request buffer that does not outlive the
    /// call, and results are encoded after the call, so nothing may be borrowed.
    Reference(&'a TypeReference),
    /// A lifetime such as the `'a` in `Cow<'a, str>`: it means the type may borrow.
    Lifetime(&'a Lifetime),
    /// `impl Trait`: there is no single concrete type to decode into or name in the shim.
    ImplTrait(&'a TypeImplTrait),
    /// `Self`: it has no meaning outside an `impl`, and only free functions are supported.
    SelfType(&'a Path),
}

/// Every [`Unsupported`] part of `ty`, outermost first. A reference is reported once and not
/// searched further, so `&'a str` yields one problem rather than two.
pub fn unsupported_parts(ty: &Type) -> Vec<Unsupported<'_>> {
    let mut found = Vec::new();
    walk_type(ty, &mut found);
    found
}

/// Recursive worker of [`unsupported_parts`].
fn walk_type<'a>(ty: &'a Type, found: &mut Vec<Unsupported<'a>>) {
    match ty {
        Type::Reference(r) => found.push(Unsupported::Reference(r)),
        Type::ImplTrait(i) => found.push(Unsupported::ImplTrait(i)),
        Type::Array(a) => walk_type(&a.elem, found),
        Type::Group(g) => walk_type(&g.elem, found),
        Type::Paren(p) => walk_type(&p.elem, found),
        Type::Slice(s) => walk_type(&s.elem, found),
        Type::Ptr(p) => walk_type(&p.elem, found),
        Type::Tuple(t) => t.elems.iter().for_each(|e| walk_type(e, found)),
        Type::TraitObject(t) => walk_bounds(&t.bounds, found),
        Type::BareFn(f) => {
            f.inputs.iter().for_each(|a| walk_type(&a.ty, found));
            walk_return(&f.output, found);
        }
        Type::Path(p) => {
            if let Some(q) = &p.qself {
                walk_type(&q.ty, found);
            }
            walk_path(&p.path, found);
        }
        // `!`, `_`, type macros and unparsed tokens: nothing we can see into.
        _ => {}
    }
}

/// Walks a path's generic arguments (`Vec<&str>`, `Fn(&str) -> u8`) and flags `Self`.
fn walk_path<'a>(path: &'a Path, found: &mut Vec<Unsupported<'a>>) {
    if path.leading_colon.is_none() && path.segments.first().is_some_and(|s| s.ident == "Self") {
        found.push(Unsupported::SelfType(path));
    }
    for segment in &path.segments {
        match &segment.arguments {
            PathArguments::None => {}
            PathArguments::AngleBracketed(args) => {
                for arg in &args.args {
                    match arg {
                        GenericArgument::Lifetime(l) => found.push(Unsupported::Lifetime(l)),
                        GenericArgument::Type(t) => walk_type(t, found),
                        GenericArgument::AssocType(a) => walk_type(&a.ty, found),
                        GenericArgument::Constraint(c) => walk_bounds(&c.bounds, found),
                        _ => {}
                    }
                }
            }
            PathArguments::Parenthesized(args) => {
                args.inputs.iter().for_each(|t| walk_type(t, found));
                walk_return(&args.output, found);
            }
        }
    }
}

/// Walks trait bounds (`dyn Fn(&str) + 'a`).
fn walk_bounds<'a>(
    bounds: &'a Punctuated<TypeParamBound, Token![+]>,
    found: &mut Vec<Unsupported<'a>>,
) {
    for bound in bounds {
        match bound {
            TypeParamBound::Trait(t) => walk_path(&t.path, found),
            TypeParamBound::Lifetime(l) => found.push(Unsupported::Lifetime(l)),
            _ => {}
        }
    }
}

/// Walks the `-> T` of a function pointer or `Fn` bound.
fn walk_return<'a>(output: &'a ReturnType, found: &mut Vec<Unsupported<'a>>) {
    if let ReturnType::Type(_, ty) = output {
        walk_type(ty, found);
    }
}

/// The owned type to suggest instead of the reference `r`, when there is an obvious one:
/// `String` for `&str`, `Vec<T>` for `&[T]`, `PathBuf` for `&Path`, `T` for `&T`.
pub fn owned_suggestion(r: &TypeReference) -> Option<String> {
    let owned_of_unsized = [
        ("str", "String"),
        ("Path", "PathBuf"),
        ("OsStr", "OsString"),
        ("CStr", "CString"),
    ];
    match peel(&r.elem) {
        Type::Slice(s) => Some(format!("Vec<{}>", render_type(&s.elem))),
        Type::Path(p) if p.qself.is_none() => {
            let last = p.path.segments.last()?;
            let unsized_owner = owned_of_unsized
                .iter()
                .find(|(borrowed, _)| last.ident == borrowed && last.arguments.is_none());
            match unsized_owner {
                Some((_, owned)) => Some((*owned).to_string()),
                None => Some(render_type(&r.elem)),
            }
        }
        // `&dyn Trait`, `&impl Trait`: no owned equivalent to name.
        Type::TraitObject(_) | Type::ImplTrait(_) => None,
        other => Some(render_type(other)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use syn::parse_str;

    fn render(src: &str) -> String {
        render_type(&parse_str::<Type>(src).unwrap())
    }

    #[test]
    fn renders_common_types_compactly() {
        assert_eq!(render("u32"), "u32");
        assert_eq!(render("Vec<u32>"), "Vec<u32>");
        assert_eq!(render("Option<String>"), "Option<String>");
        assert_eq!(render("HashMap<String, i64>"), "HashMap<String, i64>");
        assert_eq!(render("Option<Vec<u32>>"), "Option<Vec<u32>>");
        assert_eq!(
            render("std::collections::BTreeMap<String, Vec<(u32, String)>>"),
            "std::collections::BTreeMap<String, Vec<(u32, String)>>"
        );
        assert_eq!(render("::std::string::String"), "::std::string::String");
    }

    #[test]
    fn normalises_whitespace_as_written() {
        assert_eq!(render("Vec < u32 >"), "Vec<u32>");
        assert_eq!(render("HashMap<String,i64>"), "HashMap<String, i64>");
        assert_eq!(render("std :: vec :: Vec<u8>"), "std::vec::Vec<u8>");
    }

    #[test]
    fn renders_tuples_arrays_and_unit() {
        assert_eq!(render("()"), "()");
        assert_eq!(render("(u32,)"), "(u32,)");
        assert_eq!(render("(u32, String)"), "(u32, String)");
        assert_eq!(render("[u8; 32]"), "[u8; 32]");
        assert_eq!(render("Vec<[u8; 4]>"), "Vec<[u8; 4]>");
    }

    #[test]
    fn renders_references_lifetimes_and_fns() {
        assert_eq!(render("&str"), "&str");
        assert_eq!(render("&'a str"), "&'a str");
        assert_eq!(render("&mut Vec<u8>"), "&mut Vec<u8>");
        assert_eq!(render("Cow<'static, str>"), "Cow<'static, str>");
        assert_eq!(render("fn(u32) -> u32"), "fn(u32) -> u32");
        assert_eq!(
            render("Box<dyn Fn(u32) -> u32 + Send + 'static>"),
            "Box<dyn Fn(u32) -> u32 + Send + 'static>"
        );
        assert_eq!(render("*const u8"), "*const u8");
        assert_eq!(
            render("<Vec<u8> as IntoIterator>::Item"),
            "<Vec<u8> as IntoIterator>::Item"
        );
        assert_eq!(render("<T as ::x::Y>::Z"), "<T as ::x::Y>::Z");
        assert_eq!(
            render("Box<dyn Iterator<Item = u8>>"),
            "Box<dyn Iterator<Item = u8>>"
        );
    }

    #[test]
    fn renders_invisible_groups_transparently() {
        let inner: Type = parse_str("Vec<u8>").unwrap();
        let group = proc_macro2::Group::new(Delimiter::None, inner.to_token_stream());
        let tokens: TokenStream = quote::quote!(Option<#group>);
        assert_eq!(render_tokens(tokens), "Option<Vec<u8>>");
    }

    fn result(src: &str) -> bool {
        let f: syn::ItemFn = parse_str(&format!("fn f() {src} {{}}")).unwrap();
        returns_result(&f.sig.output)
    }

    #[test]
    fn detects_result_by_last_segment() {
        assert!(result("-> Result<u32, String>"));
        assert!(result("-> std::io::Result<()>"));
        assert!(result("-> anyhow::Result<u32>"));
        assert!(result("-> ::mpreg::Result<u32>"));
        assert!(result("-> (Result<u32, String>)"));
    }

    #[test]
    fn plain_values_are_not_results() {
        assert!(!result(""));
        assert!(!result("-> ()"));
        assert!(!result("-> u32"));
        assert!(!result("-> Option<Result<u32, String>>"));
        assert!(!result("-> Vec<Result<u32, String>>"));
        assert!(!result("-> MyResult<u32>"));
        assert!(!result("-> (Result<u32, String>, u8)"));
    }

    fn problems(src: &str) -> Vec<String> {
        let ty: Type = parse_str(src).unwrap();
        unsupported_parts(&ty)
            .iter()
            .map(|p| match p {
                Unsupported::Reference(r) => {
                    format!("ref {}", render_type(&Type::Reference((*r).clone())))
                }
                Unsupported::Lifetime(l) => format!("lifetime {l}"),
                Unsupported::ImplTrait(_) => "impl".to_string(),
                Unsupported::SelfType(_) => "Self".to_string(),
            })
            .collect()
    }

    #[test]
    fn owned_types_have_no_problems() {
        for ty in [
            "String",
            "Vec<u32>",
            "HashMap<String, Vec<(u8, i64)>>",
            "[u8; 4]",
            "()",
            "Option<Box<Node>>",
        ] {
            assert!(problems(ty).is_empty(), "{ty}");
        }
    }

    #[test]
    fn finds_references_lifetimes_and_impl_trait_anywhere() {
        assert_eq!(problems("&str"), ["ref &str"]);
        assert_eq!(problems("&'a str"), ["ref &'a str"]);
        assert_eq!(problems("Vec<&str>"), ["ref &str"]);
        assert_eq!(problems("Cow<'a, str>"), ["lifetime 'a"]);
        assert_eq!(problems("(u32, Option<&mut [u8]>)"), ["ref &mut [u8]"]);
        assert_eq!(problems("impl Into<String>"), ["impl"]);
        assert_eq!(problems("Vec<impl Display>"), ["impl"]);
        assert_eq!(problems("Box<dyn Error + 'static>"), ["lifetime 'static"]);
        assert_eq!(problems("Self"), ["Self"]);
        assert_eq!(problems("Vec<Self>"), ["Self"]);
        assert_eq!(problems("Box<dyn Fn(&str)>"), ["ref &str"]);
    }

    fn suggestion(src: &str) -> Option<String> {
        match parse_str::<Type>(src).unwrap() {
            Type::Reference(r) => owned_suggestion(&r),
            _ => panic!("not a reference"),
        }
    }

    #[test]
    fn suggests_owned_counterparts() {
        assert_eq!(suggestion("&str").as_deref(), Some("String"));
        assert_eq!(suggestion("&'a str").as_deref(), Some("String"));
        assert_eq!(suggestion("&[u8]").as_deref(), Some("Vec<u8>"));
        assert_eq!(suggestion("&std::path::Path").as_deref(), Some("PathBuf"));
        assert_eq!(suggestion("&Vec<u8>").as_deref(), Some("Vec<u8>"));
        assert_eq!(suggestion("&mut Config").as_deref(), Some("Config"));
        assert_eq!(suggestion("&dyn Display"), None);
    }
}
