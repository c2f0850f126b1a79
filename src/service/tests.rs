//! Searching services folders and installing into them, on temporary folders.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use super::*;

/// A fresh empty folder for one test, removed when it passes.
fn scratch(test: &str) -> super::scratch::Scratch {
    super::scratch::Scratch::new(&format!("service-{test}"))
}

fn write(path: &Path, text: &str, mode: u32) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn folders_hold_manifest_services_bare_executables_and_reported_problems() {
    let d = scratch("search");
    let a = d.join("a");
    write(
        &a.join("camera/service.toml"),
        "command = \"run.sh\"\ndescription = \"cam\"\n",
        0o644,
    );
    write(&a.join("camera/run.sh"), "#!/bin/sh\n", 0o755);
    write(&a.join("blink"), "#!/bin/sh\n", 0o755);
    write(&a.join("notes.txt"), "hello", 0o644);
    write(
        &a.join("broken/service.toml"),
        "command = \"x\"\nrestrat = 1\n",
        0o644,
    );
    std::fs::create_dir_all(a.join("empty")).unwrap();
    write(&a.join(".hidden"), "", 0o755);
    let b = d.join("b");
    write(&b.join("blink"), "#!/bin/sh\n", 0o755);

    let found = search(&[a.clone(), b.clone(), d.join("missing")]);
    let names: Vec<&str> = found.services.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["blink", "camera"]);
    let camera = found.get("camera").unwrap();
    assert_eq!(camera.program(), a.join("camera/run.sh"));
    assert_eq!(camera.working_dir(), a.join("camera"));
    assert_eq!(found.get("blink").unwrap().program(), a.join("blink"));

    let problems: Vec<String> = found.problems.iter().map(|p| p.to_string()).collect();
    assert_eq!(problems.len(), 4, "{problems:#?}");
    let about = |what: &str| {
        problems
            .iter()
            .find(|p| p.contains(what))
            .cloned()
            .unwrap_or_default()
    };
    assert!(
        about("broken").contains("line 2, column 1") && about("broken").contains("restrat"),
        "{problems:#?}"
    );
    assert!(
        about("empty").contains("without a service.toml"),
        "{problems:#?}"
    );
    assert!(
        about("notes.txt").contains("neither an executable"),
        "{problems:#?}"
    );
    assert!(
        about("b/blink").contains("already defined by"),
        "{problems:#?}"
    );
}

#[test]
fn commands_resolve_against_the_folder_else_the_path() {
    let d = scratch("program");
    write(
        &d.join("svc/service.toml"),
        "command = \"python3\"\nargs = [\"x.py\"]\n",
        0o644,
    );
    let s = entry(&d.join("svc")).unwrap().unwrap();
    assert_eq!(
        s.program(),
        PathBuf::from("python3"),
        "not in the folder: from PATH"
    );
    write(
        &d.join("svc2/service.toml"),
        "command = \"bin/tool\"\nworking_dir = \"data\"\n",
        0o644,
    );
    let s = entry(&d.join("svc2")).unwrap().unwrap();
    assert_eq!(s.program(), d.join("svc2/bin/tool"));
    assert_eq!(s.working_dir(), d.join("svc2/data"));
}

#[test]
fn install_copies_or_links_checks_and_uninstall_removes() {
    let d = scratch("install");
    let into = d.join("services");
    write(
        &d.join("src/camera/service.toml"),
        "command = \"run.sh\"\n",
        0o644,
    );
    write(&d.join("src/camera/run.sh"), "#!/bin/sh\n", 0o755);
    write(&d.join("src/blink.sh"), "#!/bin/sh\n", 0o755);

    let s = install(&d.join("src/camera"), None, false, &into).unwrap();
    assert_eq!(
        (s.name.as_str(), s.path.clone()),
        ("camera", into.join("camera"))
    );
    assert!(
        into.join("camera/run.sh")
            .metadata()
            .unwrap()
            .permissions()
            .mode()
            & 0o111
            != 0,
        "modes kept"
    );
    let s = install(&d.join("src/blink.sh"), Some("blink"), true, &into).unwrap();
    assert!(s.path.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(search(std::slice::from_ref(&into)).services.len(), 2);

    // Taken names, and what is not a service, are refused and leave nothing behind.
    let e = install(&d.join("src/camera"), None, false, &into)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already exists"), "{e}");
    write(&d.join("src/readme.txt"), "hi", 0o644);
    let e = install(&d.join("src/readme.txt"), None, false, &into)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not installed") && e.contains("neither an executable"),
        "{e}"
    );
    assert!(!into.join("readme.txt").exists());
    write(
        &d.join("src/named/service.toml"),
        "name = \"other\"\ncommand = \"x\"\n",
        0o644,
    );
    let e = install(&d.join("src/named"), Some("named2"), false, &into)
        .unwrap_err()
        .to_string();
    assert!(e.contains("names it `other`"), "{e}");
    assert!(!into.join("named2").exists());
    write(
        &d.join("src/dup/service.toml"),
        "name = \"camera\"\ncommand = \"x\"\n",
        0o644,
    );
    let e = install(&d.join("src/dup"), None, false, &into)
        .unwrap_err()
        .to_string();
    assert!(e.contains("already installed"), "{e}");
    assert!(!into.join("dup").exists());
    let e = install(&d.join("src/camera"), Some("../x"), false, &into)
        .unwrap_err()
        .to_string();
    assert!(e.contains("bad service name"), "{e}");

    // Uninstall: a link loses only the link.
    assert_eq!(uninstall("blink", &into).unwrap(), into.join("blink"));
    assert!(d.join("src/blink.sh").exists());
    uninstall("camera", &into).unwrap();
    assert!(search(std::slice::from_ref(&into)).services.is_empty());
    let e = uninstall("camera", &into).unwrap_err().to_string();
    assert!(e.contains("no service `camera`"), "{e}");
}
