//! Node configuration: flags > `MPREG_*` environment > `mpreg.toml` > defaults (DESIGN §11).
//!
//! [`Config::load`] applies the file and the environment on top of the defaults; the CLI
//! then applies its flags. Library users may also build a [`Config`] by hand or use
//! [`NodeBuilder`](crate::NodeBuilder).

use crate::proto::keyring::Keyring;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::proto::codec::{DEFAULT_MAX_FRAME, MIN_MAX_FRAME};

/// Port `mpreg serve` listens on when none is given, and the port a CLI client tries on
/// 127.0.0.1 when it is given no seed.
pub const DEFAULT_PORT: u16 = 7700;

/// Default UDP port of the discovery beacon, shared by every node of a host
/// (`SO_REUSEPORT`).
pub const DEFAULT_BEACON_PORT: u16 = 7701;

/// Default mDNS port (the standard one). Tests use another to stay isolated.
pub const DEFAULT_MDNS_PORT: u16 = 5353;

/// Default number of calls a node serves at once for one connection before answering
/// "busy". Large enough for heavy pipelining; bounded so one client cannot queue without end.
pub const DEFAULT_MAX_IN_FLIGHT: usize = 4096;

/// Default per-call deadline (MPREG's 30 s).
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a node needs to start. Field docs name the environment variable that sets it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Node name, unique among live members (`MPREG_NAME`); default `{role}-{short id}`.
    pub name: Option<String>,
    /// Role, MARO's component type (`MPREG_ROLE`); default `node`.
    pub role: String,
    /// Host identity for host scope (`MPREG_HOST`); default `/etc/machine-id`, else the
    /// hostname. Network namespaces share the machine id, so test harnesses set it.
    pub host: Option<String>,
    /// Resources this node offers (`MPREG_RESOURCES`, comma separated).
    pub resources: Vec<String>,
    /// `host:port` of nodes to connect to at start (`MPREG_SEEDS`, comma separated).
    pub seeds: Vec<String>,
    /// Interfaces for discovery (`MPREG_INTERFACES`): names or addresses. Empty means every
    /// up, multicast-capable, non-loopback IPv4 interface plus loopback.
    pub interfaces: Vec<String>,
    /// Advertise and browse with mDNS (`MPREG_MDNS`, `0`/`false` to disable).
    pub mdns: bool,
    /// mDNS UDP port (`MPREG_MDNS_PORT`).
    pub mdns_port: u16,
    /// Send and answer UDP broadcast beacons (`MPREG_BEACON`, `0`/`false` to disable).
    pub beacon: bool,
    /// Beacon UDP port (`MPREG_BEACON_PORT`), shared by all nodes of a host.
    pub beacon_port: u16,
    /// Cluster id (`MPREG_CLUSTER`); nodes of different clusters refuse each other.
    pub cluster: String,
    /// File holding the shared secret, or several, one per line, the primary first
    /// (`MPREG_SECRET_FILE`). Without one the node trusts
    /// its network and says so once in the log (see [`Config::trust_warning`]).
    pub secret_file: Option<PathBuf>,
    /// TCP port to listen on (`MPREG_PORT`); 0 picks a free port.
    pub port: u16,
    /// Address to listen on (`MPREG_BIND`); default all IPv4 interfaces.
    pub bind: IpAddr,
    /// Whether to listen at all. Pure clients (the CLI's `call`) do not.
    pub listen: bool,
    /// Largest frame body accepted, in bytes; larger frames close the connection.
    pub max_frame: usize,
    /// Calls served at once per connection before new ones are answered "busy".
    pub max_in_flight: usize,
    /// Default deadline of a call in milliseconds (`MPREG_CALL_TIMEOUT_MS`).
    pub call_timeout_ms: u64,
    /// Whether to register the built-ins `echo` and `echos`.
    pub builtins: bool,
    /// Default choice among providers (`MPREG_POLICY`: `least_loaded`, `random`,
    /// `round_robin`).
    pub policy: crate::proto::resolve::Policy,
    /// Calls in flight with one provider at which it counts as saturated and the resolver
    /// spills to the next tier (`MPREG_SPILL_AT`).
    pub spill_at: usize,
    /// Publications queued per subscriber before the oldest is dropped and counted, or —
    /// for a lossless subscriber — before its publishers are held back (`MPREG_SUB_QUEUE`).
    pub sub_queue: usize,
    /// How long a node or client that has found no peer yet waits for discovery before a
    /// call fails with [`Error::NoCluster`](crate::Error::NoCluster), counted from start
    /// (`MPREG_DISCOVERY_WAIT_MS`; `mpreg call --timeout` shortens it).
    pub discovery_wait_ms: u64,
    /// Address of the node's HTTP listener (`MPREG_HTTP_ADDR`, `--http`; 7780 is the
    /// conventional port): Prometheus `/metrics`, `/health/live`, `/health/ready` and the
    /// gateway for other languages (WebSocket and JSON-RPC on `/`). None (the default)
    /// opens no HTTP port. Needs the `http` cargo feature (on by default).
    pub http_addr: Option<SocketAddr>,
    /// File holding the bearer token gateway clients must send (`MPREG_HTTP_TOKEN_FILE`,
    /// `--http-token-file`). Required for a gateway bound to a non-loopback address of a
    /// cluster with a secret.
    pub http_token_file: Option<PathBuf>,
    /// Count calls, latencies, workflows and publications by name for `_metrics`,
    /// `mpreg top` and `/metrics` (`MPREG_METRICS`, `0`/`false` to disable). Membership
    /// and traffic counters are kept either way.
    pub metrics: bool,
    /// Run a service controller: list this host's installed services and start and stop
    /// them on request (`MPREG_SERVICES`; on for `mpreg serve` unless `--no-services`, off
    /// for library nodes and clients). Listening nodes only.
    pub services: bool,
    /// Services folders searched after the user's and `./services`
    /// (`MPREG_SERVICES_DIRS`, comma separated; `mpreg serve --services-dir`).
    pub services_dirs: Vec<PathBuf>,
    /// Let callers on other hosts start and stop services here although the cluster has no
    /// shared secret (`MPREG_ALLOW_REMOTE_SERVICES`, `--allow-remote-services`). With a
    /// secret, members may always.
    pub allow_remote_services: bool,
    /// Whether a listening node without a shared secret warns, once per process, that it
    /// trusts every peer on its network (default yes). A program turns it off for a node
    /// that listens only to receive what it asked for and exits soon, like `mpreg sub`: an
    /// operator should see the warning from the servers they run, not from every client
    /// command. Not read from `mpreg.toml` or the environment, since it is the program's
    /// decision, not the operator's.
    #[serde(skip)]
    pub trust_warning: bool,
}

