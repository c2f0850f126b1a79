//! A lab machine's node: `gpu_temp` may be called only from this machine, `calibrate` only
//! from this very process, `work(ms)` anywhere (a job that takes `ms` milliseconds); each
//! command-line argument registers one more network-visible function of that name,
//! answering the node's name.
//!
//! Configured by `MPREG_*` variables (name, port, seeds, discovery...). Used by the LAN tests
//! of host and node visibility, of forwarding and of failover:
//! `MPREG_NAME=lab1 MPREG_INTERFACES=lo MPREG_MDNS=0 cargo run --example lab_node -- extra_fn`

/// The GPU's temperature: meaningful only to processes on this machine.
#[mpreg::register(visibility = "host")]
fn gpu_temp() -> f64 {
    41.5
}

/// Calibrates this process's instruments: nobody else may trigger it.
#[mpreg::register(visibility = "node")]
fn calibrate() -> String {
    "calibrated".into()
}

/// A job taking `ms` milliseconds (at most a minute); answers `ms`. Long enough that a
/// client keeping many calls in flight always has some running on every provider.
#[mpreg::register]
async fn work(ms: u64) -> u64 {
    tokio::time::sleep(std::time::Duration::from_millis(ms.min(60_000))).await;
    ms
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging();
    let node = mpreg::Node::start(mpreg::Config::load()?).await?;
    let me = node.name().to_string();
    for extra in std::env::args().skip(1) {
        let name = me.clone();
        node.register(&extra, move |(): ()| name.clone())?;
    }
    // Node visibility admits this process itself.
    let check: String = node.call("calibrate", ()).await?;
    let addr = node.addr().map(|a| a.to_string()).unwrap_or_default();
    println!("serving {me} on {addr} ({check})");
    mpreg::shutdown_signal().await;
    node.shutdown().await;
    Ok(())
}
