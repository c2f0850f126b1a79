//! labc's services (issue #16, DESIGN §11): programs installed into a services folder,
//! each described by a `service.toml` (or a bare executable), started, stopped and watched
//! from anywhere on the LAN.
//!
//! [`Manifest`] is the file format, [`search`] finds what a host has installed (with the
//! problems of what it cannot use), [`install`] / [`uninstall`] are `mpreg install` and
//! `mpreg uninstall`. A serving node's controller (`controller`, `supervise`, `process`)
//! runs them; its answers are the shapes in this module ([`HostServices`],
//! [`ServiceStatus`], [`Stopped`], [`Logs`]), asked through `mpreg services|start|stop|logs`
//! or [`Target::start_service`](crate::Target::start_service) and its siblings.

mod controller;
mod folder;
mod install;
mod manifest;
mod process;
mod ring;
mod status;
mod supervise;

#[cfg(test)]
mod lifecycle_tests;
// The integration tests' scratch folder, shared so the unit tests clean up the same way.
#[cfg(test)]
#[path = "../../tests/support/scratch.rs"]
mod scratch;
#[cfg(test)]
mod tests;

pub use controller::Stopped;
pub(crate) use controller::{Controller, View};
pub use folder::{entry, folders, search, user_folder, Found, Service};
pub use install::{install, uninstall};
pub use manifest::{
    check_name, Manifest, ManifestError, Ready, Restart, DEFAULT_START_TIMEOUT,
    DEFAULT_STOP_TIMEOUT, FILE_NAME,
};
pub use ring::{LINE_BYTES, LOG_LINES};
pub use status::{HostServices, LogLine, Logs, ServiceStatus, State};
