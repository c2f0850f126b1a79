//! The report: a markdown table of the medians of the rounds (the rows and
//! columns), the same table round by round, and mpreg's ratios to the others.

use std::collections::BTreeMap;

use crate::settings::Settings;
use crate::system::System;

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
pub enum Figure {
    RpcP50,
    RpcRate,
    Small,
    Large,
    OneWay,
}

impl Figure {
    const ALL: [Figure; 5] = [
        Figure::RpcP50,
        Figure::RpcRate,
        Figure::Small,
        Figure::Large,
        Figure::OneWay,
    ];

    fn label(self) -> &'static str {
        match self {
            Figure::RpcP50 => "RPC round trip p50, 64 B, 1 in flight",
            Figure::RpcRate => "RPC calls/s, 256 in flight, one client (one connection)",
            Figure::Small => "pub/sub 8 B, msgs/s delivered (and % dropped)",
            Figure::Large => "pub/sub 1 KiB, msgs/s delivered",
            Figure::OneWay => "pub/sub one-way p50, 64 B",
        }
    }

    fn is_rpc(self) -> bool {
        matches!(self, Figure::RpcP50 | Figure::RpcRate)
    }

    /// Latencies (lower is better) rather than rates.
    fn is_latency(self) -> bool {
        matches!(self, Figure::RpcP50 | Figure::OneWay)
    }

    fn applies(self, s: System) -> bool {
        if self.is_rpc() {
            s.does_rpc()
        } else {
            s.does_pubsub()
        }
    }

    fn format(self, v: f64) -> String {
        if self.is_latency() {
            format!("{v:.1} µs")
        } else {
            format!("{}/s", thousands(v))
        }
    }

    /// What the figure is for systems whose RPC is not a call (the notes).
    fn note(self, s: System) -> &'static str {
        match (self, s) {
            (Figure::RpcP50, System::Zenoh) => " (get)",
            (Figure::RpcP50, System::Nats) => " (req)",
            _ => "",
        }
    }
}

/// One measurement: its value and, for floods, the % dropped.
#[derive(Clone, Copy)]
pub struct Cell {
    pub value: f64,
    pub dropped_pct: Option<f64>,
}

pub struct Table {
    systems: Vec<System>,
    rounds: usize,
    figures: Vec<Figure>,
    cells: BTreeMap<(Figure, usize), Vec<Result<Cell, String>>>,
}

fn median(mut v: Vec<f64>) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    v.sort_by(f64::total_cmp);
    let n = v.len();
    Some(if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    })
}

