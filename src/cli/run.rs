//! `mpreg run FILE|-`: run an MPREG workflow cluster-side and print its result as JSON.

use std::io::Read;
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use mpreg::proto::json;
use mpreg::Error;

use super::NodeArgs;

/// Arguments of `mpreg run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Workflow file in MPREG's JSON form (`{"cmds": [...]}` or a bare array), `-` for stdin.
    file: PathBuf,
    /// Print every command's result, not only those no other command uses.
    #[arg(long)]
    all: bool,
    /// Seconds for the whole workflow.
    #[arg(long, default_value_t = 30.0)]
    timeout: f64,
    #[command(flatten)]
    node: NodeArgs,
}

fn read(file: &PathBuf) -> mpreg::Result<String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| Error::io("cannot read the workflow from stdin", e))?;
    } else {
        text = std::fs::read_to_string(file)
            .map_err(|e| Error::io(format!("cannot read {}", file.display()), e))?;
    }
    Ok(text)
}

/// Sends the workflow, in one message, to a member found by discovery (or `--seed`), which
/// runs it; prints `{"name": result, ..}`.
pub async fn run(a: RunArgs) -> mpreg::Result<()> {
    if !(a.timeout.is_finite() && a.timeout > 0.0) {
        return Err(Error::Usage(format!(
            "--timeout {}: must be a positive number of seconds",
            a.timeout
        )));
    }
    let text = read(&a.file)?;
    let node = mpreg::Node::start(a.node.client_config()?).await?;
    let result = node
        .workflow()
        .from_json(&text)
        .all(a.all)
        .timeout(Duration::from_secs_f64(a.timeout))
        .run()
        .await;
    node.shutdown().await;
    let map = result?;
    let obj: serde_json::Map<String, serde_json::Value> = map
        .iter()
        .map(|(k, v)| (k.clone(), json::to_json(v)))
        .collect();
    println!("{}", serde_json::Value::Object(obj));
    Ok(())
}
