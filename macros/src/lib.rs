//! Procedural macros for [mpreg](https://docs.rs/mpreg). Use them through the `mpreg`
//! crate (`#[mpreg::register]`); this crate is an implementation detail and its expansions
//! only compile against the matching `mpreg` version.
//!
//! The crate is organised like tarpc's `plugins` crate:
//!
//! - `parse` turns the attribute's options and the annotated function into a
//!   validated model, accumulating every problem into one `syn::Error`;
//! - `types` holds the pure helpers over types that validation and expansion
//!   share (rendering, `Result` detection, finding borrowed parts);
//! - `expand` turns the model into tokens.

#![deny(missing_docs)]

use proc_macro::TokenStream;

mod expand;
mod on;
mod parse;
mod subscribe;
mod types;

/// Registers a free function so that every mpreg node in the process serves it by name.
///
/// ```ignore
/// #[mpreg::register]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// #[mpreg::register(name = "train", resources = ["gpu"], visibility = "host")]
/// async fn train_model(model: String, epochs: u32) -> Result<Vec<f32>, String> {
///     # todo!()
/// }
///
/// #[mpreg::register(blocking)]
/// fn checksum(data: Vec<u8>) -> u64 {
///     # todo!()
/// }
/// ```
///
/// # Options
///
/// Comma separated, in any order, each at most once:
///
/// - `name = "..."`: the name callers use. Default: the function's identifier, without `r#`
///   (`fn r#type` registers `type`).
/// - `resources = ["a", "b"]`: resources this node offers for the function; callers' `locs`
///   are matched against them. Default: none.
/// - `visibility = "node" | "host" | "network"`: who may call it. Default: `"network"`.
/// - `blocking` (or `blocking = true | false`): run each call on tokio's blocking thread
///   pool, for synchronous functions that take long or block. Not allowed on `async fn`.
/// - `idempotent` (or `idempotent = true | false`): running the function twice does no harm,
///   so a call whose node is lost mid-call is retried on another provider. Default: never
///   retried.
///
/// # Supported functions
///
/// Free functions, sync or `async`, whose parameters are plain identifiers (`name: Type` or
/// `mut name: Type`; the identifier is the keyword-argument name) and whose parameter and
/// return types are owned serde types: parameters must be `Deserialize`, the return value
/// `Serialize`, and an async function's future `Send`.
///
/// Rejected at compile time, each with an error on the offending tokens: generics and
/// `where` clauses, `self` receivers, references and lifetimes anywhere in a parameter or
/// return type (`&str`, `Vec<&str>`, `Cow<'a, str>`), `impl Trait`, `Self`, patterns other
/// than an identifier, `unsafe fn`, `extern` ABIs and C-variadic functions.
///
/// # Errors and `Result`
///
/// Whether the function returns a `Result` is decided from the syntax of its return type: if
/// it is a path whose last segment is `Result` (`Result<T, E>`, `std::io::Result<T>`,
/// `anyhow::Result<T>`, `mpreg::Result<T>`), `Ok(v)` is sent back as the value `v` and
/// `Err(e)` as a remote error carrying `e.to_string()` (so `E` must be `Display`). Any other
/// return type, or none (`()`), is sent back as the value itself. A macro cannot see through
/// type aliases: a `Result` alias under another name is sent back as a value (and must then
/// be `Serialize`), and a type of your own named `Result` is treated as one.
///
/// # Expansion
///
/// The function is emitted unchanged. Beside it, inside an anonymous `const _: () = { … };`,
/// the macro emits a shim that decodes the positional arguments into a tuple of the
/// parameter types and calls the function, and an `inventory` entry (name, parameter names
/// and types, resources, visibility, source location) that mpreg collects at startup. Any
/// `#[cfg(...)]` on the function is repeated on that block.
#[proc_macro_attribute]
pub fn register(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    let expanded = parse::Registration::parse(attr.into(), item.clone())
        .map(|registration| expand::registration(&registration, item.clone()));
    match expanded {
        Ok(tokens) => tokens.into(),
        Err(errors) => {
            // Keep the function itself so that its callers and body are still checked and
            // the only errors are ours, not a cascade of "cannot find function".
            let mut tokens = errors.into_compile_error();
            tokens.extend(item);
            tokens.into()
        }
    }
}

