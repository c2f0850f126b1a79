//! `mpreg nodes`: the live members of the cluster, as a table or JSON.

use clap::Args;

use super::NodeArgs;

/// Arguments of `mpreg nodes`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Asks a discovered node (or `--seed`) for its view of the cluster.
pub async fn run(a: NodesArgs) -> mpreg::Result<()> {
    let node = mpreg::Node::start(a.node.client_config()?).await?;
    let members = node.members();
    let stats = stats(&node, &members).await;
    node.shutdown().await;
    if members.is_empty() {
        return Err(mpreg::Error::Config(
            "no node found: none answered discovery and no --seed was given or reachable".into(),
        ));
    }
    if a.json {
        let rows: Vec<serde_json::Value> = members
            .iter()
            .zip(&stats)
            .map(|(m, s)| {
                let mut row = serde_json::to_value(m).unwrap_or_default();
                row["stats"] = serde_json::to_value(s).unwrap_or_default();
                row
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<20} {:<22} {:<8} {:<24} {:<16} {:<24} functions",
        "name", "role", "host", "address", "state", "resources", "pub in/dropped", "subscriptions"
    );
    for (m, s) in members.into_iter().zip(stats) {
        let pubs = s.map_or("?".to_string(), |s| {
            format!("{}/{}", s.publications_received, s.publications_dropped)
        });
        let host: String = m.host.chars().take(20).collect();
        println!(
            "{:<20} {:<10} {:<20} {:<22} {:<8} {:<24} {:<16} {:<24} {}",
            m.name,
            m.role,
            host,
            m.addr,
            m.state,
            m.resources.join(","),
            pubs,
            m.subscriptions.join(","),
            m.functions.join(",")
        );
    }
    Ok(())
}

/// Each member's counters, asked in parallel; `None` for a member that did not answer.
async fn stats(
    node: &mpreg::Node,
    members: &[mpreg::MemberSummary],
) -> Vec<Option<mpreg::NodeStats>> {
    let asks = members.iter().map(|m| async move {
        let ask = node.stats_of(m.addr);
        tokio::time::timeout(std::time::Duration::from_secs(2), ask)
            .await
            .ok()
            .and_then(|r| r.ok())
    });
    futures_util::future::join_all(asks).await
}
