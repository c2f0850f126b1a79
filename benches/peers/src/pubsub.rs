//! The pub/sub figures. A subscriber process counts what arrives (and, when asked, the
//! one-way delay of stamped messages); a publisher process publishes in a plain loop. The
//! parent drives both by lines on stdin:
//!
//! - delivered msgs/s: the publisher floods; after the warm-up the parent asks the
//!   subscriber for its count twice, a window apart (`mark`): the steady-state rate at the
//!   subscriber. Then the publisher stops and says how many it published; the subscriber,
//!   once nothing has arrived for half a second, says how many it received: the difference
//!   is what was dropped.
//! - one-way p50: the publisher sends one 64-byte message every `PEERS_PERIOD_US`
//!   (200 µs), its first 8 bytes the `CLOCK_MONOTONIC` time of sending; the subscriber
//!   records arrival minus stamp over the window.

use std::io::BufRead;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::child::{self, say, Child, ADDR_VAR, SYSTEM_VAR};
use crate::clock::{now_ns, quantile_us};
use crate::rpc::Guard;
use crate::settings::{runtime, Settings};
use crate::system::System;
use crate::{mpreg_side, nats_side, tcp, zenoh_side};

/// The topic (subject) of every system but zenoh (whose key is `peers/data`).
pub const TOPIC: &str = "peers.data";
/// Size of the stamped messages of the latency figure.
pub const LATENCY_PAYLOAD: usize = 64;

/// What the subscriber counts.
#[derive(Default)]
pub struct Sink {
    count: AtomicU64,
    recording: AtomicBool,
    delays: Mutex<Vec<u64>>,
}

impl Sink {
    /// Called by a system's receive loop for every message.
    pub fn on_message(&self, payload: &[u8]) {
        self.count.fetch_add(1, Relaxed);
        if self.recording.load(Relaxed) {
            if let Some(stamp) = payload.get(..8) {
                let sent = u64::from_le_bytes(stamp.try_into().expect("8 bytes"));
                let delay = now_ns().saturating_sub(sent);
                self.delays.lock().expect("not poisoned").push(delay);
            }
        }
    }
}

fn role_system() -> Result<System, String> {
    let key = child::env(SYSTEM_VAR)?;
    System::from_key(&key).ok_or(format!("unknown system `{key}`"))
}

async fn subscribe(system: System, sink: Arc<Sink>) -> Result<(String, Guard), String> {
    match system {
        System::Tcp => tcp::subscribe(sink).await,
        System::Zenoh => zenoh_side::subscribe(sink).await,
        System::Nats => nats_side::subscribe(&child::env(ADDR_VAR)?, sink).await,
        System::Mpreg => mpreg_side::subscribe(sink, false).await,
        System::MpregLossless => mpreg_side::subscribe(sink, true).await,
        System::Tarpc => Err("tarpc has no pub/sub".into()),
    }
}

/// Role `sub`: subscribes, prints `ready ADDR`, then answers the parent's commands.
pub fn sub_role() {
    let rt = runtime();
    let sink = Arc::new(Sink::default());
    let subscribed = role_system().and_then(|s| rt.block_on(subscribe(s, sink.clone())));
    let (addr, _guard) = match subscribed {
        Ok(x) => x,
        Err(e) => {
            say(&format!("error {e}"));
            std::process::exit(0);
        }
    };
    say(&format!("ready {addr}"));
    let start = Instant::now();
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        match line.trim() {
            "reset" => {
                sink.count.store(0, Relaxed);
                say("ok");
            }
            "count" => say(&format!("count {}", sink.count.load(Relaxed))),
            "mark" => {
                let n = sink.count.load(Relaxed);
                say(&format!("mark {n} {}", start.elapsed().as_nanos()));
            }
            "lat" => {
                sink.delays.lock().expect("not poisoned").clear();
                sink.recording.store(true, Relaxed);
                say("ok");
            }
            "latstop" => {
                sink.recording.store(false, Relaxed);
                let mut d = std::mem::take(&mut *sink.delays.lock().expect("not poisoned"));
                d.sort_unstable();
                say(&format!(
                    "lat {} {} {}",
                    quantile_us(&d, 0.5),
                    quantile_us(&d, 0.99),
                    d.len()
                ));
            }
            "drain" => say(&format!("total {}", drain(&sink))),
            other => say(&format!("error unknown command `{other}`")),
        }
    }
    std::process::exit(0);
}

/// The count once nothing has arrived for half a second (at most a minute).
fn drain(sink: &Sink) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut last = sink.count.load(Relaxed);
    let mut still = 0;
    while still < 5 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        let now = sink.count.load(Relaxed);
        still = if now == last { still + 1 } else { 0 };
        last = now;
    }
    last
}

/// The publishing side of each system.
pub enum Publisher {
    Tcp(tcp::Publisher),
    Zenoh(zenoh_side::Publisher),
    Nats(nats_side::Publisher),
    Mpreg(mpreg_side::Publisher),
}

