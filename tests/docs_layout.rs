//! The crate docs' `# Layout` section (src/lib.rs) matches the tree (issue #14 item 16):
//! every file or folder it names exists, and every file and folder of `src/` is named.

use std::path::{Path, PathBuf};

/// The text of the `# Layout` section of the crate docs.
fn layout_section() -> String {
    let lib = std::fs::read_to_string(root().join("src/lib.rs")).unwrap();
    let docs: Vec<&str> = lib
        .lines()
        .map_while(|l| l.strip_prefix("//!"))
        .map(str::trim_start)
        .collect();
    let start = docs
        .iter()
        .position(|l| *l == "# Layout")
        .expect("src/lib.rs has a `# Layout` section");
    docs[start + 1..]
        .iter()
        .take_while(|l| !l.starts_with('#'))
        .copied()
        .collect::<Vec<_>>()
        .join("\n")
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `code` spans of `text` that name a file or a folder (`x.rs`, `a/b.md`, `dir/`).
fn named_paths(text: &str) -> Vec<&str> {
    text.split('`')
        .skip(1)
        .step_by(2)
        .filter(|t| !t.contains(' '))
        .filter(|t| t.ends_with(".rs") || t.ends_with(".md") || t.ends_with('/'))
        .collect()
}

/// Every file and folder under `dir`, relative to the repository root, skipping build
/// output and VCS data.
fn tree(dir: &Path, out: &mut Vec<(String, bool)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if matches!(name.as_str(), "target" | ".git") {
            continue;
        }
        let rel = path
            .strip_prefix(root())
            .unwrap()
            .to_string_lossy()
            .to_string();
        let is_dir = path.is_dir();
        out.push((rel, is_dir));
        if is_dir {
            tree(&path, out);
        }
    }
}

#[test]
fn every_path_the_layout_names_exists() {
    let mut all = Vec::new();
    tree(&root(), &mut all);
    let layout = layout_section();
    let missing: Vec<&str> = named_paths(&layout)
        .into_iter()
        .filter(|named| {
            let (want, dir) = match named.strip_suffix('/') {
                Some(d) => (d, true),
                None => (*named, false),
            };
            // Names are relative to src/ (`runtime/route.rs`, `mod.rs` of some module)
            // or, outside it, to the repository (`macros/`, `docs/gateway.md`).
            !all.iter().any(|(rel, is_dir)| {
                *is_dir == dir
                    && (rel == want
                        || (rel.starts_with("src/") && rel.ends_with(&format!("/{want}"))))
            })
        })
        .collect();
    assert!(
        missing.is_empty(),
        "the Layout section of src/lib.rs names what does not exist: {missing:?}"
    );
}

#[test]
fn the_layout_names_every_file_and_folder_of_src() {
    let layout = layout_section();
    let named = named_paths(&layout);
    let mut unnamed = Vec::new();
    for entry in std::fs::read_dir(root().join("src")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let spelled = if path.is_dir() {
            format!("{name}/")
        } else {
            name.clone()
        };
        let found = named.contains(&spelled.as_str())
            || named.contains(&format!("src/{spelled}").as_str())
            // A public module may be named by its link instead: [`proto`].
            || (path.is_dir() && layout.contains(&format!("[`{name}`]")));
        if !found {
            unnamed.push(name);
        }
    }
    unnamed.sort();
    assert!(
        unnamed.is_empty(),
        "src/ has entries the Layout section of src/lib.rs does not name; add a line on \
         each one's job: {unnamed:?}"
    );
}
