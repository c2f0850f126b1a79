//! The local function table of one node: name → [`Function`], with a version that grows on
//! every change so peers can tell a stale catalog copy.

use std::collections::HashMap;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::function::{FnEntry, FnSpec, Function};

/// Functions served by this node.
#[derive(Debug, Default)]
pub struct Registry {
    /// Shared so that serving a call clones a pointer, not the description.
    functions: HashMap<String, Arc<Function>>,
    version: u64,
}

impl Registry {
    /// Every function collected at link time by `#[mpreg::register]`. Two with one name are
    /// an error naming both definitions.
    pub fn from_link_time() -> Result<Self> {
        let mut entries: Vec<&FnEntry> = inventory::iter::<FnEntry>.into_iter().collect();
        // inventory's order is unspecified; sort so errors and catalogs are deterministic.
        entries.sort_by_key(|e| (e.name, e.module, e.line));
        let mut reg = Registry::default();
        for e in entries {
            reg.insert(Function::from_entry(e))?;
        }
        Ok(reg)
    }

    /// Adds `f`; a second function with the same name is an error naming both.
    pub fn insert(&mut self, f: Function) -> Result<()> {
        if f.spec
            .name
            .starts_with(crate::runtime::workflow::RESERVED_PREFIX)
            || f.spec.name.is_empty()
        {
            return Err(Error::Config(format!(
                "cannot register `{}` ({}): names must be non-empty and not start with `{}`, which mpreg reserves",
                f.spec.name,
                f.origin,
                crate::runtime::workflow::RESERVED_PREFIX
            )));
        }
        if let Some(existing) = self.functions.get(&f.spec.name) {
            return Err(Error::DuplicateFunction {
                name: f.spec.name.clone(),
                first: existing.origin.clone(),
                second: f.origin.clone(),
            });
        }
        // Metrics count from this registration (a Function value can be registered on
        // several nodes of one process).
        let f = Function {
            served: Arc::default(),
            ..f
        };
        self.functions.insert(f.spec.name.clone(), Arc::new(f));
        self.version += 1;
        Ok(())
    }

    /// Removes `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let removed = self.functions.remove(name).is_some();
        if removed {
            self.version += 1;
        }
        removed
    }

    /// The function called `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<Function>> {
        self.functions.get(name)
    }

    /// Current version (number of changes so far).
    pub fn version(&self) -> u64 {
        self.version
    }

    /// Every function, in no particular order.
    pub(crate) fn functions(&self) -> impl Iterator<Item = &Arc<Function>> {
        self.functions.values()
    }

    /// Descriptions of all functions, sorted by name.
    pub fn specs(&self) -> Vec<FnSpec> {
        let mut v: Vec<FnSpec> = self
            .functions
            .values()
            .map(|f| FnSpec::clone(&f.spec))
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Names of all functions.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn duplicates_name_both_origins() {
        let mut r = Registry::default();
        r.insert(Function::new("add", |(a, b): (i64, i64)| a + b))
            .unwrap();
        let err = r
            .insert(Function::new("add", |(a,): (i64,)| a))
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "duplicate function `add`: registered by runtime registration of `add` and by runtime registration of `add`"
        );
        assert_eq!(r.version(), 1);
    }
}
