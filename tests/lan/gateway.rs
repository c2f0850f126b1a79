//! The gateway for other languages across hosts (issue #15): a gateway caller on another
//! host counts as another host (host- and node-visible functions refused, naming
//! visibility), a network gateway of a cluster with a secret needs a token (401 without
//! it), and the Python client on host 3 uses the cluster with no address: a call, a
//! workflow, publications from a Rust publisher on host 2, and a Python function that a
//! Rust program on host 2 calls.

use std::path::PathBuf;
use std::time::Duration;

use serde_json::{json, Value};

use crate::harness::{example, figure, python_module, show_output, Lan, LanProc, PORT};

/// The gateway port of the nodes here.
const HTTP_PORT: u16 = 7780;

/// Longest wait for a node or a script to get going.
const SETTLE: Duration = Duration::from_secs(30);

/// POSTs `argv[2]` to `argv[1]` (with bearer `argv[3]` if given) and prints
/// `{"status","body"}`; proxies off (the hosts are namespaces with no way out).
const POST: &str = r#"
import json, sys, urllib.request, urllib.error
url, body = sys.argv[1], sys.argv[2]
token = sys.argv[3] if len(sys.argv) > 3 else ""
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
req = urllib.request.Request(url, data=body.encode(), headers={"Content-Type": "application/json"})
if token:
    req.add_header("Authorization", "Bearer " + token)
try:
    with opener.open(req, timeout=10) as r:
        print(json.dumps({"status": r.status, "body": r.read().decode()}))
except urllib.error.HTTPError as e:
    print(json.dumps({"status": e.code, "body": e.read().decode()}))
"#;

/// `lab_node` named `name` on host `i` (`gpu_temp` host-visible, `calibrate` node-visible)
/// with its gateway on all of the host's addresses, plus `envs`.
fn lab_gateway(lan: &Lan, i: usize, name: &str, envs: &[(&str, &str)]) -> LanProc {
    let port = PORT.to_string();
    let http = format!("0.0.0.0:{HTTP_PORT}");
    let mut all = vec![
        ("MPREG_NAME", name),
        ("MPREG_PORT", port.as_str()),
        ("MPREG_HTTP_ADDR", http.as_str()),
    ];
    all.extend_from_slice(envs);
    let mut p = lan.spawn_program(i, &example("lab_node"), &[], &all);
    p.wait_for_line(&format!("serving {name} on "), SETTLE);
    p
}

