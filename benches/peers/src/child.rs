//! The child processes of a measurement: this binary again, in another role
//! (`PEERS_ROLE`), spoken to by lines on stdin and stdout. Closing a child's stdin tells
//! it to stop; dropping a [`Child`] also kills and reaps it, so no child outlives the run.

use std::io::{BufRead, BufReader, Write};
use std::process::{ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::time::Duration;

/// The role a process plays; unset in the process the user starts.
pub const ROLE_VAR: &str = "PEERS_ROLE";
/// The system a child measures (`System::key`).
pub const SYSTEM_VAR: &str = "PEERS_SYSTEM";
/// The address a client or publisher connects to.
pub const ADDR_VAR: &str = "PEERS_ADDR";

/// How long a child may take to answer one command.
pub const ANSWER: Duration = Duration::from_secs(30);

pub struct Child {
    what: String,
    child: std::process::Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
}

impl Child {
    /// Starts this binary as `role` for `system`, with `addr` to connect to if any.
    pub fn spawn(role: &str, system: &str, addr: Option<&str>) -> Result<Child, String> {
        let what = format!("{system} {role}");
        let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
        let mut cmd = Command::new(exe);
        cmd.env(ROLE_VAR, role)
            .env(SYSTEM_VAR, system)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        if let Some(a) = addr {
            cmd.env(ADDR_VAR, a);
        }
        let mut child = cmd
            .spawn()
            .map_err(|e| format!("cannot start the {what}: {e}"))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Child {
            what,
            child,
            stdin,
            lines,
        })
    }

    /// The next line, within `limit`. A child that reports `error ...` fails the call.
    pub fn line_within(&mut self, limit: Duration) -> Result<String, String> {
        match self.lines.recv_timeout(limit) {
            Ok(l) => match l.strip_prefix("error ") {
                Some(e) => Err(e.to_string()),
                None => Ok(l),
            },
            Err(RecvTimeoutError::Timeout) => Err(format!("the {} did not answer", self.what)),
            Err(RecvTimeoutError::Disconnected) => {
                Err(format!("the {} exited early (see stderr)", self.what))
            }
        }
    }

    pub fn line(&mut self) -> Result<String, String> {
        self.line_within(ANSWER)
    }

    /// The next line, which must start with `word`: the words after it.
    pub fn expect(&mut self, word: &str) -> Result<Vec<String>, String> {
        let l = self.line()?;
        let mut words = l.split_whitespace();
        if words.next() != Some(word) {
            return Err(format!("the {} said `{l}`, not `{word} ..`", self.what));
        }
        Ok(words.map(str::to_string).collect())
    }

    /// Sends one command line.
    pub fn send(&mut self, line: &str) -> Result<(), String> {
        let stdin = self.stdin.as_mut().ok_or("stdin closed")?;
        writeln!(stdin, "{line}")
            .and_then(|_| stdin.flush())
            .map_err(|e| format!("cannot write to the {}: {e}", self.what))
    }

    /// Sends `line` and returns the words of the answer, which must start with `word`.
    pub fn ask(&mut self, line: &str, word: &str) -> Result<Vec<String>, String> {
        self.send(line)?;
        self.expect(word)
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        self.stdin = None;
        // A moment to exit by itself, then killed.
        for _ in 0..20 {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// In a child: prints one line to the parent.
pub fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}").and_then(|_| out.flush());
}

/// In a child: the value of an environment variable the parent set.
pub fn env(var: &str) -> Result<String, String> {
    std::env::var(var).map_err(|_| format!("{var} not set"))
}

/// In a child: blocks until the parent closes stdin (or dies).
pub fn wait_for_parent() {
    let _ = std::io::copy(&mut std::io::stdin().lock(), &mut std::io::sink());
}

/// A free port on 127.0.0.1 (for servers that must be told their port before they listen).
pub fn free_port() -> Result<u16, String> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free port: {e}"))
}
