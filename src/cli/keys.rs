//! `mpreg keys list|install|use|remove`: the cluster's keyring, changed through the cluster
//! itself (see `mpreg::keys`). The caller connects with its own key (`--secret-file`), which
//! must be one the members accept.

use std::path::Path;

use clap::{Args, Subcommand};

use super::NodeArgs;
use mpreg::keys::{self, Changes, ClusterKey};
use mpreg::proto::crypto::fingerprint;
use mpreg::proto::keyring::is_fingerprint;

/// Arguments of `mpreg keys`.
#[derive(Debug, Args)]
pub struct KeysArgs {
    #[command(subcommand)]
    action: Action,
}

#[derive(Debug, Subcommand)]
enum Action {
    /// Every key held in the cluster: its fingerprint (never the key), whether it is the
    /// primary, and the nodes holding it.
    List {
        /// Print a JSON array instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Install the key in FILE (its first line) on every member: accepted from now on, not
    /// yet used to encrypt.
    Install {
        /// File holding the new key.
        #[arg(value_name = "FILE")]
        file: std::path::PathBuf,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Make a key the primary on every member (install it everywhere first).
    Use {
        /// The key's fingerprint (as `keys list` shows it) or a file holding it.
        #[arg(value_name = "FINGERPRINT|FILE")]
        key: String,
        #[command(flatten)]
        node: NodeArgs,
    },
    /// Remove a key from every member (not the primary: `use` another one first).
    Remove {
        /// The key's fingerprint (as `keys list` shows it) or a file holding it.
        #[arg(value_name = "FINGERPRINT|FILE")]
        key: String,
        #[command(flatten)]
        node: NodeArgs,
    },
}

/// Runs `mpreg keys ACTION`.
pub async fn run(a: KeysArgs) -> mpreg::Result<()> {
    match a.action {
        Action::List { json, node } => list(&node, json).await,
        Action::Install { file, node } => {
            let key = read_key(&file)?;
            apply(&node, "installed", "already held", |n| async move {
                keys::install(&n, &key).await
            })
            .await
        }
        Action::Use { key, node } => {
            let fp = fingerprint_of(&key)?;
            apply(&node, "made primary", "already primary", |n| async move {
                keys::use_key(&n, &fp).await
            })
            .await
        }
        Action::Remove { key, node } => {
            let fp = fingerprint_of(&key)?;
            apply(&node, "removed", "not held", |n| async move {
                keys::remove(&n, &fp).await
            })
            .await
        }
    }
}

/// The first non-blank line of `file`, trailing whitespace removed (as secret files read).
fn read_key(file: &Path) -> mpreg::Result<Vec<u8>> {
    let bytes = std::fs::read(file)
        .map_err(|e| mpreg::Error::io(format!("cannot read key file {}", file.display()), e))?;
    bytes
        .split(|b| *b == b'\n')
        .map(|l| l.trim_ascii_end())
        .find(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .ok_or_else(|| mpreg::Error::Config(format!("key file {} is empty", file.display())))
}

fn fingerprint_of(key: &str) -> mpreg::Result<String> {
    if is_fingerprint(key) {
        return Ok(key.to_string());
    }
    Ok(fingerprint(&read_key(Path::new(key))?))
}

/// Runs `change` on every member and prints each one's answer; fails if any member failed.
async fn apply<F, Fut>(args: &NodeArgs, done: &str, nothing: &str, change: F) -> mpreg::Result<()>
where
    F: FnOnce(mpreg::Node) -> Fut,
    Fut: std::future::Future<Output = mpreg::Result<Changes>>,
{
    let node = args.joined_client().await?;
    let result = change(node.clone()).await;
    node.shutdown().await;
    let changes = result?;
    let mut failed = Vec::new();
    for (name, r) in &changes {
        match r {
            Ok(true) => println!("{name}: {done}"),
            Ok(false) => println!("{name}: {nothing}"),
            Err(e) => {
                println!("{name}: FAILED: {e}");
                failed.push(name.as_str());
            }
        }
    }
    if failed.is_empty() {
        return Ok(());
    }
    Err(mpreg::Error::Incomplete(format!(
        "{} of {} members did not take the change: {}",
        failed.len(),
        changes.len(),
        failed.join(", ")
    )))
}

async fn list(args: &NodeArgs, json: bool) -> mpreg::Result<()> {
    let node = args.joined_client().await?;
    let result = keys::list(&node).await;
    node.shutdown().await;
    let (listed, failed) = result?;
    for (name, e) in &failed {
        eprintln!("warning: {name} did not list its keys: {e}");
    }
    if json {
        println!("{}", serde_json::to_value(&listed).unwrap_or_default());
    } else {
        print!("{}", table(&listed));
    }
    Ok(())
}

/// `FINGERPRINT PRIMARY NODES`, one key a line; a key primary on some of its nodes only
/// (a rotation half done) says where.
fn table(keys: &[ClusterKey]) -> String {
    let mut out = format!("{:<18}{:<10}{}\n", "FINGERPRINT", "PRIMARY", "NODES");
    for k in keys {
        let primary = match (k.primary, k.primary_on.is_empty()) {
            (true, _) => "yes".to_string(),
            (false, true) => "no".to_string(),
            (false, false) => format!("on {}", k.primary_on.join(",")),
        };
        out.push_str(&format!(
            "{:<18}{:<10}{}\n",
            k.fingerprint,
            primary,
            k.nodes.join(", ")
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_names_nodes_and_a_half_done_rotation() {
        let k = |fp: &str, nodes: &[&str], on: &[&str]| ClusterKey {
            fingerprint: fp.into(),
            primary: on.len() == nodes.len(),
            nodes: nodes.iter().map(|s| s.to_string()).collect(),
            primary_on: on.iter().map(|s| s.to_string()).collect(),
        };
        let t = table(&[
            k("aaaaaaaaaaaaaaaa", &["n1", "n2"], &["n1", "n2"]),
            k("bbbbbbbbbbbbbbbb", &["n1", "n2"], &["n1"]),
            k("cccccccccccccccc", &["n2"], &[]),
        ]);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines[1], "aaaaaaaaaaaaaaaa  yes       n1, n2");
        assert_eq!(lines[2], "bbbbbbbbbbbbbbbb  on n1     n1, n2");
        assert_eq!(lines[3], "cccccccccccccccc  no        n2");
    }
}
