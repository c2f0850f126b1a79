use proptest::prelude::*;

use super::*;

fn spec(name: &str, visibility: Visibility, resources: &[&str]) -> FnSpec {
    FnSpec {
        name: name.into(),
        params: None,
        resources: resources.iter().map(|r| r.to_string()).collect(),
        visibility,
        idempotent: false,
    }
}

struct Fixture {
    names: Vec<String>,
    hosts: Vec<String>,
    tiers: Vec<Relation>,
    resources: Vec<Vec<String>>,
    specs: Vec<FnSpec>,
    loads: Vec<usize>,
}

impl Fixture {
    fn new() -> Self {
        Fixture {
            names: vec![],
            hosts: vec![],
            tiers: vec![],
            resources: vec![],
            specs: vec![],
            loads: vec![],
        }
    }
    fn add(mut self, name: &str, host: &str, tier: Relation, res: &[&str], spec: FnSpec) -> Self {
        self.names.push(name.into());
        self.hosts.push(host.into());
        self.tiers.push(tier);
        self.resources
            .push(res.iter().map(|r| r.to_string()).collect());
        self.specs.push(spec);
        self.loads.push(0);
        self
    }
    fn load(mut self, i: usize, n: usize) -> Self {
        self.loads[i] = n;
        self
    }
    fn providers(&self) -> Vec<Provider<'_>> {
        (0..self.names.len())
            .map(|i| Provider {
                name: &self.names[i],
                host: &self.hosts[i],
                tier: self.tiers[i],
                resources: &self.resources[i],
                spec: &self.specs[i],
                in_flight: self.loads[i],
            })
            .collect()
    }
}

fn route(locs: &[&str], scope: Scope, perspective: Perspective) -> Route {
    Route {
        locs: locs.iter().map(|l| l.to_string()).collect(),
        scope,
        perspective,
        policy: Policy::LeastLoaded,
    }
}

