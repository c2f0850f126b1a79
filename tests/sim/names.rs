//! Unique names under churn: random sequences of fresh starts, restarts, duplicate claims,
//! kills, graceful leaves, partitions and heals, with the runtime's start-time refusal
//! modelled, and the view every live node should converge to.
//!
//! The rule under test (`mpreg::proto::membership`): a view shows, for each name other than
//! its own, the newest identity that SWIM holds alive, and nothing else. The runtime refuses
//! to start a process whose name is held by a live node it can reach, so a duplicate only
//! joins when the holder is on the other side of a partition.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;

use super::{Discovery, Net, Sim, Status};

/// What one step of a run does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Step {
    /// A process under a name nobody used yet.
    Fresh,
    /// A stopped process started again under its name on its host.
    Restart,
    /// A process claims the name of a live one from another host (refused if the holder
    /// is reachable).
    Duplicate,
    /// `kill -9` of a live process.
    Kill,
    /// Graceful leave of a live process.
    Leave,
    /// The network splits in two random sides.
    Partition,
    /// Every partition heals.
    Heal,
}

/// What a run measured.
#[derive(Debug, Default)]
pub struct Figures {
    /// Time to convergence after each step, by step kind.
    pub times: BTreeMap<Step, Vec<Duration>>,
    /// Steps taken (refused starts included).
    pub steps: usize,
    /// Starts refused because a live holder of the name was reachable.
    pub refused: usize,
    /// Duplicates that joined (holder on the other side of a partition).
    pub duplicates_joined: usize,
    /// Largest number of processes alive at once.
    pub peak: usize,
}

/// How a run is set up.
#[derive(Debug, Clone)]
pub struct Setup {
    /// Steps per run.
    pub steps: usize,
    /// Hosts processes are placed on.
    pub hosts: usize,
    /// Live processes are kept between these bounds (inclusive).
    pub min_live: usize,
    /// See `min_live`.
    pub max_live: usize,
    /// Virtual time each step gets before the next one.
    pub budget: Duration,
    /// How long to wait for convergence at most before declaring a failure.
    pub limit: Duration,
    /// The network.
    pub net: Net,
    /// The runtime's beacon interval, at which every node beacons (a fixed pace).
    pub beacon: Duration,
}

/// A process the scenario started: its name and host (the sim node holds the rest).
#[derive(Debug, Clone)]
struct Proc {
    name: String,
    host: usize,
}

/// One run: the simulation plus what the scenario knows about its processes.
struct Run {
    sim: Sim,
    procs: Vec<Proc>,
    next_name: usize,
    setup: Setup,
    figures: Figures,
}

/// Runs one random sequence under `seed`; returns its figures or a description of the
/// first step after which the views did not converge within `setup.limit`.
pub fn run(seed: u64, setup: &Setup) -> Result<Figures, String> {
    let mut sim = Sim::new(0, seed, setup.net.clone());
    // The fixed pace, not the runtime's adaptive one: this checks the unique-name logic, and
    // with the adaptive pace a heal can wait for SWIM alone (lossless seeds 0..48: one heal
    // of 109 took 3.0014 s, against 1.496 s at most with the fixed pace; issue #17).
    sim.discovery = Discovery::FixedBeacon(setup.beacon);
    sim.fit_config = true;
    let mut run = Run {
        sim,
        procs: Vec::new(),
        next_name: 0,
        setup: setup.clone(),
        figures: Figures::default(),
    };
    for _ in 0..setup.min_live {
        run.fresh();
    }
    run.settle(Step::Fresh)?;
    for _ in 0..setup.steps {
        let step = run.pick();
        run.apply(step);
        run.settle(step)?;
    }
    Ok(run.figures)
}

impl Run {
    fn live(&self) -> Vec<usize> {
        self.sim.running().collect()
    }

    fn random<T: Copy>(&mut self, from: &[T]) -> T {
        from[self.sim.random(from.len())]
    }

    /// A step kind that makes sense now: keeps the live count within bounds.
    fn pick(&mut self) -> Step {
        let live = self.live().len();
        let stopped = self.stopped().len();
        let mut kinds = Vec::new();
        if live < self.setup.max_live {
            kinds.extend([Step::Fresh, Step::Duplicate, Step::Duplicate]);
            if stopped > 0 {
                kinds.extend([Step::Restart, Step::Restart]);
            }
        }
        if live > self.setup.min_live {
            kinds.extend([Step::Kill, Step::Kill, Step::Leave]);
        }
        kinds.push(if self.sim.partitioned() {
            Step::Heal
        } else {
            Step::Partition
        });
        self.random(&kinds)
    }

    fn apply(&mut self, step: Step) {
        self.figures.steps += 1;
        match step {
            Step::Fresh => self.fresh(),
            Step::Restart => self.restart(),
            Step::Duplicate => self.duplicate(),
            Step::Kill => {
                let v = self.random(&self.live());
                self.sim.crash(v);
            }
            Step::Leave => {
                let v = self.random(&self.live());
                self.sim.leave(v);
            }
            Step::Partition => {
                let live = self.live();
                let side: Vec<usize> = live
                    .into_iter()
                    .filter(|_| self.sim.random(2) == 0)
                    .collect();
                self.sim.partition(&[&side]);
            }
            Step::Heal => self.sim.heal(),
        }
        let live = self.live().len();
        self.figures.peak = self.figures.peak.max(live);
    }