impl Publisher {
    async fn connect(system: System, addr: &str) -> Result<Publisher, String> {
        Ok(match system {
            System::Tcp => Publisher::Tcp(tcp::Publisher::connect(addr).await?),
            System::Zenoh => Publisher::Zenoh(zenoh_side::Publisher::connect(addr).await?),
            System::Nats => Publisher::Nats(nats_side::Publisher::connect(addr).await?),
            System::Mpreg | System::MpregLossless => {
                Publisher::Mpreg(mpreg_side::Publisher::connect(addr).await?)
            }
            System::Tarpc => return Err("tarpc has no pub/sub".into()),
        })
    }

    async fn send(&mut self, payload: &[u8]) -> Result<(), String> {
        match self {
            Publisher::Tcp(p) => p.send(payload).await,
            Publisher::Zenoh(p) => p.send(payload).await,
            Publisher::Nats(p) => p.send(payload).await,
            Publisher::Mpreg(p) => p.send(payload).await,
        }
    }

    /// Pushes out what the client library may still buffer (raw TCP's writer, NATS).
    async fn flush(&mut self) -> Result<(), String> {
        match self {
            Publisher::Tcp(p) => p.flush().await,
            Publisher::Nats(p) => p.flush().await,
            Publisher::Zenoh(_) | Publisher::Mpreg(_) => Ok(()),
        }
    }
}

/// A publish loop that ends when `stop` is set: the publisher back, how many it published
/// and over how long.
type Outcome = (Publisher, Result<u64, String>, Duration);

enum Running {
    Task(tokio::task::JoinHandle<Outcome>),
    Thread(std::thread::JoinHandle<Outcome>),
}

/// Role `pub`: connects to `PEERS_ADDR`, prints `ready`, then runs the loops the parent
/// asks for: `probe`, `flood SIZE`, `paced SIZE PERIOD_US`, each until `stop` (answered
/// `sent N SECS`).
pub fn pub_role() {
    let rt = runtime();
    let connected = role_system().and_then(|system| {
        let addr = child::env(ADDR_VAR)?;
        rt.block_on(Publisher::connect(system, &addr))
    });
    let mut idle = match connected {
        Ok(p) => Some(p),
        Err(e) => {
            say(&format!("error {e}"));
            std::process::exit(0);
        }
    };
    say("ready");
    let stop = Arc::new(AtomicBool::new(false));
    let mut running = None;
    for line in std::io::stdin().lock().lines() {
        let Ok(line) = line else { break };
        let words: Vec<&str> = line.split_whitespace().collect();
        let arg = |i: usize| words.get(i).and_then(|w| w.parse::<u64>().ok());
        if words.first() == Some(&"stop") {
            stop.store(true, Relaxed);
            let outcome = match running.take() {
                Some(Running::Task(t)) => rt.block_on(t).map_err(|e| e.to_string()),
                Some(Running::Thread(t)) => t.join().map_err(|_| "publisher panicked".into()),
                None => Err("nothing running".into()),
            };
            match outcome {
                Ok((p, Ok(n), took)) => {
                    idle = Some(p);
                    say(&format!("sent {n} {}", took.as_secs_f64()));
                }
                Ok((p, Err(e), _)) => {
                    idle = Some(p);
                    say(&format!("error {e}"));
                }
                Err(e) => say(&format!("error {e}")),
            }
            continue;
        }
        let Some(p) = idle.take() else {
            say("error the publisher is busy or gone");
            continue;
        };
        stop.store(false, Relaxed);
        let s = stop.clone();
        running = match (words.first().copied(), arg(1), arg(2)) {
            (Some("probe"), _, _) => Some(Running::Task(rt.spawn(probe(p, s)))),
            (Some("flood"), Some(size), _) => {
                Some(Running::Task(rt.spawn(flood(p, size as usize, s))))
            }
            (Some("paced"), Some(size), Some(us)) => {
                let h = rt.handle().clone();
                let period = Duration::from_micros(us);
                Some(Running::Thread(std::thread::spawn(move || {
                    paced(h, p, size as usize, period, s)
                })))
            }
            _ => {
                idle = Some(p);
                say(&format!("error unknown command `{line}`"));
                continue;
            }
        };
        say("ok");
    }
    std::process::exit(0);
}

/// One small message every 20 ms, until the subscriber has seen one.
async fn probe(mut p: Publisher, stop: Arc<AtomicBool>) -> Outcome {
    let start = Instant::now();
    let mut n = 0;
    while !stop.load(Relaxed) {
        if let Err(e) = async {
            p.send(&[0u8; 8]).await?;
            p.flush().await
        }
        .await
        {
            return (p, Err(e), start.elapsed());
        }
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    (p, Ok(n), start.elapsed())
}

/// Publishes `size`-byte messages back to back, as fast as `send` returns.
async fn flood(mut p: Publisher, size: usize, stop: Arc<AtomicBool>) -> Outcome {
    let payload = vec![7u8; size];
    let start = Instant::now();
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        if let Err(e) = p.send(&payload).await {
            return (p, Err(e), start.elapsed());
        }
        n += 1;
    }
    let took = start.elapsed();
    let flushed = p.flush().await;
    (p, flushed.map(|_| n), took)
}

