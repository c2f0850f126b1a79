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
    node.shutdown().await;
    if members.is_empty() {
        return Err(mpreg::Error::Config(
            "no node found: none answered discovery and no --seed was given or reachable".into(),
        ));
    }
    if a.json {
        let out =
            serde_json::to_string(&members).map_err(|e| mpreg::Error::Config(e.to_string()))?;
        println!("{out}");
        return Ok(());
    }
    println!(
        "{:<20} {:<10} {:<20} {:<22} {:<8} {:<24} functions",
        "name", "role", "host", "address", "state", "resources"
    );
    for m in members {
        let host: String = m.host.chars().take(20).collect();
        println!(
            "{:<20} {:<10} {:<20} {:<22} {:<8} {:<24} {}",
            m.name,
            m.role,
            host,
            m.addr,
            m.state,
            m.resources.join(","),
            m.functions.join(",")
        );
    }
    Ok(())
}
