//! Any standard mDNS browser sees mpreg nodes as ordinary DNS-SD services: python-zeroconf,
//! an implementation independent of ours, browses `_mpreg._tcp.local.` from another host.

use serde_json::Value;

use crate::harness::{python_module, show_output, Lan};

/// Browses for `want` services on the interface with address `argv[1]`, then prints them
/// as JSON: `{instance: {port, addresses, txt}}`.
const BROWSE: &str = r#"
import json, sys, time
from zeroconf import ServiceBrowser, ServiceListener, Zeroconf
zc = Zeroconf(interfaces=[sys.argv[1]])
found = {}
class Listener(ServiceListener):
    def add_service(self, zc, kind, name):
        info = zc.get_service_info(kind, name, timeout=3000)
        if info:
            txt = {k.decode(): (v.decode() if v is not None else "") for k, v in info.properties.items()}
            found[name] = {"port": info.port, "addresses": info.parsed_addresses(), "txt": txt}
    def update_service(self, *args): pass
    def remove_service(self, *args): pass
ServiceBrowser(zc, "_mpreg._tcp.local.", Listener())
deadline = time.time() + 10
while time.time() < deadline and len(found) < int(sys.argv[2]):
    time.sleep(0.05)
zc.close()
print(json.dumps(found))
"#;

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn standard_mdns_browser_sees_nodes() {
    if !python_module(
        "standard_mdns_browser_sees_nodes",
        "zeroconf",
        "pip install zeroconf",
    ) {
        return;
    }
    let Some(lan) = Lan::new("standard_mdns_browser_sees_nodes", 3) else {
        return;
    };
    let _n1 = lan.serve(1, "node1", &["--role", "worker"]);
    let _n2 = lan.serve(2, "node2", &[]);
    let me = lan.addr(3).to_string();
    let out = lan.run_program(3, "python3", &["-c", BROWSE, &me, "2"]);
    assert!(
        out.status.success(),
        "browser failed\n{}",
        show_output(&out)
    );
    let found: Value = serde_json::from_slice(&out.stdout).expect("browser prints JSON");
    let services = found.as_object().expect("an object");
    assert_eq!(services.len(), 2, "{found}");
    for (host, name) in [(1, "node1"), (2, "node2")] {
        let (instance, s) = services
            .iter()
            .find(|(_, s)| s["txt"]["name"] == name)
            .unwrap_or_else(|| panic!("{name} not seen: {found}"));
        assert!(instance.ends_with("._mpreg._tcp.local."), "{instance}");
        assert_eq!(s["port"], 7700, "{s}");
        let addrs: Vec<&str> = s["addresses"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(addrs.contains(&lan.addr(host).to_string().as_str()), "{s}");
        for key in ["id", "role", "host", "cluster", "cv"] {
            assert!(s["txt"].get(key).is_some(), "TXT lacks {key}: {s}");
        }
    }
    let worker = services
        .values()
        .find(|s| s["txt"]["name"] == "node1")
        .unwrap();
    assert_eq!(worker["txt"]["role"], "worker");
}
