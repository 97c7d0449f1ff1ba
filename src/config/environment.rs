//! The variables `${VAR}` in a config file may name, passed in rather than read by the parser.
//!
//! Parsing takes its inputs and returns data (linkerd2-proxy's `parse_config<S: Strings>`): the
//! process environment is read once, at the edge, by whoever loads a config, so parsing is pure
//! and a test can give any variables without touching the process environment.

use std::collections::HashMap;

/// Variable name → value, for `${VAR}` expansion in plain scalars.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Environment {
    vars: HashMap<String, String>,
}

impl Environment {
    /// No variables: every `${VAR}` is an error naming it.
    pub fn empty() -> Self {
        Environment::default()
    }

    /// The process environment, as it is now. Variables whose name or value is not UTF-8 are
    /// left out (a `${VAR}` naming one is then reported as unset).
    pub fn from_process() -> Self {
        std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))).collect()
    }

    /// Adds or replaces one variable.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.vars.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.vars.get(name).map(String::as_str)
    }

    pub(super) fn to_properties(&self) -> HashMap<String, String> {
        self.vars.clone()
    }
}

impl FromIterator<(String, String)> for Environment {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        Environment { vars: iter.into_iter().collect() }
    }
}

/// Names only: values may be secrets.
impl std::fmt::Debug for Environment {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut names: Vec<&str> = self.vars.keys().map(String::as_str).collect();
        names.sort_unstable();
        f.debug_struct("Environment").field("names", &names).finish()
    }
}
