//! PLACEHOLDER of the `http` branch, dropped at merge: `crate::metrics::prometheus::render`
//! (the lead's) replaces it. Exactly its signature; a tiny valid exposition.

use crate::runtime::Shared;

/// The node's metrics in Prometheus text format 0.0.4 (placeholder: one gauge).
pub(crate) fn render(shared: &Shared) -> String {
    let name = shared.name.replace('\\', "\\\\").replace('"', "\\\"");
    format!(
        "# HELP mpreg_members Members of the cluster this node sees, by state.\n\
         # TYPE mpreg_members gauge\n\
         mpreg_members{{node=\"{name}\",state=\"alive\"}} {}\n",
        shared.directory.read().len() + 1
    )
}