/// Runs a free function every time a MARO condition holds, on every node the process
/// starts, with the messages that satisfied it.
///
/// ```ignore
/// #[mpreg::on("worker:update:60%")]
/// async fn aggregate(messages: Vec<mpreg::Message>) { /* .. */ }
///
/// #[mpreg::on("master:stop:1 | *:abort:1")]
/// fn stop(node: &mpreg::Node, messages: Vec<mpreg::Message>) -> Result<(), String> { Ok(()) }
/// ```
///
/// The function is sync or `async`, takes `Vec<Message>` and optionally first the receiving
/// `Node` (owned or `&Node`), and returns `()` or a `Result<(), E: Display>` (an `Err` is
/// logged with the function's name). The condition's shape (three `:`-separated parts per
/// unit event, balanced parentheses) is checked at compile time; the full grammar when a node
/// starts, which then fails with an error naming the function and the bad part.
#[proc_macro_attribute]
pub fn on(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item2 = proc_macro2::TokenStream::from(item);
    match on::on(attr.into(), item2.clone()) {
        Ok(tokens) => tokens.into(),
        Err(errors) => {
            let mut tokens = errors.into_compile_error();
            tokens.extend(item2);
            tokens.into()
        }
    }
}

/// Subscribes a free function to a topic pattern on every mpreg node of the process that
/// listens (see `mpreg::subscribe` for the stream form).
///
/// ```ignore
/// #[mpreg::subscribe("sensors.*.temp")]
/// async fn on_temp(celsius: f64, meta: mpreg::PubMeta) {
///     println!("{} says {celsius}", meta.from);
/// }
///
/// #[mpreg::subscribe("jobs.**", group = "workers")]     // one member of the group gets each
/// fn on_job(job: String) -> Result<u32, String> { Ok(1) } // the answer to request_publish
/// ```
///
/// The first parameter receives the payload (any owned `Deserialize` type; a value published
/// in the same process as that very type is handed over without serialization); an optional
/// second parameter of type `mpreg::PubMeta` receives the topic and the sender. The pattern
/// is checked when the node starts, which fails with an error naming the function and the
/// bad segment. The function is called once per matching publication, one at a time in
/// arrival order; its return value answers a `request_publish` that chose it.
#[proc_macro_attribute]
pub fn subscribe(attr: TokenStream, item: TokenStream) -> TokenStream {
    let item = proc_macro2::TokenStream::from(item);
    match subscribe::parse(attr.into(), item.clone()) {
        Ok((args, function)) => subscribe::expand(&args, &function, item).into(),
        Err(errors) => {
            let mut tokens = errors.into_compile_error();
            tokens.extend(item);
            tokens.into()
        }
    }
}

/// Makes the methods of an `impl` block marked `#[on("condition")]` handlers of a value
/// with state (MARO's `dist` decorator): implements `mpreg::Handlers` for the type, so that
/// `node.attach(value)` runs them.
///
/// ```ignore
/// struct Aggregator { rounds: u32 }
///
/// #[mpreg::handlers]
/// impl Aggregator {
///     #[on("worker:update:60%")]
///     async fn aggregate(&mut self, messages: Vec<mpreg::Message>) { self.rounds += 1; }
/// }
/// ```
///
/// Handler methods take `&mut self` (or `&self`) and `Vec<Message>`, sync or `async`, and
/// return `()` or a `Result<(), E: Display>`. Other methods of the block are left alone.
#[proc_macro_attribute]
pub fn handlers(attr: TokenStream, item: TokenStream) -> TokenStream {
    on::handlers(attr.into(), item.into()).into()
}
