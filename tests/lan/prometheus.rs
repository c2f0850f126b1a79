//! A real Prometheus server scrapes three `mpreg serve --http` nodes on the private LAN
//! (issue #13): after 1,000 calls of `echo`, PromQL through Prometheus's HTTP API gives a
//! positive served-call rate and a p99 latency from the `mpreg_call_duration_seconds`
//! histogram; `/health/ready` of a fourth node is 503 until it joins, then 200.
//!
//! Prometheus (Debian's `prometheus`, installed by `.ci/run`) runs inside host 1's
//! namespace and listens on that host's address only; its storage is a temporary folder.
//! HTTP requests go from inside the namespaces with python3's urllib (no proxy).

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::harness::{example, figure, show_output, wait_until, Lan, LanProc};

/// Where every node of the test serves `/metrics` and `/health/*`.
const HTTP_PORT: u16 = 9464;
/// Where Prometheus serves its API, on host 1's address.
const PROM_PORT: u16 = 9090;
/// Discovery off: nodes meet through `--seed`, so that the fourth one cannot find the
/// cluster before its seed is up.
const QUIET: [&str; 2] = ["--no-mdns", "--no-beacon"];
/// Calls driven through the cluster.
const CALLS: u64 = 1_000;

/// `GET argv[1]` (with `?query=argv[2]`, URL-encoded, if given), proxies ignored; prints the
/// status (0 when the connection failed) on the first line, then the body.
const GET: &str = r#"
import sys, urllib.request, urllib.error, urllib.parse
url = sys.argv[1]
if len(sys.argv) > 2:
    url += "?" + urllib.parse.urlencode({"query": sys.argv[2]})
opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
try:
    r = opener.open(url, timeout=5)
    code, body = r.status, r.read()
except urllib.error.HTTPError as e:
    code, body = e.code, e.read()
except Exception as e:
    code, body = 0, repr(e).encode()
sys.stdout.write("%d\n" % code)
sys.stdout.write(body.decode("utf-8", "replace"))
"#;

/// `GET url` from host `i`: (status, body).
fn http_get(lan: &Lan, i: usize, url: &str, query: Option<&str>) -> (u16, String) {
    let mut args = vec!["-c", GET, url];
    args.extend(query);
    let out = lan.run_program(i, "python3", &args);
    assert!(
        out.status.success(),
        "python3 GET {url}\n{}",
        show_output(&out)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (code, body) = text.split_once('\n').unwrap_or((&text, ""));
    let code = code
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("GET {url}: {text}"));
    (code, body.to_string())
}

/// The value of the instant PromQL `query`, asked from host 1: `None` while the result is
/// empty (no series yet); may be NaN.
fn promql(lan: &Lan, query: &str) -> Option<f64> {
    let url = format!("http://{}:{PROM_PORT}/api/v1/query", lan.addr(1));
    let (code, body) = http_get(lan, 1, &url, Some(query));
    assert_eq!(code, 200, "{query}: {body}");
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(v["status"], "success", "{query}: {body}");
    let first = v["data"]["result"].as_array()?.first()?.clone();
    let text = first["value"][1].as_str().expect("[time, \"value\"]");
    Some(text.parse().unwrap_or_else(|_| panic!("{query}: {text}")))
}

