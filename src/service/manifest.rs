//! `service.toml`: what a service runs and how it is supervised (issue #16, labc's
//! services). Every field but `command` is optional; unknown fields are errors naming the
//! file, line and column, so a typo never turns silently into a default.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

/// The manifest's file name inside a service folder.
pub const FILE_NAME: &str = "service.toml";

/// Longest a stopping service is given after SIGTERM unless its manifest says otherwise.
pub const DEFAULT_STOP_TIMEOUT: Duration = Duration::from_secs(10);

/// Longest `start` waits for a service to be ready unless its manifest says otherwise.
pub const DEFAULT_START_TIMEOUT: Duration = Duration::from_secs(30);

/// When a started service counts as running.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Ready {
    /// When its node has joined the cluster (the default: a program using mpreg, whose
    /// node gets the `MPREG_*` environment).
    #[default]
    Joined,
    /// As soon as its process runs (a program without its own mpreg node, e.g. a script
    /// using the gateway or none at all).
    Started,
}

/// What to do when a service's process ends on its own.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(tag = "policy", rename_all = "kebab-case", deny_unknown_fields)]
pub enum Restart {
    /// Leave it stopped (the default).
    #[default]
    Never,
    /// Start it again after a non-zero exit or a signal, waiting `backoff_ms` (doubling,
    /// at most a minute) between attempts, at most `max_restarts` times in a row.
    OnFailure {
        /// Restarts before giving up (the service is then `failed`).
        #[serde(default = "default_max_restarts")]
        max_restarts: u32,
        /// First wait before a restart, in milliseconds.
        #[serde(default = "default_backoff_ms")]
        backoff_ms: u64,
    },
}

fn default_max_restarts() -> u32 {
    5
}

fn default_backoff_ms() -> u64 {
    500
}

/// A service's manifest, as written in `service.toml`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The service's name; defaults to its folder's (or file's) name.
    #[serde(default)]
    pub name: Option<String>,
    /// The program: a path relative to the service's folder when it names a file there,
    /// an absolute path, or a program found on `PATH`.
    pub command: String,
    /// Its arguments.
    #[serde(default)]
    pub args: Vec<String>,
    /// Environment variables set for it (on top of the node's `MPREG_*` ones).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// Its working directory, relative to the service's folder; the folder by default.
    #[serde(default)]
    pub working_dir: Option<PathBuf>,
    /// One line for listings.
    #[serde(default)]
    pub description: String,
    /// Resources its node brings (`MPREG_RESOURCES`).
    #[serde(default)]
    pub resources: Vec<String>,
    /// What to do when it ends on its own: `restart = { policy = "on-failure" }`.
    #[serde(default)]
    pub restart: Restart,
    /// Seconds between SIGTERM and SIGKILL when stopping it.
    #[serde(default)]
    pub stop_timeout: Option<f64>,
    /// When `start` counts it as running: `"joined"` (its node is a live member, the
    /// default) or `"started"` (its process runs).
    #[serde(default)]
    pub ready: Ready,
    /// Seconds `start` waits for it to be ready before stopping it and failing.
    #[serde(default)]
    pub start_timeout: Option<f64>,
    /// A file (relative to the service's folder) its output is also appended to, besides
    /// the node's in-memory ring of its last lines.
    #[serde(default)]
    pub log_file: Option<PathBuf>,
}

/// Why a manifest cannot be used: the file and the problem (with line and column when
/// the TOML says where).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {problem}", file.display())]
pub struct ManifestError {
    /// The manifest (or service file) at fault.
    pub file: PathBuf,
    /// What is wrong.
    pub problem: String,
}

