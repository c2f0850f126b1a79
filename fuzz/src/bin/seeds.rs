//! Writes `corpus/<target>/seed-<n>` for every seed input of `mpreg::fuzzing::seeds`, so the
//! fuzzers start from real encodings. Run from `fuzz/`: `cargo run --bin seeds`.

use std::fs;
use std::path::Path;

fn main() -> std::io::Result<()> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("corpus");
    let mut n = std::collections::HashMap::new();
    for (target, input) in mpreg::fuzzing::seeds() {
        let dir = root.join(target);
        fs::create_dir_all(&dir)?;
        let i = n.entry(target).or_insert(0);
        fs::write(dir.join(format!("seed-{i}")), input)?;
        *i += 1;
    }
    for (target, count) in n {
        println!("{target}: {count} seeds");
    }
    Ok(())
}
