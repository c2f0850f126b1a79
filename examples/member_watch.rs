//! Watches the membership and prints one line per change, with the time it was seen in
//! milliseconds since the Unix epoch: `joined NAME MS` and `left NAME MS`. A member of the
//! cluster configured by `MPREG_*` variables; the LAN tests use it to time leaves.
//!
//! `MPREG_INTERFACES=lo MPREG_MDNS=0 cargo run --example member_watch`

use std::collections::BTreeSet;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

fn unix_ms() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis())
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    let node = mpreg::Node::start(mpreg::Config::load()?).await?;
    println!("watching as {}", node.name());
    let mut known = BTreeSet::new();
    let stop = mpreg::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let now: BTreeSet<String> = node.members().into_iter().map(|m| m.name).collect();
        let at = unix_ms();
        for n in now.difference(&known) {
            println!("joined {n} {at}");
        }
        for n in known.difference(&now) {
            println!("left {n} {at}");
        }
        known = now;
        // Polled: 2 ms is far below the leave budget being measured (200 ms).
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(2)) => {}
            _ = &mut stop => break,
        }
    }
    node.shutdown().await;
    Ok(())
}
