//! A small cluster on this machine, loopback only: two serving nodes and a client that find
//! each other with no address (UDP beacons on the loopback interface), calls by name with no
//! knowledge of who serves what, keyword arguments, an error from a function, a typo with a
//! suggestion, and a node that dies in the middle of a call.
//!
//! Run: `cargo run --example cluster_demo`

use std::net::{IpAddr, Ipv4Addr};
use std::time::Duration;

use mpreg::{Function, Node};

/// Every node of this process also serves this one (collected at link time).
#[mpreg::register]
fn whoami() -> String {
    "a node of the cluster_demo process".into()
}

fn loopback(name: &str, beacon_port: u16) -> mpreg::NodeBuilder {
    // Confined to 127.0.0.1 and the loopback interface, with a beacon port of this run only:
    // nothing leaves this machine and other runs do not mix in.
    Node::builder()
        .name(name)
        .bind(IpAddr::V4(Ipv4Addr::LOCALHOST))
        .port(0)
        .interfaces(["lo"])
        .mdns(false)
        .beacon_port(beacon_port)
}

/// A UDP port nobody uses right now, for this run's beacons.
fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(47_701)
}

async fn start_cluster() -> mpreg::Result<(Node, Node, Node)> {
    let port = free_udp_port();
    let trainer = loopback("trainer", port)
        .resources(["model-a", "dataset-1"])
        .function(
            Function::try_new_async("train", |(model, epochs): (String, u32)| async move {
                if epochs == 0 {
                    return Err(format!("cannot train `{model}` for zero epochs"));
                }
                tokio::time::sleep(Duration::from_millis(5 * u64::from(epochs))).await;
                Ok(format!(
                    "{model} trained for {epochs} epochs, accuracy 0.9{epochs}"
                ))
            })
            .params(["model: String", "epochs: u32"]),
        )
        .start()
        .await?;
    let sensor = loopback("sensor", port)
        .function(
            Function::new("temperature", |(room,): (String,)| match room.as_str() {
                "lab" => 21.5,
                _ => 19.0,
            })
            .params(["room: String"]),
        )
        .function(Function::new_async("slow_scan", |(): ()| async {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "never".to_string()
        }))
        .start()
        .await?;
    // Wait until the two members have found each other (a beacon round at most).
    let t0 = std::time::Instant::now();
    while trainer.members().is_empty() && t0.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // The client names no address: it probes, and calls whoever provides each function.
    let client = loopback("client", port)
        .builtins(false)
        .listen(false)
        .start()
        .await?;
    Ok((trainer, sensor, client))
}

#[tokio::main]
async fn main() -> mpreg::Result<()> {
    let (trainer, sensor, client) = start_cluster().await?;
    println!("cluster as the client found it (no address given):");
    for m in client.members() {
        println!(
            "  {:<8} {}  offers {}",
            m.name,
            m.addr,
            m.functions.join(", ")
        );
    }

    println!("\ncalls by name (the client never names a node):");
    let r = client
        .request("temperature")
        .args(("lab",))
        .send::<f64>()
        .await?;
    println!(
        "  temperature(\"lab\")        = {:<45} answered by {} in {:?}",
        r.value, r.node, r.elapsed
    );
    let r = client
        .request("train")
        .args(("resnet",))
        .kwargs(std::collections::HashMap::from([("epochs", 3)]))
        .send::<String>()
        .await?;
    println!(
        "  train(\"resnet\", epochs=3) = {:<45} answered by {} in {:?}",
        r.value, r.node, r.elapsed
    );
    let r = client
        .request("echo")
        .args(("hi",))
        .send::<String>()
        .await?;
    println!(
        "  echo(\"hi\")                = {:<45} answered by {} in {:?}",
        r.value, r.node, r.elapsed
    );
    let r = client.request("whoami").send::<String>().await?;
    println!(
        "  whoami()                  = {:<45} answered by {} (its own copy)",
        r.value, r.node
    );

    println!("\nerrors carry what went wrong:");
    let e = client
        .call::<String>("train", ("resnet", 0))
        .await
        .unwrap_err();
    println!("  train(\"resnet\", 0)  -> {e}");
    let e = client
        .call::<f64>("temprature", ("lab",))
        .await
        .unwrap_err();
    println!("  temprature(\"lab\")   -> {e}");
    let e = client.call::<f64>("temperature", (1, 2)).await.unwrap_err();
    println!("  temperature(1, 2)   -> {e}");

    println!("\nthe sensor node stops while a slow call is in flight:");
    let pending = tokio::spawn({
        let client = client.clone();
        async move { client.call::<String>("slow_scan", ()).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let t0 = std::time::Instant::now();
    sensor.shutdown().await;
    let e = pending.await.expect("task").unwrap_err();
    println!(
        "  slow_scan()         -> {e} (after {:?}, not at the 30 s deadline)",
        t0.elapsed()
    );

    client.shutdown().await;
    trainer.shutdown().await;
    println!("\ndone");
    Ok(())
}
