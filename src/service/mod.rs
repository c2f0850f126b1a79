//! labc's services (issue #16, DESIGN §11): programs installed into a services folder,
//! each described by a `service.toml` (or a bare executable), to be started and stopped
//! from anywhere on the LAN.
//!
//! This part reads and installs them: [`Manifest`] (the file format), [`search`] (what a
//! host has installed, with the problems of what it cannot use) and [`install`] /
//! [`uninstall`] (`mpreg install`, `mpreg uninstall`). Running and controlling them from
//! the cluster is still to come (issue #16 items 3-6).

mod folder;
mod install;
mod manifest;

#[cfg(test)]
mod tests;

pub use folder::{entry, folders, search, user_folder, Found, Service};
pub use install::{install, uninstall};
pub use manifest::{check_name, Manifest, ManifestError, Restart, DEFAULT_STOP_TIMEOUT, FILE_NAME};
