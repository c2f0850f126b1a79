//! The RPC figures: round-trip p50 with one call in flight, and calls/s with 256 in flight
//! on one client (one connection). The server and the client are two child processes; the
//! client measures and reports `rpc P50_US P99_US CALLS_PER_SEC`.

use std::any::Any;
use std::future::Future;
use std::time::{Duration, Instant};

use crate::child::{self, say, Child, ADDR_VAR, SYSTEM_VAR};
use crate::clock::quantile_us;
use crate::settings::{runtime, Settings};
use crate::system::System;
use crate::{mpreg_side, nats_side, tarpc_side, tcp, zenoh_side};

/// Bytes of every request and reply.
pub const PAYLOAD: usize = 64;
/// Calls in flight for the throughput figure.
pub const IN_FLIGHT: usize = 256;

/// What one client run measured.
#[derive(Clone, Copy, Debug)]
pub struct RpcFigures {
    pub p50_us: f64,
    pub p99_us: f64,
    pub calls_per_sec: f64,
}

/// Something kept alive while a server serves.
pub type Guard = Box<dyn Any + Send>;

/// A client of one system's echo: sends `payload`, returns the reply's length.
pub trait Caller: Clone + Send + Sync + 'static {
    fn call(&self, payload: Vec<u8>) -> impl Future<Output = Result<usize, String>> + Send;
}

/// One call at a time for `d`: every call's duration.
async fn ping_pong<C: Caller>(c: &C, d: Duration) -> Result<Vec<u64>, String> {
    let mut nanos = Vec::new();
    let start = Instant::now();
    let mut t0 = start;
    while t0 < start + d {
        let n = c.call(vec![0xA5; PAYLOAD]).await?;
        let t1 = Instant::now();
        if n != PAYLOAD {
            return Err(format!("echo returned {n} bytes, not {PAYLOAD}"));
        }
        nanos.push(t1.duration_since(t0).as_nanos() as u64);
        t0 = t1;
    }
    Ok(nanos)
}

/// `n` callers (one task each) back to back for `d`: calls per second.
async fn concurrent<C: Caller>(c: &C, n: usize, d: Duration) -> Result<f64, String> {
    let start = Instant::now();
    let deadline = start + d;
    let tasks: Vec<_> = (0..n)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut calls = 0u64;
                while Instant::now() < deadline {
                    c.call(vec![0xA5; PAYLOAD]).await?;
                    calls += 1;
                }
                Ok::<u64, String>(calls)
            })
        })
        .collect();
    let mut calls = 0;
    for t in tasks {
        calls += t.await.map_err(|e| format!("caller task: {e}"))??;
    }
    Ok(calls as f64 / start.elapsed().as_secs_f64())
}

/// Both figures through `c`, each after its warm-up.
pub async fn measure<C: Caller>(c: C, s: &Settings) -> Result<RpcFigures, String> {
    ping_pong(&c, s.warmup).await?;
    let mut nanos = ping_pong(&c, s.window).await?;
    nanos.sort_unstable();
    concurrent(&c, IN_FLIGHT, s.warmup).await?;
    let calls_per_sec = concurrent(&c, IN_FLIGHT, s.window).await?;
    Ok(RpcFigures {
        p50_us: quantile_us(&nanos, 0.5),
        p99_us: quantile_us(&nanos, 0.99),
        calls_per_sec,
    })
}

fn role_system() -> Result<System, String> {
    let key = child::env(SYSTEM_VAR)?;
    System::from_key(&key).ok_or(format!("unknown system `{key}`"))
}

async fn serve(system: System) -> Result<(String, Guard), String> {
    match system {
        System::Tcp => tcp::serve_rpc().await,
        System::Tarpc => tarpc_side::serve().await,
        System::Zenoh => zenoh_side::serve_rpc().await,
        System::Nats => nats_side::serve_rpc(&child::env(ADDR_VAR)?).await,
        System::Mpreg => mpreg_side::serve_rpc().await,
        System::MpregLossless => Err("no RPC row for lossless subscriptions".into()),
    }
}

/// Role `server`: serves echo, prints `ready ADDR`, serves until stdin closes.
pub fn server_role() {
    let rt = runtime();
    let served = role_system().and_then(|system| rt.block_on(serve(system)));
    match served {
        Ok((addr, _guard)) => {
            say(&format!("ready {addr}"));
            child::wait_for_parent();
        }
        Err(e) => say(&format!("error {e}")),
    }
    // No orderly shutdown: the parent is done with this server.
    std::process::exit(0);
}

async fn client(system: System, addr: &str, s: &Settings) -> Result<RpcFigures, String> {
    match system {
        System::Tcp => tcp::rpc(addr, s).await,
        System::Tarpc => measure(tarpc_side::connect(addr).await?, s).await,
        System::Zenoh => measure(zenoh_side::connect_rpc(addr).await?, s).await,
        System::Nats => measure(nats_side::connect_rpc(addr).await?, s).await,
        System::Mpreg => measure(mpreg_side::connect_rpc(addr).await?, s).await,
        System::MpregLossless => Err("no RPC row for lossless subscriptions".into()),
    }
}

/// Role `client`: measures, prints `rpc P50 P99 CALLS_PER_SEC` (or `error ...`).
pub fn client_role() {
    let rt = runtime();
    let result = (|| {
        let s = Settings::from_env()?;
        let system = role_system()?;
        let addr = child::env(ADDR_VAR)?;
        rt.block_on(client(system, &addr, &s))
    })();
    match result {
        Ok(f) => say(&format!(
            "rpc {} {} {}",
            f.p50_us, f.p99_us, f.calls_per_sec
        )),
        Err(e) => say(&format!("error {e}")),
    }
    std::process::exit(0);
}

/// In the parent: one round of `system`, a server and a client process.
pub fn round(system: System, s: &Settings, nats: Option<&str>) -> Result<RpcFigures, String> {
    let mut server = Child::spawn("server", system.key(), nats)?;
    let addr = server.expect("ready")?.join(" ");
    let mut client = Child::spawn("client", system.key(), Some(&addr))?;
    let limit = child::ANSWER + 2 * (s.warmup + s.window);
    let line = client.line_within(limit)?;
    let v: Vec<f64> = line
        .strip_prefix("rpc ")
        .ok_or(format!("the client said `{line}`"))?
        .split(' ')
        .map(|x| x.parse().map_err(|_| format!("bad figure in `{line}`")))
        .collect::<Result<_, _>>()?;
    drop(client);
    drop(server);
    Ok(RpcFigures {
        p50_us: v[0],
        p99_us: v[1],
        calls_per_sec: v[2],
    })
}
