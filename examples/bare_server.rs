//! The smallest library server: one function and `mpreg::serve()`, with no logging set up.
//! It still says where it serves (`mpreg: serving NAME on ADDR` on stderr), since a server
//! nobody can find is no use.
//!
//! ```text
//! MPREG_NAME=bare cargo run --example bare_server
//! cargo run -- call double 21
//! ```

/// Doubles `x`.
#[mpreg::register]
fn double(x: i64) -> i64 {
    2 * x
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    // No `mpreg::init_logging()` here, on purpose: see the module docs.
    mpreg::serve().await
}