/// Default [`Config::discovery_wait_ms`]: long enough for a beacon answer and an mDNS
/// answer on a busy LAN, short enough that "no cluster" is said quickly.
pub const DEFAULT_DISCOVERY_WAIT: Duration = Duration::from_millis(1500);

/// Default [`Config::sub_queue`].
pub const DEFAULT_SUB_QUEUE: usize = 4096;

/// Default [`Config::spill_at`].
pub const DEFAULT_SPILL_AT: usize = 64;

impl Default for Config {
    fn default() -> Self {
        Config {
            name: None,
            role: crate::proto::member::DEFAULT_ROLE.into(),
            host: None,
            resources: Vec::new(),
            seeds: Vec::new(),
            interfaces: Vec::new(),
            mdns: true,
            mdns_port: DEFAULT_MDNS_PORT,
            beacon: true,
            beacon_port: DEFAULT_BEACON_PORT,
            cluster: "default".into(),
            secret_file: None,
            port: 0,
            bind: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            listen: true,
            max_frame: DEFAULT_MAX_FRAME,
            max_in_flight: DEFAULT_MAX_IN_FLIGHT,
            call_timeout_ms: DEFAULT_CALL_TIMEOUT.as_millis() as u64,
            builtins: true,
            policy: crate::proto::resolve::Policy::LeastLoaded,
            spill_at: DEFAULT_SPILL_AT,
            sub_queue: DEFAULT_SUB_QUEUE,
            discovery_wait_ms: DEFAULT_DISCOVERY_WAIT.as_millis() as u64,
            http_addr: None,
            http_token_file: None,
            metrics: true,
            services: false,
            services_dirs: Vec::new(),
            allow_remote_services: false,
            trust_warning: true,
        }
    }
}