/// A JSON-RPC request to `method` with no arguments, POSTed from host `from` to the gateway
/// at `at`: (HTTP status, body as JSON or null).
fn post(lan: &Lan, from: usize, at: &str, method: &str, token: Option<&str>) -> (u16, Value) {
    let url = format!("http://{at}/");
    let body = json!({"jsonrpc": "2.0", "method": method, "id": 1}).to_string();
    let mut args = vec!["-c", POST, &url, &body];
    if let Some(t) = token {
        args.push(t);
    }
    let out = lan.run_program(from, "python3", &args);
    assert!(out.status.success(), "POST failed\n{}", show_output(&out));
    let v: Value = serde_json::from_slice(&out.stdout).expect("the POST script prints JSON");
    let status = v["status"].as_u64().expect("a status") as u16;
    let body = serde_json::from_str(v["body"].as_str().unwrap_or("")).unwrap_or(Value::Null);
    (status, body)
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn gateway_callers_on_another_host_see_only_network_functions() {
    let Some(lan) = Lan::new(
        "gateway_callers_on_another_host_see_only_network_functions",
        3,
    ) else {
        return;
    };
    let _n1 = lab_gateway(&lan, 1, "lab1", &[]);
    let remote = format!("{}:{HTTP_PORT}", lan.addr(1));
    let local = format!("127.0.0.1:{HTTP_PORT}");

    // From host 3: network-visible works, host- and node-visible are refused.
    let (status, r) = post(&lan, 3, &remote, "echo", None);
    assert_eq!((status, r["error"].clone()), (200, Value::Null), "{r}");
    for fun in ["gpu_temp", "calibrate"] {
        let (status, r) = post(&lan, 3, &remote, fun, None);
        assert_eq!(status, 200);
        assert_eq!(r["error"]["code"], -32003, "{fun} from another host: {r}");
        let message = r["error"]["message"].as_str().unwrap_or_default();
        assert!(
            message.contains("visib"),
            "the refusal names visibility: {message}"
        );
        assert!(
            message.contains(&lan.addr(3).to_string()),
            "and the caller: {message}"
        );
    }
    // From host 1 itself over loopback: this host, not this node.
    let (_, r) = post(&lan, 1, &local, "gpu_temp", None);
    assert_eq!(r["result"], 41.5, "{r}");
    let (_, r) = post(&lan, 1, &local, "calibrate", None);
    assert_eq!(r["error"]["code"], -32003, "{r}");
    figure("gateway_other_host_refusals", 2);
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn a_network_gateway_of_a_cluster_with_a_secret_needs_a_token() {
    let Some(lan) = Lan::new(
        "a_network_gateway_of_a_cluster_with_a_secret_needs_a_token",
        3,
    ) else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("mpreg-lan-gw-token-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("secret");
    std::fs::write(&secret, "lan cluster secret").unwrap();
    let token = dir.join("token");
    std::fs::write(&token, "lan-token-42\n").unwrap();
    let secret_s = secret.to_string_lossy().into_owned();
    let token_s = token.to_string_lossy().into_owned();

    // Without a token the node refuses to open the gateway (and does not start).
    let port = PORT.to_string();
    let http = format!("0.0.0.0:{HTTP_PORT}");
    let mut refused = lan.spawn_program(
        1,
        &example("lab_node"),
        &[],
        &[
            ("MPREG_NAME", "open1"),
            ("MPREG_PORT", &port),
            ("MPREG_HTTP_ADDR", &http),
            ("MPREG_SECRET_FILE", &secret_s),
        ],
    );
    let status = refused.wait_exit(SETTLE);
    assert!(
        !status.success(),
        "a tokenless network gateway must not start"
    );
    assert!(
        refused.stderr().contains("--http-token-file"),
        "the error says what to do:\n{}",
        refused.logs()
    );

    let _n1 = lab_gateway(
        &lan,
        1,
        "tok1",
        &[
            ("MPREG_SECRET_FILE", &secret_s),
            ("MPREG_HTTP_TOKEN_FILE", &token_s),
        ],
    );
    let at = format!("{}:{HTTP_PORT}", lan.addr(1));
    assert_eq!(post(&lan, 3, &at, "echo", None).0, 401);
    assert_eq!(post(&lan, 3, &at, "echo", Some("guess")).0, 401);
    let (status, r) = post(&lan, 3, &at, "echo", Some("lan-token-42"));
    assert_eq!((status, r["error"].clone()), (200, Value::Null), "{r}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// The Python client's side of the LAN test, on host 3 with no address: it finds the
/// gateway by the beacon, calls, runs a workflow, takes three publications, then serves
/// `py_triple` until killed. Prints one line per step.
const PY_CLIENT: &str = r#"
import json, sys, time
import mpreg
c = mpreg.Client()
print("FOUND", c.url, flush=True)
assert c.call("echo", "hi") == "hi"
print("CALLED", flush=True)
r = c.workflow([
    {"name": "a", "fun": "echo", "args": [{"v": [1, 2]}]},
    {"name": "b", "fun": "echos", "args": ["a.v", 3]},
])
assert r == {"b": [[1, 2], 3]}, r
print("WORKFLOW", json.dumps(r), flush=True)
sub = c.subscribe("lan.*")
print("SUBSCRIBED", flush=True)
got = [sub.get(timeout=30).message for _ in range(3)]
print("GOT", json.dumps(got), flush=True)

@c.register
def py_triple(x):
    return 3 * x

c.offer()
print("SERVING", flush=True)
time.sleep(120)
"#;

/// The repository's `python/` directory: the Python client, importable as `mpreg`.
fn python_package() -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("python")
        .to_string_lossy()
        .into_owned()
}

/// `mpreg ARGS` on host `i`, repeated until `done(stdout)` or the deadline; the last stdout.
fn until(lan: &Lan, i: usize, args: &[&str], done: impl Fn(&str) -> bool) -> String {
    let start = std::time::Instant::now();
    loop {
        let out = lan.run(i, args, &[]);
        let text = String::from_utf8_lossy(&out.stdout).trim().to_string();
        if out.status.success() && done(&text) {
            return text;
        }
        assert!(
            start.elapsed() < SETTLE,
            "`mpreg {}` on host {i} never gave what was expected\n{}",
            args.join(" "),
            show_output(&out)
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
#[ignore = "needs root (network namespaces): sudo -E cargo test --test lan -- --ignored"]
fn python_client_on_another_host_uses_the_cluster_with_no_address() {
    let test = "python_client_on_another_host_uses_the_cluster_with_no_address";
    if !python_module(test, "websockets", "pip install ./python") {
        return;
    }
    let Some(lan) = Lan::new(test, 3) else {
        return;
    };
    let http = format!("0.0.0.0:{HTTP_PORT}");
    let _n1 = lan.serve(1, "gw1", &["--http", &http]);
    let py = python_package();
    let started = std::time::Instant::now();
    let mut script = lan.spawn_program(
        3,
        "python3",
        &["-u", "-c", PY_CLIENT],
        &[("PYTHONPATH", py.as_str())],
    );
    let found = script.wait_for_line("FOUND", SETTLE);
    assert!(
        found.contains(&format!("{}:{HTTP_PORT}", lan.addr(1))),
        "{found}"
    );
    script.wait_for_line("CALLED", SETTLE);
    figure("python_first_call_ms", started.elapsed().as_millis());
    script.wait_for_line("WORKFLOW", SETTLE);
    script.wait_for_line("SUBSCRIBED", SETTLE);

    // A Rust publisher on host 2; the first publication once the subscription is known.
    until(&lan, 2, &["pub", "lan.temp", "1", "--json"], |o| {
        o.contains("\"nodes\":1")
    });
    for v in ["2", "3"] {
        lan.run_ok(2, &["pub", "lan.temp", v], &[]);
    }
    let got = script.wait_for_line("GOT", SETTLE);
    assert!(got.ends_with("[1, 2, 3]"), "{got}");

    // A Rust program on host 2 calls the Python function by name.
    script.wait_for_line("SERVING", SETTLE);
    let out = until(&lan, 2, &["call", "py_triple", "14"], |o| !o.is_empty());
    assert_eq!(out, "42");
}
