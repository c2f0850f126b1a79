//! `mpreg install [-e] PATH [--name N]` and `mpreg uninstall NAME`: putting a service into
//! a services folder (a copy, or with `-e` a symbolic link, as labc does) and taking it out.
//! An installed entry is checked at once; one that is not a usable service is removed
//! again and the problem reported.

use std::path::{Path, PathBuf};

use super::folder::{entry, search, Service};
use crate::error::{Error, Result};

/// Installs `source` (a file or folder) into `folder` as `name` (default: its own name);
/// with `link`, as a symbolic link to it. Returns the service it makes.
pub fn install(source: &Path, name: Option<&str>, link: bool, folder: &Path) -> Result<Service> {
    let source = source
        .canonicalize()
        .map_err(|e| Error::io(format!("cannot install {}", source.display()), e))?;
    let entry_name = match name {
        Some(n) => n.to_string(),
        None => source
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| Error::Usage(format!("{} has no file name", source.display())))?,
    };
    super::manifest::check_name(&entry_name).map_err(Error::Usage)?;
    let target = folder.join(&entry_name);
    if target.symlink_metadata().is_ok() {
        return Err(Error::Usage(format!(
            "{} already exists: `mpreg uninstall {entry_name}` first",
            target.display()
        )));
    }
    std::fs::create_dir_all(folder).map_err(|e| {
        Error::io(
            format!("cannot create the services folder {}", folder.display()),
            e,
        )
    })?;
    let placed = if link {
        symlink(&source, &target)
    } else {
        copy(&source, &target)
    };
    placed.map_err(|e| {
        Error::io(
            format!(
                "cannot install {} as {}",
                source.display(),
                target.display()
            ),
            e,
        )
    })?;
    match check(&target, name, folder) {
        Ok(s) => Ok(s),
        Err(e) => {
            let _ = remove(&target);
            Err(e)
        }
    }
}

/// The installed entry as a service, or why it is not one (it is then removed by the caller).
fn check(target: &Path, name: Option<&str>, folder: &Path) -> Result<Service> {
    let service = match entry(target) {
        Some(Ok(s)) => s,
        Some(Err(e)) => return Err(Error::Usage(format!("not installed: {e}"))),
        None => {
            return Err(Error::Usage(format!(
                "not installed: {} is hidden",
                target.display()
            )))
        }
    };
    if let Some(n) = name.filter(|n| *n != service.name) {
        return Err(Error::Usage(format!(
            "not installed: its {} names it `{}`, not `{n}`",
            super::manifest::FILE_NAME,
            service.name
        )));
    }
    let others = search(&[folder.to_path_buf()]);
    if let Some(other) = others
        .services
        .iter()
        .find(|s| s.name == service.name && s.path != service.path)
    {
        return Err(Error::Usage(format!(
            "not installed: service `{}` is already installed as {}",
            service.name,
            other.path.display()
        )));
    }
    Ok(service)
}

/// Removes the service named `name` (or the entry of that file name) from `folder`;
/// returns what was removed. A linked service loses only its link.
pub fn uninstall(name: &str, folder: &Path) -> Result<PathBuf> {
    let found = search(&[folder.to_path_buf()]);
    let path = match found.get(name) {
        Some(s) => s.path.clone(),
        None => {
            let by_file = folder.join(name);
            if super::manifest::check_name(name).is_ok() && by_file.symlink_metadata().is_ok() {
                by_file
            } else {
                return Err(Error::Usage(format!(
                    "no service `{name}` in {}",
                    folder.display()
                )));
            }
        }
    };
    remove(&path).map_err(|e| Error::io(format!("cannot remove {}", path.display()), e))?;
    Ok(path)
}

fn remove(path: &Path) -> std::io::Result<()> {
    let meta = path.symlink_metadata()?;
    if meta.is_dir() {
        std::fs::remove_dir_all(path)
    } else {
        std::fs::remove_file(path)
    }
}

/// Copies a file (keeping its permissions) or a folder tree; links inside are copied as
/// links.
fn copy(from: &Path, to: &Path) -> std::io::Result<()> {
    let meta = from.symlink_metadata()?;
    if meta.file_type().is_symlink() {
        return symlink(&std::fs::read_link(from)?, to);
    }
    if !meta.is_dir() {
        return std::fs::copy(from, to).map(|_| ());
    }
    std::fs::create_dir(to)?;
    for e in std::fs::read_dir(from)? {
        let e = e?;
        copy(&e.path(), &to.join(e.file_name()))?;
    }
    Ok(())
}

#[cfg(unix)]
fn symlink(from: &Path, to: &Path) -> std::io::Result<()> {
    std::os::unix::fs::symlink(from, to)
}

#[cfg(not(unix))]
fn symlink(_from: &Path, _to: &Path) -> std::io::Result<()> {
    Err(std::io::Error::other(
        "linked installs (-e) need a Unix system",
    ))
}
