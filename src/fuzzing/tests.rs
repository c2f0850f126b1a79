//! The fuzz targets in the normal test suite: every seed, and every input the fuzzers
//! ever found (`fuzz/regressions/<target>/`, one file per finding), run through its
//! target, whose properties must hold.

use std::path::Path;

use super::{run, seeds, TARGETS};

#[test]
fn every_target_has_seeds_that_pass() {
    let seeds = seeds();
    for t in TARGETS {
        assert!(seeds.iter().any(|(s, _)| *s == t), "no seed for {t}");
    }
    for (t, input) in seeds {
        assert!(run(t, &input) || t == "gateway", "unknown target {t}");
    }
}

/// Every target has seeds in `fuzz/corpus/<target>/`; with `MPREG_WRITE_SEEDS=1` this
/// (re)writes them from [`seeds`] first:
/// `MPREG_WRITE_SEEDS=1 cargo test --lib fuzzing::tests::seed_corpora`.
#[test]
fn seed_corpora() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    if std::env::var_os("MPREG_WRITE_SEEDS").is_some() {
        let mut n = std::collections::HashMap::new();
        for (t, input) in seeds() {
            std::fs::create_dir_all(root.join(t)).expect("corpus folder");
            let i = n.entry(t).or_insert(0);
            std::fs::write(root.join(t).join(format!("seed-{i}")), input).expect("seed");
            *i += 1;
        }
    }
    for t in TARGETS {
        assert!(
            root.join(t).join("seed-0").is_file(),
            "no seed in fuzz/corpus/{t}"
        );
    }
}

#[test]
fn inputs_the_fuzzers_found_pass() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut count = 0;
    for t in TARGETS {
        let Ok(dir) = std::fs::read_dir(root.join(t)) else {
            continue;
        };
        for entry in dir {
            let path = entry.expect("readable folder").path();
            let input = std::fs::read(&path).expect("readable input");
            eprintln!("{t}: {}", path.display());
            run(t, &input);
            count += 1;
        }
    }
    eprintln!("{count} inputs replayed");
}
