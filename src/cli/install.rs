//! `mpreg install [-e] PATH [--name N]` and `mpreg uninstall NAME`: services in the user's
//! services folder (labc's `labc install`).

use std::path::PathBuf;

use clap::Args;
use mpreg::service;
use mpreg::Error;

/// Arguments of `mpreg install`.
#[derive(Debug, Args)]
pub struct InstallArgs {
    /// A folder with a `service.toml`, or an executable file.
    path: PathBuf,
    /// Link to PATH instead of copying it (edits to it then take effect at the next start).
    #[arg(short = 'e', long = "editable")]
    editable: bool,
    /// Install under this name (default: PATH's file name).
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Install into DIR instead of the user's services folder
    /// ($XDG_CONFIG_HOME/mpreg/services, else ~/.config/mpreg/services).
    #[arg(long = "services-dir", value_name = "DIR")]
    services_dir: Option<PathBuf>,
}

/// Arguments of `mpreg uninstall`.
#[derive(Debug, Args)]
pub struct UninstallArgs {
    /// The service's name.
    name: String,
    /// Remove it from DIR instead of the user's services folder.
    #[arg(long = "services-dir", value_name = "DIR")]
    services_dir: Option<PathBuf>,
}

/// The folder to install into or remove from.
fn folder(given: Option<PathBuf>) -> mpreg::Result<PathBuf> {
    given.or_else(service::user_folder).ok_or_else(|| {
        Error::Usage(
            "no services folder: set HOME or XDG_CONFIG_HOME, or pass --services-dir".into(),
        )
    })
}

pub fn install(a: InstallArgs) -> mpreg::Result<()> {
    let into = folder(a.services_dir)?;
    let s = service::install(&a.path, a.name.as_deref(), a.editable, &into)?;
    let how = if a.editable { "linked" } else { "copied" };
    let mut command = vec![s.program().display().to_string()];
    command.extend(s.manifest.args.iter().cloned());
    println!(
        "installed service `{}` ({how} to {}): runs {}",
        s.name,
        s.path.display(),
        command.join(" ")
    );
    Ok(())
}

pub fn uninstall(a: UninstallArgs) -> mpreg::Result<()> {
    let from = folder(a.services_dir)?;
    let removed = service::uninstall(&a.name, &from)?;
    println!(
        "uninstalled service `{}` ({} removed)",
        a.name,
        removed.display()
    );
    Ok(())
}
