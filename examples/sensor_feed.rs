//! Publishes sensor readings from a node with no address configured: start some
//! subscribers first, e.g. `mpreg sub 'sensors.*.temp'`, then run
//!
//! ```text
//! MPREG_INTERFACES=lo cargo run --example sensor_feed -- 12
//! ```
//!
//! `sensor_feed N [TOPIC..]` publishes N readings `{"i": i}` cycling over the topics
//! (default: `sensors.kitchen.temp sensors.kitchen.hum sensors.lab.temp other.x`), prints
//! `published N`, and shuts down gracefully, which flushes every queued publication.
//! Configured like every mpreg program by `MPREG_*` variables (seeds, interfaces, ...).

use serde_json::json;

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    mpreg::init_logging_with("warn");
    let mut args = std::env::args().skip(1);
    let n: u64 = match args.next().map(|a| a.parse()) {
        Some(Ok(n)) => n,
        _ => {
            return Err(mpreg::Error::Config(
                "usage: sensor_feed N [TOPIC..]".into(),
            ))
        }
    };
    let mut topics: Vec<String> = args.collect();
    if topics.is_empty() {
        topics = [
            "sensors.kitchen.temp",
            "sensors.kitchen.hum",
            "sensors.lab.temp",
            "other.x",
        ]
        .map(String::from)
        .to_vec();
    }
    let mut config = mpreg::Config::load()?;
    // A publisher needs no listener: it reaches the subscribers it learns of.
    config.listen = false;
    config.builtins = false;
    let node = mpreg::Node::start(config).await?;
    for i in 0..n {
        let topic = &topics[(i as usize) % topics.len()];
        node.publish(topic, &json!({ "i": i })).await?;
    }
    println!("published {n}");
    node.shutdown().await;
    Ok(())
}