impl Config {
    /// Defaults, then `mpreg.toml` (the file named by `MPREG_CONFIG`, else `./mpreg.toml` if
    /// it exists), then `MPREG_*` variables.
    pub fn load() -> Result<Self> {
        let mut cfg = match std::env::var_os("MPREG_CONFIG") {
            Some(path) => Self::from_file(Path::new(&path))?,
            None if Path::new("mpreg.toml").exists() => Self::from_file(Path::new("mpreg.toml"))?,
            None => Config::default(),
        };
        cfg.apply_env(|k| std::env::var(k).ok())?;
        Ok(cfg)
    }

    /// Reads a TOML file; unknown keys are errors naming the key.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| Error::io(format!("cannot read config file {}", path.display()), e))?;
        toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))
    }

    /// Applies `MPREG_*` variables read through `get` (injectable for tests).
    pub fn apply_env(&mut self, get: impl Fn(&str) -> Option<String>) -> Result<()> {
        let list = |s: String| -> Vec<String> {
            s.split(',')
                .map(str::trim)
                .filter(|x| !x.is_empty())
                .map(String::from)
                .collect()
        };
        if let Some(v) = get("MPREG_NAME") {
            self.name = Some(v);
        }
        if let Some(v) = get("MPREG_ROLE") {
            self.role = v;
        }
        if let Some(v) = get("MPREG_HOST") {
            self.host = Some(v);
        }
        if let Some(v) = get("MPREG_RESOURCES") {
            self.resources = list(v);
        }
        if let Some(v) = get("MPREG_SEEDS") {
            self.seeds = list(v);
        }
        if let Some(v) = get("MPREG_INTERFACES") {
            self.interfaces = list(v);
        }
        if let Some(v) = get("MPREG_MDNS") {
            self.mdns = parse_bool("MPREG_MDNS", &v)?;
        }
        if let Some(v) = get("MPREG_METRICS") {
            self.metrics = parse_bool("MPREG_METRICS", &v)?;
        }
        if let Some(v) = get("MPREG_MDNS_PORT") {
            self.mdns_port = parse_var("MPREG_MDNS_PORT", &v)?;
        }
        if let Some(v) = get("MPREG_BEACON") {
            self.beacon = parse_bool("MPREG_BEACON", &v)?;
        }
        if let Some(v) = get("MPREG_BEACON_PORT") {
            self.beacon_port = parse_var("MPREG_BEACON_PORT", &v)?;
        }
        if let Some(v) = get("MPREG_CLUSTER") {
            self.cluster = v;
        }
        if let Some(v) = get("MPREG_SECRET_FILE") {
            self.secret_file = Some(PathBuf::from(v));
        }
        if let Some(v) = get("MPREG_PORT") {
            self.port = parse_var("MPREG_PORT", &v)?;
        }
        if let Some(v) = get("MPREG_BIND") {
            self.bind = parse_var("MPREG_BIND", &v)?;
        }
        if let Some(v) = get("MPREG_CALL_TIMEOUT_MS") {
            self.call_timeout_ms = parse_var("MPREG_CALL_TIMEOUT_MS", &v)?;
        }
        if let Some(v) = get("MPREG_POLICY") {
            self.policy = v
                .parse()
                .map_err(|e| Error::Config(format!("MPREG_POLICY: {e}")))?;
        }
        if let Some(v) = get("MPREG_SPILL_AT") {
            self.spill_at = parse_var("MPREG_SPILL_AT", &v)?;
        }
        if let Some(v) = get("MPREG_SUB_QUEUE") {
            self.sub_queue = parse_var("MPREG_SUB_QUEUE", &v)?;
        }
        if let Some(v) = get("MPREG_DISCOVERY_WAIT_MS") {
            self.discovery_wait_ms = parse_var("MPREG_DISCOVERY_WAIT_MS", &v)?;
        }
        if let Some(v) = get("MPREG_HTTP_ADDR") {
            // Empty turns it off, so a script can override a file's `http_addr`.
            self.http_addr = match v.trim() {
                "" => None,
                _ => Some(parse_var("MPREG_HTTP_ADDR", &v)?),
            };
        }
        if let Some(v) = get("MPREG_SERVICES") {
            self.services = parse_bool("MPREG_SERVICES", &v)?;
        }
        if let Some(v) = get("MPREG_SERVICES_DIRS") {
            self.services_dirs = list(v).into_iter().map(PathBuf::from).collect();
        }
        if let Some(v) = get("MPREG_ALLOW_REMOTE_SERVICES") {
            self.allow_remote_services = parse_bool("MPREG_ALLOW_REMOTE_SERVICES", &v)?;
        }
        if let Some(v) = get("MPREG_HTTP_TOKEN_FILE") {
            self.http_token_file = (!v.trim().is_empty()).then(|| PathBuf::from(v.trim()));
        }
        Ok(())
    }

    /// [`Config::discovery_wait_ms`] as a duration.
    pub fn discovery_wait(&self) -> Duration {
        Duration::from_millis(self.discovery_wait_ms)
    }

    /// The default call deadline as a duration.
    pub fn call_timeout(&self) -> Duration {
        Duration::from_millis(self.call_timeout_ms)
    }

    /// Reads the shared secrets, if configured: one per line, the first the primary (the key
    /// everything is encrypted with; the others are accepted too, see `mpreg keys`).
    /// Trailing whitespace is ignored and blank lines skipped; a file with no key is an
    /// error (an empty secret would authenticate anybody).
    pub fn keyring(&self) -> Result<Option<Keyring>> {
        let Some(path) = &self.secret_file else {
            return Ok(None);
        };
        let bytes = std::fs::read(path)
            .map_err(|e| Error::io(format!("cannot read secret file {}", path.display()), e))?;
        let keys: Vec<Vec<u8>> = bytes
            .split(|b| *b == b'\n')
            .map(|l| l.trim_ascii_end().to_vec())
            .filter(|l| !l.is_empty())
            .collect();
        Keyring::new(keys)
            .map(Some)
            .map_err(|_| Error::Config(format!("secret file {} is empty", path.display())))
    }

    /// Checks values that parse but make no sense.
    pub fn validate(&self) -> Result<()> {
        if self.cluster.is_empty() {
            return Err(Error::Config("cluster id must not be empty".into()));
        }
        if self.role.is_empty() {
            return Err(Error::Config("role must not be empty".into()));
        }
        if self.max_in_flight == 0 || self.max_frame < MIN_MAX_FRAME {
            return Err(Error::Config(format!(
                "max_in_flight must be at least 1 and max_frame at least {MIN_MAX_FRAME}"
            )));
        }
        if self.sub_queue == 0 {
            return Err(Error::Config(
                "sub_queue must be at least 1 (publications queued per subscriber)".into(),
            ));
        }
        if self.spill_at == 0 {
            return Err(Error::Config(
                "spill_at must be at least 1 (calls in flight before a provider counts as saturated)"
                    .into(),
            ));
        }
        if let Some(addr) = self.http_addr {
            if !cfg!(feature = "http") {
                return Err(Error::Config(format!(
                    "HTTP address {addr} requested (--http, MPREG_HTTP_ADDR or http_addr), \
                     but this mpreg was built without the `http` feature"
                )));
            }
        }
        Ok(())
    }
}

