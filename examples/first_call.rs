//! A program that starts its own listening node with no seed and calls a function of the
//! cluster at once: discovery has to find the cluster before that very first call.
//!
//! ```text
//! mpreg serve &                                   # a provider of `echo`
//! cargo run --example first_call -- lo echo hi
//! ```
//!
//! `first_call INTERFACE FUN [ARG..]` builds `Node::builder()` with discovery on
//! INTERFACE only (and no built-ins, so that `echo` is not answered by itself), calls
//! `FUN(ARG..)` (each ARG a string) once, and prints
//! `{"result", "node", "elapsed_ms", "start_ms", "since_start_ms"}` (the call, the node's
//! start, both from the program's start), or the error on
//! stderr with a non-zero exit status.

use std::time::Instant;

#[tokio::main]
async fn main() {
    mpreg::init_logging_with("warn");
    // The error as users read it (Display), not `main`'s Debug dump.
    if let Err(e) = run().await {
        eprintln!("first_call: {e}");
        std::process::exit(1);
    }
}

async fn run() -> mpreg::Result<()> {
    let mut args = std::env::args().skip(1);
    let (Some(interface), Some(fun)) = (args.next(), args.next()) else {
        return Err(mpreg::Error::Config(
            "usage: first_call INTERFACE FUN [ARG..]".into(),
        ));
    };
    let call_args: Vec<String> = args.collect();
    let began = Instant::now();
    let node = mpreg::Node::builder()
        .interfaces([interface])
        .builtins(false)
        .start()
        .await?;
    let started = began.elapsed();
    let r = node
        .request(&fun)
        .args(call_args)
        .send::<serde_json::Value>()
        .await?;
    println!(
        "{}",
        serde_json::json!({
            "result": r.value,
            "node": r.node,
            "elapsed_ms": r.elapsed.as_secs_f64() * 1000.0,
            "start_ms": started.as_secs_f64() * 1000.0,
            "since_start_ms": began.elapsed().as_secs_f64() * 1000.0,
        })
    );
    node.shutdown().await;
    Ok(())
}