    /// Stopped processes whose name no later process took over on their host.
    fn stopped(&self) -> Vec<usize> {
        (0..self.procs.len())
            .filter(|&i| self.sim.nodes[i].status != Status::Running)
            .filter(|&i| {
                !(i + 1..self.procs.len()).any(|j| {
                    self.procs[j].name == self.procs[i].name
                        && self.procs[j].host == self.procs[i].host
                })
            })
            .collect()
    }

    fn fresh(&mut self) {
        let name = format!("n{}", self.next_name);
        self.next_name += 1;
        let host = self.sim.random(self.setup.hosts);
        let group = self.random_group();
        self.claim(name, host, None, group);
    }

    /// A stopped process comes back under its name on its host, on its old address when
    /// nothing else took it (half the time: a fixed port), else on a new one.
    fn restart(&mut self) {
        let dead = self.random(&self.stopped());
        let Proc { name, host } = self.procs[dead].clone();
        let addr = self.sim.nodes[dead].membership.identity().addr;
        let free = !self
            .sim
            .running()
            .any(|j| self.sim.nodes[j].membership.identity().addr == addr);
        let at = (free && self.sim.random(2) == 0).then_some(dead);
        // A restarted host is on the side of the partition it was on.
        let group = self.sim.group(dead);
        self.claim(name, host, at, group);
    }

    /// A process on another host claims the name of a live one.
    fn duplicate(&mut self) {
        let holder = self.random(&self.live());
        let name = self.procs[holder].name.clone();
        let others: Vec<usize> = (0..self.setup.hosts)
            .filter(|&h| h != self.procs[holder].host)
            .collect();
        let host = self.random(&others);
        let group = self.random_group();
        if self.claim(name, host, None, group) {
            self.figures.duplicates_joined += 1;
        }
    }

    /// A side of the current partition, or the only group.
    fn random_group(&mut self) -> usize {
        if self.sim.partitioned() {
            self.sim.random(2)
        } else {
            0
        }
    }

    /// Starts a process under `name` unless a live holder of the name is reachable from
    /// `group` (the runtime's refusal at start); returns whether it started.
    fn claim(&mut self, name: String, host: usize, at: Option<usize>, group: usize) -> bool {
        let reachable: Vec<usize> = self
            .live()
            .into_iter()
            .filter(|&j| self.sim.group(j) == group)
            .collect();
        if reachable.iter().any(|&j| self.procs[j].name == name) {
            self.figures.refused += 1;
            return false;
        }
        let seed = (!reachable.is_empty()).then(|| self.random(&reachable));
        let i = self
            .sim
            .spawn(&name, &format!("host-{host}"), at, group, seed);
        assert_eq!(i, self.procs.len());
        self.procs.push(Proc { name, host });
        true
    }

    /// Runs the step's budget, measuring when the views converged; fails if they did not
    /// within the limit, or did not stay converged to the end of the budget.
    fn settle(&mut self, step: Step) -> Result<(), String> {
        let start = self.sim.now();
        let Some(took) = self.sim.run_until_cond(converged, self.setup.limit) else {
            return Err(self.describe(step, "no convergence"));
        };
        let end = start + self.setup.budget;
        if self.sim.now() < end {
            self.sim.run_until(end);
        }
        if !converged(&self.sim) {
            return Err(self.describe(step, "converged, then diverged within the budget"));
        }
        self.sim.assert_consistent();
        self.figures.times.entry(step).or_default().push(took);
        Ok(())
    }

    fn describe(&self, step: Step, what: &str) -> String {
        let mut s = format!(
            "{what} after {step:?} (step {}) within {:?}, at {:?}:\n",
            self.figures.steps,
            self.setup.limit,
            self.sim.now()
        );
        for i in self.live() {
            let want = expected(&self.sim, i);
            let got = &self.sim.nodes[i].view;
            if want != *got {
                s += &format!(
                    "  node {i} {:?} group {}: expected {:?}, sees {:?}\n",
                    self.sim.nodes[i].membership.identity(),
                    self.sim.group(i),
                    names(&self.sim, &want),
                    names(&self.sim, got),
                );
                let n = &self.sim.nodes[i];
                s += &format!("    errors {:?}, last events:\n", n.errors);
                for (t, e) in n.events.iter().rev().take(12) {
                    s += &format!("    {t:?} {e:?}\n");
                }
            }
        }
        s
    }
}

fn names(sim: &Sim, ids: &HashSet<u64>) -> Vec<String> {
    let mut v: Vec<String> = ids
        .iter()
        .map(|&id| match sim.index_of(id) {
            Some(i) => format!("{:?}", sim.nodes[i].membership.identity()),
            None => format!("?{id:x}"),
        })
        .collect();
    v.sort();
    v
}

/// The view node `i` should have: for every name held by a live process of its partition
/// side, other than its own, the newest such identity.
pub fn expected(sim: &Sim, i: usize) -> HashSet<u64> {
    let own = &sim.nodes[i].membership.identity().name;
    let mut newest: HashMap<&str, usize> = HashMap::new();
    for j in sim.running().filter(|&j| sim.group(j) == sim.group(i)) {
        let m = sim.nodes[j].membership.identity();
        if &m.name == own {
            continue;
        }
        let slot = newest.entry(m.name.as_str()).or_insert(j);
        if m.newer_than(sim.nodes[*slot].membership.identity()) {
            *slot = j;
        }
    }
    newest.values().map(|&j| sim.nodes[j].id).collect()
}

/// Whether every live process's view is what [`expected`] says.
pub fn converged(sim: &Sim) -> bool {
    sim.running().all(|i| sim.nodes[i].view == expected(sim, i))
}