fn parse_bool(name: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "1" | "true" | "yes" | "on" => Ok(true),
        "0" | "false" | "no" | "off" => Ok(false),
        _ => Err(Error::Config(format!(
            "{name}={v:?}: expected 1/0, true/false, yes/no or on/off"
        ))),
    }
}

fn parse_var<T: std::str::FromStr>(name: &str, v: &str) -> Result<T>
where
    T::Err: std::fmt::Display,
{
    v.trim()
        .parse()
        .map_err(|e| Error::Config(format!("{name}={v:?}: {e}")))
}

/// This host's identity: `MPREG_HOST`/config, else `/etc/machine-id`, else the hostname.
pub fn host_id(configured: Option<&str>) -> String {
    if let Some(h) = configured.filter(|h| !h.is_empty()) {
        return h.to_string();
    }
    for path in [
        "/etc/machine-id",
        "/var/lib/dbus/machine-id",
        "/proc/sys/kernel/hostname",
        "/etc/hostname",
    ] {
        if let Ok(s) = std::fs::read_to_string(path) {
            let s = s.trim();
            if !s.is_empty() {
                return s.to_string();
            }
        }
    }
    "unknown-host".into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_overrides_and_names_bad_values() {
        let mut c = Config::default();
        let env = |k: &str| match k {
            "MPREG_SEEDS" => Some("a:1, b:2".to_string()),
            "MPREG_PORT" => Some("99".to_string()),
            _ => None,
        };
        c.apply_env(env).unwrap();
        assert_eq!(c.seeds, vec!["a:1", "b:2"]);
        assert_eq!(c.port, 99);
        let err = c
            .apply_env(|k| (k == "MPREG_PORT").then(|| "x".to_string()))
            .unwrap_err();
        assert!(err.to_string().contains("MPREG_PORT=\"x\""), "{err}");
    }

    #[test]
    fn toml_unknown_keys_are_named() {
        let err = toml::from_str::<Config>("prot = 3").unwrap_err();
        assert!(err.to_string().contains("prot"), "{err}");
        let c: Config = toml::from_str("port = 3\nresources = [\"gpu\"]").unwrap();
        assert_eq!((c.port, c.resources), (3, vec!["gpu".to_string()]));
    }

    #[test]
    fn http_addr_from_file_and_env() {
        let c: Config = toml::from_str("http_addr = \"127.0.0.1:9464\"").unwrap();
        assert_eq!(c.http_addr, Some("127.0.0.1:9464".parse().unwrap()));
        let mut c = Config::default();
        assert_eq!(c.http_addr, None, "off by default");
        c.apply_env(|k| (k == "MPREG_HTTP_ADDR").then(|| "10.0.0.1:80".to_string()))
            .unwrap();
        assert_eq!(c.http_addr, Some("10.0.0.1:80".parse().unwrap()));
        let err = c
            .apply_env(|k| (k == "MPREG_HTTP_ADDR").then(|| "9464".to_string()))
            .unwrap_err();
        assert!(
            err.to_string().contains("MPREG_HTTP_ADDR=\"9464\""),
            "{err}"
        );
        c.apply_env(|k| (k == "MPREG_HTTP_ADDR").then(String::new))
            .unwrap();
        assert_eq!(c.http_addr, None, "empty turns it off");
    }

    #[test]
    fn http_addr_needs_the_http_feature() {
        let c = Config {
            http_addr: Some("127.0.0.1:9464".parse().unwrap()),
            ..Config::default()
        };
        let r = c.validate();
        if cfg!(feature = "http") {
            assert!(r.is_ok(), "{r:?}");
        } else {
            let err = r.unwrap_err().to_string();
            assert!(err.contains("built without the `http` feature"), "{err}");
        }
    }
}
