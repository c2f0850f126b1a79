//! `mpreg install` and `mpreg uninstall` (issue #16 item 2) as a user runs them: into the
//! user's services folder (`XDG_CONFIG_HOME` points at a temporary one), checked at once,
//! with bad manifests refused naming the file and line.

#[path = "support/scratch.rs"]
mod scratch;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};

const MPREG: &str = env!("CARGO_BIN_EXE_mpreg");

/// A fresh empty folder, removed when the test passes.
fn scratch() -> scratch::Scratch {
    scratch::Scratch::new("cli-install")
}

fn mpreg(config: &Path, args: &[&str]) -> Output {
    Command::new(MPREG)
        .args(args)
        .env("XDG_CONFIG_HOME", config)
        .output()
        .expect("run mpreg")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn install_check_and_uninstall_from_the_command_line() {
    let d = scratch();
    let config = d.join("config");
    let src = d.join("camera");
    std::fs::create_dir_all(&src).unwrap();
    std::fs::write(
        src.join("service.toml"),
        "command = \"run.sh\"\nargs = [\"--fps\", \"30\"]\n",
    )
    .unwrap();
    std::fs::write(src.join("run.sh"), "#!/bin/sh\necho frame\n").unwrap();
    std::fs::set_permissions(src.join("run.sh"), std::fs::Permissions::from_mode(0o755)).unwrap();
    let installed = config.join("mpreg/services/camera");

    let o = mpreg(&config, &["install", src.to_str().unwrap()]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(
        text(&o).contains("installed service `camera`"),
        "{}",
        text(&o)
    );
    assert!(text(&o).contains("run.sh --fps 30"), "{}", text(&o));
    assert!(installed.join("service.toml").is_file());

    // Twice: refused, saying what to do.
    let o = mpreg(&config, &["install", src.to_str().unwrap()]);
    assert!(!o.status.success());
    assert!(text(&o).contains("mpreg uninstall camera"), "{}", text(&o));

    // Linked (-e) under another name; a bad manifest is refused with file and line.
    std::fs::write(
        src.join("service.toml"),
        "command = \"run.sh\"\nargz = []\n",
    )
    .unwrap();
    let o = mpreg(
        &config,
        &["install", "-e", src.to_str().unwrap(), "--name", "cam2"],
    );
    assert!(!o.status.success());
    let t = text(&o);
    assert!(
        t.contains("service.toml: line 2, column 1") && t.contains("argz"),
        "{t}"
    );
    assert!(
        !config.join("mpreg/services/cam2").exists(),
        "nothing left behind"
    );

    let o = mpreg(&config, &["uninstall", "camera"]);
    assert!(o.status.success(), "{}", text(&o));
    assert!(!installed.exists());
    let o = mpreg(&config, &["uninstall", "camera"]);
    assert!(!o.status.success());
    assert!(text(&o).contains("no service `camera`"), "{}", text(&o));
    let _ = std::fs::remove_dir_all(&d);
}