/// `1234567.8` as `1,234,568`.
pub fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return format!("{x}");
    }
    let digits = format!("{:.0}", x);
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 && c != '-' {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// An error fit for a table cell.
fn short(e: &str) -> String {
    let e = e.replace('|', "/");
    match e.char_indices().nth(70) {
        Some((i, _)) => format!("{}…", &e[..i]),
        None => e,
    }
}

impl Table {
    pub fn new(s: &Settings) -> Table {
        let figures = Figure::ALL
            .into_iter()
            .filter(|f| if f.is_rpc() { s.rpc } else { s.pubsub })
            .collect();
        Table {
            systems: s.systems.clone(),
            rounds: s.rounds,
            figures,
            cells: BTreeMap::new(),
        }
    }

    fn column(&self, s: System) -> usize {
        self.systems
            .iter()
            .position(|x| *x == s)
            .expect("a measured system")
    }

    pub fn record(&mut self, f: Figure, s: System, cell: Result<Cell, String>) {
        let key = (f, self.column(s));
        self.cells.entry(key).or_default().push(cell);
    }

    fn oks(&self, f: Figure, s: System) -> Vec<Cell> {
        let key = (f, self.column(s));
        self.cells
            .get(&key)
            .map(|v| v.iter().filter_map(|c| c.as_ref().ok().copied()).collect())
            .unwrap_or_default()
    }

    fn median_of(&self, f: Figure, s: System) -> Option<f64> {
        median(self.oks(f, s).iter().map(|c| c.value).collect())
    }

    fn median_cell(&self, f: Figure, s: System) -> String {
        if !f.applies(s) {
            return "—".into();
        }
        let all = self.cells.get(&(f, self.column(s)));
        let errors: Vec<&String> = all
            .into_iter()
            .flatten()
            .filter_map(|c| c.as_ref().err())
            .collect();
        let oks = self.oks(f, s);
        let Some(v) = median(oks.iter().map(|c| c.value).collect()) else {
            return match errors.first() {
                Some(e) => format!("error: {}", short(e)),
                None => "not run".into(),
            };
        };
        let mut text = format!("{}{}", f.format(v), f.note(s));
        if let Some(d) = median(oks.iter().filter_map(|c| c.dropped_pct).collect()) {
            text.push_str(&format!(" ({d:.1}% dropped)"));
        }
        if !errors.is_empty() {
            text.push_str(&format!(
                " [{} of {} rounds failed]",
                errors.len(),
                self.rounds
            ));
        }
        text
    }

    fn rounds_cell(&self, f: Figure, s: System) -> String {
        if !f.applies(s) {
            return "—".into();
        }
        let Some(all) = self.cells.get(&(f, self.column(s))) else {
            return "not run".into();
        };
        all.iter()
            .map(|c| match c {
                Ok(c) => {
                    let v = if f.is_latency() {
                        format!("{:.1}", c.value)
                    } else {
                        thousands(c.value)
                    };
                    match c.dropped_pct {
                        Some(d) => format!("{v} ({d:.1}%)"),
                        None => v,
                    }
                }
                Err(_) => "error".into(),
            })
            .collect::<Vec<_>>()
            .join(" / ")
    }

    fn header(&self, first: &str) {
        let names: Vec<&str> = self.systems.iter().map(|s| s.label()).collect();
        println!("| {first} | {} |", names.join(" | "));
        println!("|---|{}", "---|".repeat(names.len()));
    }

    fn body(&self, cell: impl Fn(Figure, System) -> String) {
        for &f in &self.figures {
            let cells: Vec<String> = self.systems.iter().map(|&s| cell(f, s)).collect();
            println!("| {} | {} |", f.label(), cells.join(" | "));
        }
    }

    /// `mpreg ÷ other` per figure, for each other system measured.
    fn ratios(&self, mine: System) {
        let others: Vec<System> = [System::Tcp, System::Tarpc, System::Zenoh, System::Nats]
            .into_iter()
            .filter(|o| self.systems.contains(o))
            .collect();
        let names: Vec<String> = others
            .iter()
            .map(|o| format!("{} ÷ {}", mine.label(), o.label()))
            .collect();
        println!("| figure | {} |", names.join(" | "));
        println!("|---|{}", "---|".repeat(names.len()));
        for &f in self.figures.iter().filter(|f| f.applies(mine)) {
            let cells: Vec<String> = others
                .iter()
                .map(|&o| match (self.median_of(f, mine), self.median_of(f, o)) {
                    _ if !f.applies(o) => "—".into(),
                    (Some(a), Some(b)) => format!("{:.2}×", a / b),
                    _ => "n/a".into(),
                })
                .collect();
            println!("| {} | {} |", f.label(), cells.join(" | "));
        }
    }

    pub fn print(&self) {
        println!();
        println!("### Medians of {} rounds", self.rounds);
        println!();
        self.header("figure");
        self.body(|f, s| self.median_cell(f, s));
        println!();
        println!("### Per round (round 1 / round 2 / …; µs or msgs/s; % dropped)");
        println!();
        self.header("figure");
        self.body(|f, s| self.rounds_cell(f, s));
        for mine in [System::Mpreg, System::MpregLossless] {
            if !self.systems.contains(&mine) {
                continue;
            }
            println!();
            println!(
                "### {} ÷ the others (medians; latency rows: below 1 = mpreg faster; \
                 rate rows: above 1 = mpreg faster)",
                mine.label()
            );
            println!();
            self.ratios(mine);
        }
        let mut errors: Vec<String> = Vec::new();
        for ((f, col), cells) in &self.cells {
            for e in cells.iter().filter_map(|c| c.as_ref().err()) {
                let line = format!("{} / {}: {e}", self.systems[*col].label(), f.label());
                if !errors.contains(&line) {
                    errors.push(line);
                }
            }
        }
        if !errors.is_empty() {
            println!();
            println!("Errors:");
            for e in errors {
                println!("- {e}");
            }
        }
    }
}