fn qualifying<'a>(q: &Query<'_>, ps: &[Provider<'a>]) -> Vec<&'a str> {
    ps.iter()
        .filter(|p| qualifies(q, p))
        .map(|p| p.name)
        .collect()
}

const NET: Visibility = Visibility::Network;

fn mpreg_layout() -> Fixture {
    Fixture::new()
        .add(
            "a",
            "h1",
            Relation::OtherHost,
            &["model-a", "dataset-1"],
            spec("train", NET, &[]),
        )
        .add(
            "b",
            "h2",
            Relation::OtherHost,
            &["model-b", "dataset-2"],
            spec("train", NET, &[]),
        )
}

#[test]
fn locs_select_the_node_whose_resources_are_a_superset() {
    let f = mpreg_layout();
    let ps = f.providers();
    let r = route(&["dataset-2"], Scope::Network, Perspective::Any);
    let q = Query {
        fun: "train",
        route: &r,
        origin_host: None,
    };
    assert_eq!(qualifying(&q, &ps), vec!["b"]);
    let r = route(&["model-a", "dataset-1"], Scope::Network, Perspective::Any);
    let q = Query {
        fun: "train",
        route: &r,
        origin_host: None,
    };
    assert_eq!(qualifying(&q, &ps), vec!["a"]);
    let r = route(&["model-a", "dataset-2"], Scope::Network, Perspective::Any);
    let q = Query {
        fun: "train",
        route: &r,
        origin_host: None,
    };
    assert!(qualifying(&q, &ps).is_empty());
}

#[test]
fn function_resources_count_as_offered() {
    let f = Fixture::new().add(
        "a",
        "h1",
        Relation::OtherHost,
        &[],
        spec("f", NET, &["gpu"]),
    );
    let r = route(&["gpu"], Scope::Network, Perspective::Any);
    let q = Query {
        fun: "f",
        route: &r,
        origin_host: None,
    };
    assert_eq!(qualifying(&q, &f.providers()), vec!["a"]);
}

#[test]
fn unmatched_locs_list_the_resource_sets_that_exist() {
    let f = mpreg_layout();
    let r = route(&["model-c"], Scope::Network, Perspective::Any);
    let q = Query {
        fun: "train",
        route: &r,
        origin_host: None,
    };
    let why = explain(&q, &f.providers());
    assert!(why.contains("[dataset-1, model-a]"), "{why}");
    assert!(why.contains("[dataset-2, model-b]"), "{why}");
}

#[test]
fn visibility_is_relative_to_the_original_caller() {
    let f = Fixture::new()
        .add(
            "me",
            "h1",
            Relation::SameNode,
            &[],
            spec("n", Visibility::Node, &[]),
        )
        .add(
            "twin",
            "h1",
            Relation::SameHost,
            &[],
            spec("h", Visibility::Host, &[]),
        )
        .add(
            "far",
            "h2",
            Relation::OtherHost,
            &[],
            spec("h", Visibility::Host, &[]),
        );
    let ps = f.providers();
    let r = Route::default();
    assert_eq!(
        qualifying(
            &Query {
                fun: "n",
                route: &r,
                origin_host: None
            },
            &ps
        ),
        vec!["me"]
    );
    assert_eq!(
        qualifying(
            &Query {
                fun: "h",
                route: &r,
                origin_host: None
            },
            &ps
        ),
        vec!["twin"]
    );
    // Forwarding for a caller on h2: only h2's host-visible provider, never node-visible ones.
    let q = Query {
        fun: "h",
        route: &r,
        origin_host: Some("h2"),
    };
    assert_eq!(qualifying(&q, &ps), vec!["far"]);
    let q = Query {
        fun: "n",
        route: &r,
        origin_host: Some("h1"),
    };
    assert!(qualifying(&q, &ps).is_empty());
    let why = explain(
        &Query {
            fun: "h",
            route: &r,
            origin_host: Some("h3"),
        },
        &ps,
    );
    assert!(why.contains("host-visible only"), "{why}");
}

#[test]
fn scope_limits_how_far_a_call_goes() {
    let f = Fixture::new()
        .add("me", "h1", Relation::SameNode, &[], spec("f", NET, &[]))
        .add("twin", "h1", Relation::SameHost, &[], spec("f", NET, &[]))
        .add("far", "h2", Relation::OtherHost, &[], spec("f", NET, &[]));
    let ps = f.providers();
    let at = |scope| {
        let r = route(&[], scope, Perspective::Any);
        qualifying(
            &Query {
                fun: "f",
                route: &r,
                origin_host: None,
            },
            &ps,
        )
    };
    assert_eq!(at(Scope::Node), vec!["me"]);
    assert_eq!(at(Scope::Host), vec!["me", "twin"]);
    assert_eq!(at(Scope::Network), vec!["me", "twin", "far"]);
}

#[test]
fn perspectives_restrict_to_a_host_or_a_node() {
    let f = Fixture::new()
        .add("a", "h1", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("b", "h2", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("c", "h2", Relation::OtherHost, &[], spec("f", NET, &[]));
    let ps = f.providers();
    let r = route(&[], Scope::Network, Perspective::Host("h2".into()));
    assert_eq!(
        qualifying(
            &Query {
                fun: "f",
                route: &r,
                origin_host: None
            },
            &ps
        ),
        vec!["b", "c"]
    );
    let r = route(&[], Scope::Network, Perspective::Node("a".into()));
    assert_eq!(
        qualifying(
            &Query {
                fun: "f",
                route: &r,
                origin_host: None
            },
            &ps
        ),
        vec!["a"]
    );
    let r = route(&[], Scope::Network, Perspective::Node("zz".into()));
    let q = Query {
        fun: "f",
        route: &r,
        origin_host: None,
    };
    assert!(explain(&q, &ps).contains("outside the node `zz`"));
}

fn no_rand() -> impl FnMut(usize) -> usize {
    |_| 0
}

#[test]
fn nearest_tier_wins_until_saturated() {
    let f = Fixture::new()
        .add("far", "h2", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("twin", "h1", Relation::SameHost, &[], spec("f", NET, &[]))
        .add("me", "h1", Relation::SameNode, &[], spec("f", NET, &[]));
    let c = Choice {
        spill_at: 4,
        turn: 0,
    };
    let pick = |f: &Fixture| {
        let ps = f.providers();
        ps[choose(&ps, Policy::LeastLoaded, c, &mut no_rand()).unwrap()]
            .name
            .to_string()
    };
    assert_eq!(pick(&f), "me");
    let f = f.load(2, 4);
    assert_eq!(pick(&f), "twin");
    let f = f.load(1, 9);
    assert_eq!(pick(&f), "far");
    // All saturated: still an answer, the least loaded of the two sampled.
    let f = f.load(0, 5);
    assert!(!pick(&f).is_empty());
}

#[test]
fn least_loaded_prefers_the_lower_of_two_samples() {
    let f = Fixture::new()
        .add("a", "h", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("b", "h", Relation::OtherHost, &[], spec("f", NET, &[]))
        .load(0, 3)
        .load(1, 1);
    let ps = f.providers();
    let c = Choice {
        spill_at: 100,
        turn: 0,
    };
    // rand always 0: samples a (index 0) and b (index 1): b is less loaded.
    assert_eq!(choose(&ps, Policy::LeastLoaded, c, &mut no_rand()), Some(1));
}

#[test]
fn round_robin_goes_in_name_order() {
    let f = Fixture::new()
        .add("c", "h", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("a", "h", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("b", "h", Relation::OtherHost, &[], spec("f", NET, &[]));
    let ps = f.providers();
    let order: Vec<&str> = (0..6)
        .map(|turn| {
            let c = Choice {
                spill_at: 100,
                turn,
            };
            ps[choose(&ps, Policy::RoundRobin, c, &mut no_rand()).unwrap()].name
        })
        .collect();
    assert_eq!(order, vec!["a", "b", "c", "a", "b", "c"]);
}

#[test]
fn random_uses_the_given_randomness() {
    let f = Fixture::new()
        .add("a", "h", Relation::OtherHost, &[], spec("f", NET, &[]))
        .add("b", "h", Relation::OtherHost, &[], spec("f", NET, &[]));
    let ps = f.providers();
    let c = Choice {
        spill_at: 100,
        turn: 0,
    };
    assert_eq!(choose(&ps, Policy::Random, c, &mut |_| 1), Some(1));
    assert_eq!(choose(&[], Policy::Random, c, &mut |_| 0), None);
}

#[test]
fn text_forms_round_trip_and_name_bad_values() {
    for s in ["node", "host", "network"] {
        assert_eq!(s.parse::<Scope>().unwrap().to_string(), s);
    }
    for s in ["least_loaded", "random", "round_robin"] {
        assert_eq!(s.parse::<Policy>().unwrap().to_string(), s);
    }
    let e = "planet".parse::<Scope>().unwrap_err();
    assert!(e.contains("`planet`") && e.contains("network"), "{e}");
}

fn arb_provider() -> impl Strategy<
    Value = (
        String,
        String,
        u8,
        Vec<String>,
        String,
        u8,
        Vec<String>,
        usize,
    ),
> {
    let res = prop::collection::vec(prop::sample::select(vec!["r1", "r2", "r3"]), 0..3)
        .prop_map(|v| v.into_iter().map(String::from).collect::<Vec<_>>());
    (
        prop::sample::select(vec!["n1", "n2", "n3", "n4"]).prop_map(String::from),
        prop::sample::select(vec!["h1", "h2"]).prop_map(String::from),
        0u8..3,
        res.clone(),
        prop::sample::select(vec!["f", "g"]).prop_map(String::from),
        0u8..3,
        res,
        0usize..6,
    )
}

fn relation_of(i: u8) -> Relation {
    [Relation::SameNode, Relation::SameHost, Relation::OtherHost][i as usize % 3]
}

fn visibility_of(i: u8) -> Visibility {
    [Visibility::Node, Visibility::Host, Visibility::Network][i as usize % 3]
}

proptest! {
    /// Whatever the cluster and the call, the chosen provider serves the function, admits the
    /// caller, is inside scope and perspective, and offers every loc; and when something
    /// qualifies, something is chosen.
    #[test]
    fn every_choice_qualifies(
        raw in prop::collection::vec(arb_provider(), 0..8),
        locs in prop::collection::vec(prop::sample::select(vec!["r1", "r2", "r3"]), 0..3),
        scope in 0u8..3,
        persp in 0u8..3,
        policy in 0u8..3,
        origin in prop::option::of(prop::sample::select(vec!["h1", "h2", "h3"])),
        seed in any::<u64>(),
        turn in any::<u64>(),
    ) {
        let specs: Vec<FnSpec> = raw
            .iter()
            .map(|r| FnSpec {
                name: r.4.clone(),
                params: None,
                resources: r.6.clone(),
                visibility: visibility_of(r.5),
                idempotent: false,
            })
            .collect();
        let ps: Vec<Provider<'_>> = raw
            .iter()
            .zip(&specs)
            .map(|(r, s)| Provider {
                name: &r.0,
                host: &r.1,
                tier: relation_of(r.2),
                resources: &r.3,
                spec: s,
                in_flight: r.7,
            })
            .collect();
        let route = Route {
            locs: locs.iter().map(|l| l.to_string()).collect(),
            scope: [Scope::Node, Scope::Host, Scope::Network][scope as usize],
            perspective: match persp {
                0 => Perspective::Any,
                1 => Perspective::Host("h1".into()),
                _ => Perspective::Node("n2".into()),
            },
            policy: [Policy::LeastLoaded, Policy::Random, Policy::RoundRobin][policy as usize],
        };
        let q = Query { fun: "f", route: &route, origin_host: origin };
        let cands: Vec<Provider<'_>> = ps.iter().filter(|p| qualifies(&q, p)).cloned().collect();
        let mut state = seed;
        let mut rand = |n: usize| {
            state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            ((state >> 33) as usize) % n
        };
        let picked = choose(&cands, route.policy, Choice { spill_at: 3, turn }, &mut rand);
        prop_assert_eq!(picked.is_some(), !cands.is_empty());
        if let Some(i) = picked {
            let p = &cands[i];
            let rel = q.relation(p);
            prop_assert_eq!(p.spec.name.as_str(), "f");
            prop_assert!(admits(p.spec.visibility, rel));
            prop_assert!(route.scope.contains(rel));
            prop_assert!(route.locs.iter().all(|l| p.resources.contains(l) || p.spec.resources.contains(l)));
            match &route.perspective {
                Perspective::Host(h) => prop_assert_eq!(p.host, h.as_str()),
                Perspective::Node(n) => prop_assert_eq!(p.name, n.as_str()),
                Perspective::Any => {}
            }
            // Nearest unsaturated tier: nobody unsaturated is strictly nearer.
            let rank = |r: Relation| r as u8;
            if p.in_flight < 3 {
                prop_assert!(!cands.iter().any(|o| o.in_flight < 3 && rank(o.tier) < rank(p.tier)));
            }
        } else {
            prop_assert!(!explain(&q, &ps).is_empty() || ps.iter().all(|p| p.spec.name != "f"));
        }
    }
}
