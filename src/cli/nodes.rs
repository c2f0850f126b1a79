//! `mpreg nodes`: the live members of the cluster, as a table or JSON.

use clap::Args;

use super::NodeArgs;

/// Arguments of `mpreg nodes`.
#[derive(Debug, Args)]
pub struct NodesArgs {
    /// Print a JSON array instead of a table.
    #[arg(long)]
    json: bool,
    /// Every column (host, resources, publications, subscriptions, built-ins), however
    /// wide; the default table fits 100 columns.
    #[arg(long)]
    wide: bool,
    /// Only the membership view: do not ask each member for its counters (which waits up
    /// to 300 ms for a member that does not answer, e.g. one cut off but not yet suspected).
    #[arg(long)]
    no_stats: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Asks a discovered node (or `--seed`) for its view of the cluster.
pub async fn run(a: NodesArgs) -> mpreg::Result<()> {
    let node = mpreg::Node::start(a.node.client_config()?).await?;
    if let Err(e) = node.wait_for_cluster().await {
        node.shutdown().await;
        return Err(e);
    }
    let members = node.members();
    let stats = if a.no_stats || !(a.json || a.wide) {
        vec![None; members.len()]
    } else {
        stats(&node, &members).await
    };
    node.shutdown().await;
    if members.is_empty() {
        return Err(mpreg::Error::Incomplete(
            "a node answered but listed no member (it is a client, or shutting down)".into(),
        ));
    }
    if a.json {
        let rows: Vec<serde_json::Value> = members
            .iter()
            .zip(&stats)
            .map(|(m, s)| {
                let mut row = serde_json::to_value(m).unwrap_or_default();
                if !a.no_stats {
                    row["stats"] = serde_json::to_value(s).unwrap_or_default();
                }
                row
            })
            .collect();
        println!("{}", serde_json::Value::Array(rows));
        return Ok(());
    }
    if a.wide {
        wide_table(members, stats);
    } else {
        narrow_table(&members);
    }
    Ok(())
}

/// Fits `s` in `width` characters, marking a cut with `…`.
fn fit(s: &str, width: usize) -> String {
    if s.chars().count() <= width {
        return s.to_string();
    }
    let mut t: String = s.chars().take(width.saturating_sub(1)).collect();
    t.push('…');
    t
}

/// What a member offers in at most `width` characters: its own functions (as many as fit,
/// then how many more), then how many built-ins.
fn offers(m: &mpreg::MemberSummary, width: usize) -> String {
    let built = match m.builtins.len() {
        0 => String::new(),
        n if m.functions.is_empty() => format!("({n} built-ins)"),
        n => format!(" (+{n} built-ins)"),
    };
    let n = m.functions.len();
    let with = |k: usize| -> String {
        let more = if k < n {
            format!(" +{} more", n - k)
        } else {
            String::new()
        };
        format!("{}{more}{built}", m.functions[..k].join(","))
    };
    // The most functions that fit, at least one.
    let k = (1..=n).rev().find(|&k| with(k).chars().count() <= width);
    with(k.unwrap_or(n.min(1)))
}

/// Name, role, address, state and functions, within 100 columns.
fn narrow_table(members: &[mpreg::MemberSummary]) {
    println!(
        "{:<18} {:<10} {:<21} {:<7} functions",
        "name", "role", "address", "state"
    );
    for m in members {
        let line = format!(
            "{:<18} {:<10} {:<21} {:<7} {}",
            fit(&m.name, 18),
            fit(&m.role, 10),
            m.addr,
            m.state,
            offers(m, 100 - 60)
        );
        println!("{}", fit(&line, 100));
    }
}

/// Every column, however wide.
fn wide_table(members: Vec<mpreg::MemberSummary>, stats: Vec<Option<mpreg::NodeStats>>) {
    println!(
        "{:<20} {:<10} {:<20} {:<22} {:<8} {:<24} {:<16} {:<24} {:<24} built-ins",
        "name",
        "role",
        "host",
        "address",
        "state",
        "resources",
        "pub in/dropped",
        "subscriptions",
        "functions"
    );
    for (m, s) in members.into_iter().zip(stats) {
        let pubs = s.map_or("?".to_string(), |s| {
            format!("{}/{}", s.publications_received, s.publications_dropped)
        });
        println!(
            "{:<20} {:<10} {:<20} {:<22} {:<8} {:<24} {:<16} {:<24} {:<24} {}",
            m.name,
            m.role,
            m.host,
            m.addr,
            m.state,
            m.resources.join(","),
            pubs,
            m.subscriptions.join(","),
            m.functions.join(","),
            m.builtins.join(",")
        );
    }
}

/// How long `mpreg nodes` waits for a member's counters: a listing must stay quick even
/// when a member is unreachable.
const STATS_WAIT: std::time::Duration = std::time::Duration::from_millis(300);

/// Each alive member's counters, asked in parallel; `None` for a member that is suspected
/// (probably unreachable: not worth the wait) or did not answer within [`STATS_WAIT`].
async fn stats(
    node: &mpreg::Node,
    members: &[mpreg::MemberSummary],
) -> Vec<Option<mpreg::NodeStats>> {
    let asks = members.iter().map(|m| async move {
        if m.state != "alive" {
            return None;
        }
        let ask = node.stats_of(m.addr);
        tokio::time::timeout(STATS_WAIT, ask)
            .await
            .ok()
            .and_then(|r| r.ok())
    });
    futures_util::future::join_all(asks).await
}

#[cfg(test)]
mod tests {
    use super::offers;

    fn member(functions: usize, builtins: usize) -> mpreg::MemberSummary {
        mpreg::MemberSummary {
            name: "n".into(),
            id: 1,
            role: "node".into(),
            host: "h".into(),
            addr: "127.0.0.1:7700".parse().unwrap(),
            state: "alive".into(),
            resources: vec![],
            functions: (0..functions).map(|i| format!("function_{i:02}")).collect(),
            builtins: (0..builtins).map(|i| format!("_b{i}")).collect(),
            subscriptions: vec![],
        }
    }

    #[test]
    fn a_long_function_list_is_cut_with_a_count() {
        let s = offers(&member(30, 4), 60);
        assert_eq!(
            s,
            "function_00,function_01,function_02 +27 more (+4 built-ins)"
        );
        assert!(offers(&member(30, 4), 40).chars().count() <= 40);
        assert_eq!(offers(&member(2, 0), 40), "function_00,function_01");
        assert_eq!(offers(&member(0, 9), 40), "(9 built-ins)");
    }
}
