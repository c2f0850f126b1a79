//! A service (issue #16): a program that a node's service controller starts, whose own node
//! joins the cluster from the `MPREG_*` environment the controller gives it, and which
//! serves `hello_from_service`. Install it and drive it from anywhere:
//!
//! ```text
//! cargo build --example service_hello
//! mpreg install target/debug/examples/service_hello --name hello
//! mpreg serve &                      # on that host: its controller lists `hello`
//! mpreg services                     # from any host
//! mpreg start hello && mpreg call hello_from_service Ada
//! mpreg logs hello
//! mpreg stop hello
//! ```
//!
//! For the supervision tests: when `HELLO_CRASHES` names a file holding a number N > 0,
//! the process writes N - 1 there and exits with code 3 (a crash) once its node is up.

/// Greets `who` from this service, naming the service and its node.
#[mpreg::register]
fn hello_from_service(who: String) -> String {
    let service = mpreg::service_name().unwrap_or_else(|| "(not a service)".into());
    format!("hello {who}, from service `{service}`")
}

/// Whether this run should crash, counting the crash down in `HELLO_CRASHES`'s file.
fn crash_now() -> bool {
    let Some(file) = std::env::var_os("HELLO_CRASHES") else {
        return false;
    };
    let left: u32 = std::fs::read_to_string(&file)
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0);
    if left == 0 {
        return false;
    }
    let _ = std::fs::write(&file, (left - 1).to_string());
    true
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    let node = mpreg::Node::start(mpreg::Config::load()?).await?;
    let addr = node.addr().map(|a| a.to_string()).unwrap_or_default();
    println!(
        "service {} serving as node {} on {addr}",
        mpreg::service_name().unwrap_or_default(),
        node.name()
    );
    if crash_now() {
        eprintln!("crashing on purpose (HELLO_CRASHES)");
        std::process::exit(3);
    }
    mpreg::shutdown_signal().await;
    println!("stopping: saying goodbye to the cluster");
    node.shutdown().await;
    Ok(())
}
