//! Installed services: the folders searched and what each entry of them is.
//!
//! A service is an entry of a services folder: a folder holding a `service.toml`, or a bare
//! executable file (a service named after the file, run with no arguments). Folders are
//! searched in order — the user's (`$XDG_CONFIG_HOME/mpreg/services`, else
//! `~/.config/mpreg/services`), `./services`, then any given explicitly — and the first
//! entry of a name wins. What cannot be used is reported, never fatal.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::manifest::{check_name, Manifest, ManifestError, FILE_NAME};

/// One installed service.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    /// Its name (the manifest's, else the entry's).
    pub name: String,
    /// The entry: its folder, or the executable file itself.
    pub path: PathBuf,
    /// Its manifest (the defaults for a bare executable).
    pub manifest: Manifest,
}

impl Service {
    /// The folder the service lives in (the entry itself, or the file's folder).
    pub fn folder(&self) -> &Path {
        if self.path.is_dir() {
            &self.path
        } else {
            self.path.parent().unwrap_or(Path::new("."))
        }
    }

    /// The program to run: the manifest's `command` resolved against the service's folder
    /// when it names a file there, else as written (absolute, or found on `PATH`).
    pub fn program(&self) -> PathBuf {
        let command = Path::new(&self.manifest.command);
        if command.is_absolute() {
            return command.to_path_buf();
        }
        let local = self.folder().join(command);
        // `bin/x` is always the folder's; a bare `x` is the folder's only if it is there.
        if local.is_file() || command.components().count() > 1 {
            local
        } else {
            command.to_path_buf()
        }
    }

    /// The working directory: the manifest's, relative to the folder, else the folder.
    pub fn working_dir(&self) -> PathBuf {
        match &self.manifest.working_dir {
            Some(d) => self.folder().join(d),
            None => self.folder().to_path_buf(),
        }
    }
}

/// What a search of the services folders found.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Found {
    /// Usable services, by folder order then name.
    pub services: Vec<Service>,
    /// Entries that cannot be used, with why.
    pub problems: Vec<ManifestError>,
}

impl Found {
    /// The service named `name`, if found.
    pub fn get(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// The user's services folder: `$XDG_CONFIG_HOME/mpreg/services`, else
/// `$HOME/.config/mpreg/services`; `None` without either variable.
pub fn user_folder() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        Some(x) => PathBuf::from(x),
        None => PathBuf::from(std::env::var_os("HOME").filter(|v| !v.is_empty())?).join(".config"),
    };
    Some(base.join("mpreg").join("services"))
}

/// The folders searched, in order: the user's, `./services`, then `extra`.
pub fn folders(extra: &[PathBuf]) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = user_folder().into_iter().collect();
    out.push(PathBuf::from("services"));
    out.extend(extra.iter().cloned());
    out
}

/// Every service in `folders` (missing folders are skipped: most hosts have none).
pub fn search(folders: &[PathBuf]) -> Found {
    let mut found = Found::default();
    let mut first: HashMap<String, PathBuf> = HashMap::new();
    for folder in folders {
        let Ok(read) = std::fs::read_dir(folder) else {
            continue;
        };
        let mut entries: Vec<PathBuf> = read.filter_map(|e| e.ok().map(|e| e.path())).collect();
        entries.sort();
        for path in entries {
            match entry(&path) {
                None => {}
                Some(Err(e)) => found.problems.push(e),
                Some(Ok(s)) => match first.get(&s.name) {
                    Some(earlier) => found.problems.push(ManifestError {
                        file: s.path.clone(),
                        problem: format!(
                            "service `{}` is already defined by {}; this one is ignored",
                            s.name,
                            earlier.display()
                        ),
                    }),
                    None => {
                        first.insert(s.name.clone(), s.path.clone());
                        found.services.push(s);
                    }
                },
            }
        }
    }
    found
}

/// The service of one folder entry; `None` for what is not meant as one (hidden files).
pub fn entry(path: &Path) -> Option<Result<Service, ManifestError>> {
    let file_name = path.file_name()?.to_string_lossy().into_owned();
    if file_name.starts_with('.') {
        return None;
    }
    let problem = |problem: String| {
        Some(Err(ManifestError {
            file: path.to_path_buf(),
            problem,
        }))
    };
    let manifest = if path.is_dir() {
        let file = path.join(FILE_NAME);
        if !file.is_file() {
            return problem(format!("a folder without a {FILE_NAME}"));
        }
        match Manifest::read(&file) {
            Ok(m) => m,
            Err(e) => return Some(Err(e)),
        }
    } else if is_executable(path) {
        Manifest::for_executable(path)
    } else {
        return problem(format!(
            "neither an executable file nor a folder with a {FILE_NAME}"
        ));
    };
    let name = manifest.name.clone().unwrap_or_else(|| file_name.clone());
    if let Err(e) = check_name(&name) {
        return problem(e);
    }
    Some(Ok(Service {
        name,
        path: path.to_path_buf(),
        manifest,
    }))
}

#[cfg(unix)]
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

#[cfg(not(unix))]
fn is_executable(path: &Path) -> bool {
    path.is_file()
}
