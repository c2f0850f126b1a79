//! A fresh folder for one test, removed when the test passes and kept (with its path printed)
//! when it fails. Tests that install services copy a whole debug build of a program into it,
//! over 100 MB each: left behind, a few CI runs fill the temp disk.

use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A new empty folder `mpreg-NAME-PID-N` under the temp dir (N counts this process's
/// folders, so tests running in parallel never share one), removed on drop unless the
/// thread is panicking (a failed test's files are what one reads next).
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates the folder, emptying what an earlier run with the same pid left.
    pub fn new(name: &str) -> Scratch {
        static MADE: AtomicUsize = AtomicUsize::new(0);
        let n = MADE.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let path = std::env::temp_dir().join(format!("mpreg-{name}-{pid}-{n}"));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create the scratch folder {}: {e}", path.display()));
        Scratch { path }
    }
}

impl Deref for Scratch {
    type Target = Path;

    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for Scratch {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("scratch folder kept: {}", self.path.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.path);
        }
    }
}
