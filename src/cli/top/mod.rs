//! `mpreg top`: the whole cluster live, from a client node that polls every member's
//! `_metrics` (gathering in `poll`, figures in `model`, drawing in `view`, the live screen in
//! `app`); `--once` prints one snapshot, as JSON with `--json`.

mod app;
mod model;
mod poll;
mod view;

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use clap::Args;

use super::NodeArgs;
use model::Session;
use poll::Poller;

/// Shortest refresh interval: faster polling would load the cluster it watches.
const MIN_INTERVAL: Duration = Duration::from_millis(250);
/// Longest refresh interval: slower is no longer "live".
const MAX_INTERVAL: Duration = Duration::from_secs(5);

/// Arguments of `mpreg top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    /// Refresh interval, from 250ms to 5s: `500ms`, `1s`, `0.75s` (a bare number is seconds).
    #[arg(long, default_value = "500ms", value_parser = parse_interval)]
    interval: Duration,
    /// Print one snapshot and exit (two polls one interval apart, for the rates).
    #[arg(long)]
    once: bool,
    /// With --once: print the snapshot as JSON.
    #[arg(long, requires = "once")]
    json: bool,
    #[command(flatten)]
    node: NodeArgs,
}

/// Parses `--interval`: a number with `ms` or `s`, or bare seconds, within the bounds.
fn parse_interval(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    let (num, scale) = if let Some(n) = t.strip_suffix("ms") {
        (n, 1e-3)
    } else if let Some(n) = t.strip_suffix('s') {
        (n, 1.0)
    } else {
        (t, 1.0)
    };
    let secs = num
        .trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v >= 0.0)
        .map(|v| v * scale)
        .ok_or_else(|| format!("`{s}` is not a duration (e.g. 500ms, 1s, 0.75)"))?;
    let d = Duration::from_secs_f64(secs);
    if d < MIN_INTERVAL || d > MAX_INTERVAL {
        return Err(format!("{s} is outside 250ms..5s"));
    }
    Ok(d)
}

/// Whether `top` will draw the live screen (which must keep logs off the terminal).
pub fn is_live(a: &TopArgs) -> bool {
    !a.once
}

/// Watches the cluster until `q`, or prints one snapshot with `--once`.
pub async fn run(a: TopArgs) -> mpreg::Result<()> {
    // How `top` was invoked, not how mpreg is configured: a usage error.
    if !a.once && !std::io::stdout().is_terminal() {
        return Err(mpreg::Error::Usage(
            "mpreg top needs a terminal; for scripts use `mpreg top --once --json`".into(),
        ));
    }
    let started = Instant::now();
    let node = mpreg::Node::start(a.node.client_config()?).await?;
    let cluster = node.config().cluster.clone();
    let poller = Poller::new(node, started, a.interval);
    if a.once {
        once(poller, &cluster, a.interval, a.json, started).await
    } else {
        app::run(poller, &cluster, a.interval, started).await
    }
}

/// Two polls one interval apart, printed as the screen's text or as JSON.
async fn once(
    mut poller: Poller,
    cluster: &str,
    interval: Duration,
    json: bool,
    started: Instant,
) -> mpreg::Result<()> {
    // Finding nobody is `NoCluster`, as for `mpreg nodes` and `mpreg call`; waiting for
    // the cluster first also keeps the first poll from running before discovery answered.
    if let Err(e) = poller.node().wait_for_cluster().await {
        poller.node().shutdown().await;
        return Err(e);
    }
    let mut session = Session::default();
    session.update(poller.poll().await);
    tokio::time::sleep(interval).await;
    session.update(poller.poll().await);
    poller.node().shutdown().await;
    if session.members() == 0 {
        return Err(mpreg::Error::Incomplete(
            "a node answered but listed no member (it is a client, or shutting down)".into(),
        ));
    }
    let tables = session.sorted();
    if json {
        let doc = serde_json::json!({
            "cluster": cluster,
            "nodes": tables.nodes,
            "functions": tables.functions,
            "events": session.events().iter().collect::<Vec<_>>(),
        });
        println!("{doc}");
        return Ok(());
    }
    let screen = view::Screen {
        cluster,
        interval,
        uptime: started.elapsed(),
        tables: &tables,
        events: session.events(),
        sort: session.sort,
        status: None,
    };
    let width = match std::io::stdout().is_terminal() {
        true => ratatui::crossterm::terminal::size().map_or(100, |(w, _)| w),
        false => 100,
    };
    print!("{}", view::text(&screen, width));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_interval_takes_units_and_stays_in_bounds() {
        assert_eq!(parse_interval("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_interval("1s"), Ok(Duration::from_secs(1)));
        assert_eq!(parse_interval("0.75"), Ok(Duration::from_millis(750)));
        assert_eq!(parse_interval("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(
            parse_interval("100ms").unwrap_err(),
            "100ms is outside 250ms..5s"
        );
        assert!(parse_interval("6s").is_err());
        assert!(parse_interval("fast")
            .unwrap_err()
            .contains("not a duration"));
        assert!(parse_interval("-1s").is_err());
        assert!(parse_interval("nan").is_err());
    }
}
