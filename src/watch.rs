//! Reloading when the config file, the console file, or a secret or TLS file they name, changes
//! on disk.
//!
//! Editors and Kubernetes replace files rather than write them: vim saves by rename, `mv` puts a
//! new inode in place, and a ConfigMap volume swaps its `..data` symlink to a new timestamped
//! folder. So the watcher watches *folders* (which survive all of these), not files, and treats
//! every event in them as "something may have changed". After a burst of events goes quiet it
//! reads the config and the files it names; only if their bytes differ from the last attempt does
//! it reload, through the same path as SIGHUP and `/-/reload`. A slow poll backs up the events
//! in case a filesystem does not deliver them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use notify::{RecommendedWatcher, RecursiveMode, Watcher};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::fingerprint::fnv1a;
use crate::server::AppState;
use crate::snapshot::Snapshot;

/// Events closer together than this are one change.
const QUIET: Duration = Duration::from_millis(200);
/// A burst is cut off after this long, so a file written continuously still reloads.
const MAX_BURST: Duration = Duration::from_secs(2);
/// Files are compared this often even without events.
const POLL: Duration = Duration::from_secs(15);

/// Starts watching; the returned task runs until aborted.
pub fn start(state: Arc<AppState>) -> notify::Result<JoinHandle<()>> {
    let (tx, rx) = mpsc::unbounded_channel();
    let watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = tx.send(());
        }
    })?;
    let mut folders = Folders { watcher, watched: HashSet::new() };
    let snapshot = state.reloader.snapshot();
    folders.arm(&snapshot);
    // Taken now, from what was loaded: a change made before the task first runs is still seen.
    let loaded = fingerprint(&snapshot, snapshot.hash, snapshot.console.disk_hash);
    Ok(tokio::spawn(run(state, folders, rx, loaded)))
}

struct Folders {
    watcher: RecommendedWatcher,
    watched: HashSet<PathBuf>,
}

impl Folders {
    /// Watches the folder of the config file and of every file it names (new ones only).
    fn arm(&mut self, snapshot: &Snapshot) {
        let console = snapshot.console.file.path().map(Path::to_owned);
        let files = std::iter::once(&snapshot.source).chain(&snapshot.referenced_files).chain(console.as_ref());
        for file in files {
            let folder = match file.parent() {
                Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
                _ => PathBuf::from("."),
            };
            if self.watched.contains(&folder) {
                continue;
            }
            match self.watcher.watch(&folder, RecursiveMode::NonRecursive) {
                Ok(()) => {
                    tracing::debug!(folder = %folder.display(), "watching for config changes");
                    self.watched.insert(folder);
                }
                Err(e) => {
                    tracing::warn!(folder = %folder.display(), error = %e, "cannot watch folder; relying on polling")
                }
            }
        }
    }
}

async fn run(state: Arc<AppState>, mut folders: Folders, mut events: mpsc::UnboundedReceiver<()>, loaded: u64) {
    let mut last = loaded;
    loop {
        tokio::select! {
            event = events.recv() => {
                if event.is_none() {
                    return;
                }
                settle(&mut events).await;
            }
            () = tokio::time::sleep(POLL) => {}
        }
        let snapshot = state.reloader.snapshot();
        let console_hash = snapshot.console.file.path().map_or(u64::MAX, read_hash);
        let current = fingerprint(&snapshot, read_hash(&snapshot.source), console_hash);
        if current == last {
            continue;
        }
        last = current;
        tracing::info!("config or a file it names changed on disk; reloading");
        // Errors are logged and counted by the reloader; the running config stays.
        if state.reload().await.is_ok() {
            folders.arm(&state.reloader.snapshot());
            // The new config may name other files: compare against what was actually loaded.
            let snapshot = state.reloader.snapshot();
            last = fingerprint(&snapshot, snapshot.hash, snapshot.console.disk_hash);
        }
    }
}

/// Waits until events stop for `QUIET`, or `MAX_BURST` has passed.
async fn settle(events: &mut mpsc::UnboundedReceiver<()>) {
    let deadline = tokio::time::Instant::now() + MAX_BURST;
    while let Ok(Some(())) =
        tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + QUIET), events.recv()).await
    {}
}

/// A hash of the config file's bytes (`config_hash`: as loaded, or as on disk now), of the
/// console file's (likewise) and of every file they name, as on disk now (missing files hash as
/// such).
fn fingerprint(snapshot: &Snapshot, config_hash: u64, console_hash: u64) -> u64 {
    let mut all = config_hash.to_le_bytes().to_vec();
    all.extend_from_slice(&console_hash.to_le_bytes());
    for file in &snapshot.referenced_files {
        all.extend_from_slice(&read_hash(file).to_le_bytes());
    }
    fnv1a(&all)
}

fn read_hash(file: &Path) -> u64 {
    match std::fs::read(file) {
        Ok(bytes) => fnv1a(&bytes),
        Err(_) => u64::MAX,
    }
}