/// One stamped message every `period`, from a plain thread (tokio's timer ticks in whole
/// milliseconds; `thread::sleep` does not).
fn paced(
    rt: tokio::runtime::Handle,
    mut p: Publisher,
    size: usize,
    period: Duration,
    stop: Arc<AtomicBool>,
) -> Outcome {
    let mut payload = vec![7u8; size.max(8)];
    let start = Instant::now();
    let mut next = start;
    let mut n = 0u64;
    while !stop.load(Relaxed) {
        payload[..8].copy_from_slice(&now_ns().to_le_bytes());
        let sent = rt.block_on(async {
            p.send(&payload).await?;
            p.flush().await
        });
        if let Err(e) = sent {
            return (p, Err(e), start.elapsed());
        }
        n += 1;
        next += period;
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
    }
    (p, Ok(n), start.elapsed())
}

/// What the parent measured for one system in one round.
pub struct PubsubFigures {
    pub small: Result<Flow, String>,
    pub large: Result<Flow, String>,
    pub latency: Result<(f64, f64), String>,
}

/// One flood: delivered msgs/s over the window, publish() msgs/s, and drops.
#[derive(Clone, Copy, Debug)]
pub struct Flow {
    pub delivered: f64,
    pub published: f64,
    pub sent: u64,
    pub dropped: i64,
}

impl Flow {
    pub fn drop_pct(&self) -> f64 {
        100.0 * self.dropped as f64 / self.sent.max(1) as f64
    }
}

fn num<T: std::str::FromStr>(words: &[String], i: usize) -> Result<T, String> {
    words
        .get(i)
        .and_then(|w| w.parse().ok())
        .ok_or(format!("bad answer `{}`", words.join(" ")))
}

/// Waits until a message published now reaches the subscriber.
fn probe_until_seen(sub: &mut Child, publ: &mut Child) -> Result<(), String> {
    sub.ask("reset", "ok")?;
    publ.ask("probe", "ok")?;
    let deadline = Instant::now() + Duration::from_secs(15);
    let seen = loop {
        if num::<u64>(&sub.ask("count", "count")?, 0)? > 0 {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    publ.ask("stop", "sent")?;
    std::thread::sleep(Duration::from_millis(200));
    if seen {
        Ok(())
    } else {
        Err("no message reached the subscriber".into())
    }
}

fn flow(sub: &mut Child, publ: &mut Child, size: usize, s: &Settings) -> Result<Flow, String> {
    sub.ask("reset", "ok")?;
    publ.ask(&format!("flood {size}"), "ok")?;
    std::thread::sleep(s.warmup);
    let a = sub.ask("mark", "mark")?;
    std::thread::sleep(s.window);
    let b = sub.ask("mark", "mark")?;
    let sent = publ.ask("stop", "sent")?;
    let total: u64 = num(&sub.ask("drain", "total")?, 0)?;
    let (n, secs): (u64, f64) = (num(&sent, 0)?, num(&sent, 1)?);
    let count = num::<u64>(&b, 0)? - num::<u64>(&a, 0)?;
    let nanos = num::<u64>(&b, 1)? - num::<u64>(&a, 1)?;
    Ok(Flow {
        delivered: count as f64 / (nanos as f64 / 1e9),
        published: n as f64 / secs,
        sent: n,
        dropped: n as i64 - total as i64,
    })
}

fn latency(sub: &mut Child, publ: &mut Child, s: &Settings) -> Result<(f64, f64), String> {
    sub.ask("reset", "ok")?;
    let cmd = format!("paced {LATENCY_PAYLOAD} {}", s.period.as_micros());
    publ.ask(&cmd, "ok")?;
    std::thread::sleep(s.warmup);
    sub.ask("lat", "ok")?;
    std::thread::sleep(s.window);
    let l = sub.ask("latstop", "lat")?;
    publ.ask("stop", "sent")?;
    if num::<u64>(&l, 2)? == 0 {
        return Err("no stamped message arrived".into());
    }
    Ok((num(&l, 0)?, num(&l, 1)?))
}

/// In the parent: one round of `system`, a subscriber and a publisher process.
pub fn round(system: System, s: &Settings, nats: Option<&str>) -> PubsubFigures {
    let setup = (|| {
        let mut sub = Child::spawn("sub", system.key(), nats)?;
        let addr = sub.expect("ready")?.join(" ");
        let mut publ = Child::spawn("pub", system.key(), Some(&addr))?;
        publ.expect("ready")?;
        probe_until_seen(&mut sub, &mut publ)?;
        Ok::<_, String>((sub, publ))
    })();
    let (mut sub, mut publ) = match setup {
        Ok(x) => x,
        Err(e) => {
            return PubsubFigures {
                small: Err(e.clone()),
                large: Err(e.clone()),
                latency: Err(e),
            }
        }
    };
    let small = flow(&mut sub, &mut publ, 8, s);
    let large = flow(&mut sub, &mut publ, 1024, s);
    let latency = latency(&mut sub, &mut publ, s);
    PubsubFigures {
        small,
        large,
        latency,
    }
}