/// Polls `query` until its value satisfies `ok`; returns it. Panics with the last value.
fn await_promql(lan: &Lan, query: &str, limit: Duration, ok: impl Fn(f64) -> bool) -> f64 {
    let start = Instant::now();
    loop {
        let last = promql(lan, query);
        if let Some(v) = last.filter(|v| ok(*v)) {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "PromQL {query}: last value {last:?} after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Panics, saying why, unless Prometheus is installed (`.ci/run` installs it): the test is
/// `#[ignore]`d, so it runs only when asked for, and then a skip would be a pass.
fn require_prometheus() {
    match Command::new("prometheus").arg("--version").output() {
        Ok(o) if o.status.success() => {}
        Ok(o) => panic!("`prometheus --version` failed: {}", o.status),
        Err(e) => panic!("prometheus is not installed ({e}): Debian package `prometheus`"),
    }
}

/// A scrape configuration for the nodes of hosts 1 to 3 and a storage folder, removed on
/// drop.
struct PromDir(PathBuf);

impl PromDir {
    fn new(lan: &Lan) -> PromDir {
        let dir = std::env::temp_dir().join(format!("mpreg-prometheus-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("tsdb")).expect("create the Prometheus folder");
        let targets: Vec<String> = (1..=3)
            .map(|i| format!("'{}:{HTTP_PORT}'", lan.addr(i)))
            .collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mpreg\n    scrape_interval: 1s\n    \
             static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.join("prometheus.yml"), config).expect("write prometheus.yml");
        PromDir(dir)
    }

    /// Prometheus on host 1, listening on host 1's address only.
    fn start(&self, lan: &Lan) -> LanProc {
        let args = [
            format!("--config.file={}", self.0.join("prometheus.yml").display()),
            format!("--storage.tsdb.path={}", self.0.join("tsdb").display()),
            format!("--web.listen-address={}:{PROM_PORT}", lan.addr(1)),
            "--log.level=warn".to_string(),
        ];
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lan.spawn_program(1, "prometheus", &args, &[])
    }
}

impl Drop for PromDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
#[ignore = "needs root (network namespaces) and prometheus: sudo -E cargo test --test lan -- --ignored"]
fn prometheus_scrapes_three_nodes_and_health_follows_the_join() {
    require_prometheus();
    let Some(lan) = Lan::new("prometheus_scrapes_three_nodes", 4) else {
        return;
    };
    let http = |i: usize| format!("{}:{HTTP_PORT}", lan.addr(i));
    let url = |i: usize, path: &str| format!("http://{}{path}", http(i));

    // The fourth node first: its seed (host 1) is not up and its discovery wait is long,
    // so it is alive and not ready.
    let seed1 = lan.seed(1);
    let late_args = [QUIET[0], QUIET[1], "--seed", &seed1, "--http", &http(4)];
    let _late = lan.serve_with(
        4,
        "late",
        &late_args,
        &[("MPREG_DISCOVERY_WAIT_MS", "60000")],
    );
    assert_eq!(http_get(&lan, 4, &url(4, "/health/live"), None).0, 200);
    let (code, why) = http_get(&lan, 4, &url(4, "/health/ready"), None);
    assert_eq!(code, 503, "not ready before it joins: {why}");
    figure("prometheus_not_ready_reason", format!("{:?}", why.trim()));

    let _n1 = lan.serve(1, "n1", &[QUIET[0], QUIET[1], "--http", &http(1)]);
    let up = Instant::now();
    let _n2 = lan.serve(
        2,
        "n2",
        &[QUIET[0], QUIET[1], "--seed", &seed1, "--http", &http(2)],
    );
    let _n3 = lan.serve(
        3,
        "n3",
        &[QUIET[0], QUIET[1], "--seed", &seed1, "--http", &http(3)],
    );
    wait_until(Duration::from_secs(20), || {
        http_get(&lan, 4, &url(4, "/health/ready"), None).0 == 200
    });
    figure(
        "prometheus_late_node_ready_ms_after_its_seed",
        up.elapsed().as_millis(),
    );
    for i in 1..=3 {
        assert_eq!(
            http_get(&lan, 4, &url(i, "/health/ready"), None).0,
            200,
            "n{i}"
        );
    }

    let dir = PromDir::new(&lan);
    let mut prom = dir.start(&lan);
    let prom_ready = format!("http://{}:{PROM_PORT}/-/ready", lan.addr(1));
    wait_until(Duration::from_secs(30), || {
        assert!(!prom.has_exited(), "prometheus exited\n{}", prom.logs());
        http_get(&lan, 1, &prom_ready, None).0 == 200
    });
    // Every target scraped, and the served-calls series of `echo` known on each, so that
    // the calls below are an increase Prometheus sees.
    await_promql(
        &lan,
        "sum(up{job=\"mpreg\"})",
        Duration::from_secs(20),
        |v| v == 3.0,
    );
    await_promql(
        &lan,
        "count(mpreg_calls_served_total{function=\"echo\"})",
        Duration::from_secs(20),
        |v| v == 3.0,
    );

    let seeds = format!("{seed1},{}", lan.seed(2));
    // A low spill threshold sends the calls beyond host 2's own node to the other hosts,
    // so that the PromQL sums add up several nodes.
    let env = [
        ("MPREG_SEEDS", seeds.as_str()),
        ("MPREG_MDNS", "0"),
        ("MPREG_BEACON", "0"),
        ("MPREG_SPILL_AT", "2"),
    ];
    let calls = CALLS.to_string();
    let mut client = lan.spawn_program(2, &example("echo_calls"), &[&calls, "8", "3"], &env);
    assert!(
        client.wait_exit(Duration::from_secs(60)).success(),
        "{}",
        client.logs()
    );
    let summary: Value = serde_json::from_str(client.stdout().trim())
        .unwrap_or_else(|e| panic!("{e}\n{}", client.logs()));
    assert_eq!(summary["ok"].as_u64(), Some(CALLS), "{summary}");
    figure("prometheus_echo_calls_elapsed_ms", &summary["elapsed_ms"]);
    figure("prometheus_echo_calls_by_node", &summary["by_node"]);

    // The late node serves `echo` too but is not scraped: Prometheus counts the calls that
    // hosts 1 to 3 answered, exactly.
    let scraped: u64 = ["n1", "n2", "n3"]
        .iter()
        .map(|n| summary["by_node"][n].as_u64().unwrap_or(0))
        .sum();
    let served = await_promql(
        &lan,
        "sum(mpreg_calls_served_total{function=\"echo\"})",
        Duration::from_secs(20),
        |v| v == scraped as f64,
    );
    figure("prometheus_echo_served_total", served);
    // Asked once every node's last count is in, so that the rate covers all the calls.
    let rate = await_promql(
        &lan,
        "sum(rate(mpreg_calls_served_total{function=\"echo\"}[1m]))",
        Duration::from_secs(20),
        |v| v > 0.0,
    );
    figure("prometheus_echo_served_rate_per_s", format!("{rate:.3}"));
    let p99 = await_promql(
        &lan,
        "histogram_quantile(0.99, sum by (le) (rate(mpreg_call_duration_seconds_bucket\
         {function=\"echo\",side=\"served\"}[1m])))",
        Duration::from_secs(20),
        f64::is_finite,
    );
    assert!(p99 > 0.0, "a served call takes some time: p99 {p99}");
    figure(
        "prometheus_echo_served_p99_ms",
        format!("{:.3}", p99 * 1000.0),
    );
    assert!(!prom.has_exited(), "prometheus exited\n{}", prom.logs());
}
