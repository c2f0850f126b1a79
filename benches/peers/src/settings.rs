//! What the environment sets: durations, rounds, which part and which systems run.

use std::time::Duration;

use crate::system::System;

#[derive(Clone)]
pub struct Settings {
    /// `PEERS_SECS` (default 3): each measured window.
    pub window: Duration,
    /// `PEERS_WARMUP` (default 1): the warm-up before each window.
    pub warmup: Duration,
    /// `PEERS_ROUNDS` (default 3).
    pub rounds: usize,
    /// `PEERS_ONLY=rpc|pubsub` (default both).
    pub rpc: bool,
    pub pubsub: bool,
    /// `PEERS_SYSTEMS=tcp,mpreg,..` (default all).
    pub systems: Vec<System>,
    /// `PEERS_PERIOD_US` (default 200): the pace of the one-way latency publisher.
    pub period: Duration,
}

fn secs(var: &str, default: f64) -> Result<Duration, String> {
    match std::env::var(var) {
        Err(_) => Ok(Duration::from_secs_f64(default)),
        Ok(v) => v
            .parse::<f64>()
            .ok()
            .filter(|s| *s > 0.0)
            .map(Duration::from_secs_f64)
            .ok_or(format!(
                "{var} must be a positive number of seconds, not `{v}`"
            )),
    }
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let rounds = match std::env::var("PEERS_ROUNDS") {
            Err(_) => 3,
            Ok(v) => v
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .ok_or(format!("PEERS_ROUNDS must be a positive count, not `{v}`"))?,
        };
        let (rpc, pubsub) = match std::env::var("PEERS_ONLY").as_deref() {
            Err(_) => (true, true),
            Ok("rpc") => (true, false),
            Ok("pubsub") => (false, true),
            Ok(v) => return Err(format!("PEERS_ONLY must be `rpc` or `pubsub`, not `{v}`")),
        };
        let systems = match std::env::var("PEERS_SYSTEMS") {
            Err(_) => System::ALL.to_vec(),
            Ok(v) => v
                .split(',')
                .map(|k| System::from_key(k.trim()).ok_or(format!("unknown system `{k}`")))
                .collect::<Result<_, _>>()?,
        };
        let period_us = match std::env::var("PEERS_PERIOD_US") {
            Err(_) => 200,
            Ok(v) => v.parse::<u64>().ok().filter(|n| *n > 0).ok_or(format!(
                "PEERS_PERIOD_US must be a positive count, not `{v}`"
            ))?,
        };
        Ok(Settings {
            window: secs("PEERS_SECS", 3.0)?,
            warmup: secs("PEERS_WARMUP", 1.0)?,
            rounds,
            rpc,
            pubsub,
            systems,
            period: Duration::from_micros(period_us),
        })
    }
}

/// The runtime of every process: tokio multi-thread, 2 workers.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("cannot build a tokio runtime")
}