impl Manifest {
    /// The default manifest of a bare executable file: run it with no arguments.
    pub fn for_executable(file: &Path) -> Manifest {
        let command = file.file_name().unwrap_or(file.as_os_str());
        Manifest {
            name: None,
            command: command.to_string_lossy().into_owned(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            description: String::new(),
            resources: Vec::new(),
            restart: Restart::Never,
            stop_timeout: None,
            ready: Ready::Joined,
            start_timeout: None,
            log_file: None,
        }
    }

    /// Reads and checks `file`.
    pub fn read(file: &Path) -> Result<Manifest, ManifestError> {
        let text = std::fs::read_to_string(file).map_err(|e| ManifestError {
            file: file.to_path_buf(),
            problem: format!("cannot read it: {e}"),
        })?;
        Manifest::parse(&text).map_err(|problem| ManifestError {
            file: file.to_path_buf(),
            problem,
        })
    }

    /// Parses and checks manifest text; the problem as text (with line and column).
    pub fn parse(text: &str) -> Result<Manifest, String> {
        let m: Manifest = toml::from_str(text).map_err(|e| one_line(&e, text))?;
        m.check()?;
        Ok(m)
    }

    fn check(&self) -> Result<(), String> {
        if self.command.trim().is_empty() {
            return Err("`command` is empty".into());
        }
        if let Some(n) = &self.name {
            check_name(n)?;
        }
        for (field, value) in [
            ("stop_timeout", self.stop_timeout),
            ("start_timeout", self.start_timeout),
        ] {
            match value {
                Some(s) if !(s.is_finite() && s > 0.0 && s <= 3600.0) => {
                    return Err(format!("`{field}` must be seconds in (0, 3600], got {s}"))
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// Seconds `start` waits for the service to be ready.
    pub fn start_timeout(&self) -> Duration {
        self.start_timeout
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_START_TIMEOUT)
    }

    /// Seconds between SIGTERM and SIGKILL.
    pub fn stop_timeout(&self) -> Duration {
        self.stop_timeout
            .map(Duration::from_secs_f64)
            .unwrap_or(DEFAULT_STOP_TIMEOUT)
    }
}

/// A service name: letters, digits, `-`, `_` and `.`, not starting with `.` (it becomes a
/// folder name and a word on command lines).
pub fn check_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "bad service name `{name}`: use letters, digits, `-`, `_` and `.` (at most 64, not starting with `.`)"
        ))
    }
}

/// A TOML error as "line L, column C: message".
fn one_line(e: &toml::de::Error, text: &str) -> String {
    let message = e.message().trim().to_string();
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
            format!("line {line}, column {column}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_manifest_reads() {
        let m = Manifest::parse(
            r#"
name = "camera"
command = "bin/camera"
args = ["--fps", "30"]
env = { CAMERA = "1" }
working_dir = "data"
description = "the microscope camera"
resources = ["camera-1"]
restart = { policy = "on-failure", max_restarts = 3 }
stop_timeout = 2.5
"#,
        )
        .unwrap();
        assert_eq!(m.name.as_deref(), Some("camera"));
        assert_eq!(m.args, ["--fps", "30"]);
        assert_eq!(m.env["CAMERA"], "1");
        assert_eq!(
            m.restart,
            Restart::OnFailure {
                max_restarts: 3,
                backoff_ms: 500
            }
        );
        assert_eq!(m.stop_timeout(), Duration::from_millis(2500));
    }

    #[test]
    fn only_command_is_required() {
        let m = Manifest::parse("command = \"run.sh\"").unwrap();
        assert_eq!(
            (m.stop_timeout(), m.restart),
            (DEFAULT_STOP_TIMEOUT, Restart::Never)
        );
        let e = Manifest::parse("name = \"x\"").unwrap_err();
        assert!(e.contains("command"), "{e}");
    }

    #[test]
    fn problems_say_where() {
        let e = Manifest::parse("command = \"a\"\ncomand = \"b\"\n").unwrap_err();
        assert!(e.starts_with("line 2, column 1:"), "{e}");
        assert!(e.contains("comand"), "{e}");
        let e = Manifest::parse("command = \"a\"\nargs = \"--x\"\n").unwrap_err();
        assert!(e.starts_with("line 2"), "{e}");
        let e =
            Manifest::parse("command = \"a\"\nrestart = { policy = \"sometimes\" }\n").unwrap_err();
        assert!(e.contains("sometimes") || e.contains("variant"), "{e}");
        let e = Manifest::parse("command = \"a\"\nstop_timeout = -1\n").unwrap_err();
        assert!(e.contains("stop_timeout"), "{e}");
        let e = Manifest::parse("command = \"a\"\nname = \"../etc\"\n").unwrap_err();
        assert!(e.contains("bad service name"), "{e}");
        let e = Manifest::parse("command = \"\"").unwrap_err();
        assert!(e.contains("empty"), "{e}");
    }
}
