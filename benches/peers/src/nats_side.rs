//! NATS (core, no JetStream): a `nats-server` the parent starts on 127.0.0.1, async-nats
//! clients. RPC is request/reply (the responder publishes each request's payload to its
//! reply subject); pub/sub is plain publish and subscribe.

use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;

use crate::child::free_port;
use crate::pubsub::{Sink, TOPIC};
use crate::rpc::{Caller, Guard};

const ECHO_SUBJECT: &str = "peers.echo";

fn err<E: std::fmt::Display>(what: &str) -> impl Fn(E) -> String + '_ {
    move |e| format!("nats {what}: {e}")
}

/// The `nats-server` process; killed when dropped.
pub struct Server {
    child: std::process::Child,
    pub addr: String,
}

impl Server {
    /// Starts `nats-server -a 127.0.0.1 -p PORT` and waits until it accepts connections.
    pub fn start() -> Result<Server, String> {
        let port = free_port()?;
        let mut cmd = Command::new("nats-server");
        // SAFETY: prctl is async-signal-safe; it only asks the kernel to kill the server
        // when this process dies, so that it cannot outlive a benchmark killed mid-run.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
        let child = cmd
            .args(["-a", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::NotFound => "not installed".to_string(),
                _ => format!("cannot start nats-server: {e}"),
            })?;
        let server = Server {
            child,
            addr: format!("127.0.0.1:{port}"),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(&server.addr).is_err() {
            if Instant::now() > deadline {
                return Err("nats-server did not start listening".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    /// `nats-server --version`, for the report.
    pub fn version() -> String {
        Command::new("nats-server")
            .arg("--version")
            .output()
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
            .unwrap_or_else(|_| "nats-server not installed".into())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn connect(addr: &str) -> Result<async_nats::Client, String> {
    async_nats::connect(addr).await.map_err(err("connect"))
}

// ----- RPC ------------------------------------------------------------------------------

/// A responder on [`ECHO_SUBJECT`], through the server at `addr`.
pub async fn serve_rpc(addr: &str) -> Result<(String, Guard), String> {
    let client = connect(addr).await?;
    let mut requests = client
        .subscribe(ECHO_SUBJECT)
        .await
        .map_err(err("subscribe"))?;
    client.flush().await.map_err(err("flush"))?;
    let c = client.clone();
    let task = tokio::spawn(async move {
        while let Some(m) = requests.next().await {
            if let Some(reply) = m.reply {
                if let Err(e) = c.publish(reply, m.payload).await {
                    eprintln!("nats responder: {e}");
                }
            }
        }
    });
    Ok((addr.to_string(), Box::new((client, task))))
}

#[derive(Clone)]
pub struct Client(async_nats::Client);

pub async fn connect_rpc(addr: &str) -> Result<Client, String> {
    Ok(Client(connect(addr).await?))
}

impl Caller for Client {
    async fn call(&self, payload: Vec<u8>) -> Result<usize, String> {
        let reply = self
            .0
            .request(ECHO_SUBJECT, Bytes::from(payload))
            .await
            .map_err(err("request"))?;
        Ok(reply.payload.len())
    }
}

// ----- pub/sub --------------------------------------------------------------------------

pub async fn subscribe(addr: &str, sink: Arc<Sink>) -> Result<(String, Guard), String> {
    let client = connect(addr).await?;
    let mut sub = client.subscribe(TOPIC).await.map_err(err("subscribe"))?;
    client.flush().await.map_err(err("flush"))?;
    let task = tokio::spawn(async move {
        while let Some(m) = sub.next().await {
            sink.on_message(&m.payload);
        }
    });
    Ok((addr.to_string(), Box::new((client, task))))
}

pub struct Publisher(async_nats::Client);

impl Publisher {
    pub async fn connect(addr: &str) -> Result<Publisher, String> {
        Ok(Publisher(connect(addr).await?))
    }

    pub async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        self.0
            .publish(TOPIC, Bytes::copy_from_slice(payload))
            .await
            .map_err(err("publish"))
    }

    pub async fn flush(&mut self) -> Result<(), String> {
        self.0.flush().await.map_err(err("flush"))
    }
}
