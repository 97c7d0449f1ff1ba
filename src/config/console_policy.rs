//! `console:` in the config file: what receivers edited in the console may do — which folders
//! their files may come from (none by default) and how many there may be.

use std::path::PathBuf;

use serde_saphyr::Spanned;

use super::issues::Issues;
use super::raw::RawConsole;

/// The receivers this console may hold; 100 unless `console.max_receivers` says otherwise.
pub const DEFAULT_MAX_RECEIVERS: usize = 100;

/// `console:` — what receivers edited in the console may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsolePolicy {
    /// Folders (absolute, as written after resolving against the config file's folder) whose
    /// files a console receiver may name. Empty: it may name none.
    pub allowed_file_dirs: Vec<PathBuf>,
    /// Receivers the console may create at most.
    pub max_receivers: usize,
}

impl Default for ConsolePolicy {
    fn default() -> Self {
        ConsolePolicy { allowed_file_dirs: Vec::new(), max_receivers: DEFAULT_MAX_RECEIVERS }
    }
}

/// Validates `console:`.
pub(super) fn policy(issues: &mut Issues, raw: Option<&Spanned<RawConsole>>) -> ConsolePolicy {
    let mut policy = ConsolePolicy::default();
    let Some(spanned) = raw else {
        return policy;
    };
    let at = &spanned.referenced;
    for (index, dir) in spanned.value.allowed_file_dirs.iter().enumerate() {
        let field = format!("console.allowed_file_dirs[{index}]");
        let resolved = issues.resolve(dir);
        match resolved.canonicalize() {
            Ok(dir) if dir.is_dir() && dir.parent().is_some() => policy.allowed_file_dirs.push(dir),
            Ok(_) => issues.add(Some(at), field, format!("{dir:?} is not a folder below the root")),
            Err(e) => issues.add(Some(at), field, format!("cannot use {}: {e}", resolved.display())),
        }
    }
    match spanned.value.max_receivers {
        Some(0) => issues.add(Some(at), "console.max_receivers", "must be greater than 0"),
        Some(n) => policy.max_receivers = n,
        None => {}
    }
    policy
}
