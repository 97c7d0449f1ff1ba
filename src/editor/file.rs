//! The console file on disk: read (for handlers, off the runtime's threads), written atomically,
//! never over a hand edit made since it was read, and probed for whether it can be written.
//!
//! Writes are atomic: a temporary file in the same folder (mode 0600), fsync, rename over the
//! file, fsync the folder. A `kill -9` at any point leaves the old file or the new one.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use super::document::Document;
use crate::config::ConsoleFile;

/// Why the console file could not be read as a document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadError {
    /// It cannot be read (or the blocking task failed).
    Unreadable(String),
    /// It is not a document of receivers: fix it by hand first, an edit must not overwrite what
    /// someone wrote.
    Broken(String),
}

/// Why a save wrote nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteError {
    /// The file changed on disk since the edit read it (a hand edit: API edits are serialized).
    Changed(String),
    /// It could not be read or written.
    Io(String),
}

/// The console file's text; a file that does not exist yet is empty. Blocking.
pub fn read_text(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        read => read,
    }
}

/// The console file as a document, and its text, read on a blocking thread (a handler must not
/// block the runtime on the disk). No file: an empty document.
pub async fn read_document(file: &ConsoleFile) -> Result<(Document, String), ReadError> {
    let Some(path) = file.path().map(Path::to_owned) else {
        return Ok((Document::default(), String::new()));
    };
    tokio::task::spawn_blocking(move || {
        let text =
            read_text(&path).map_err(|e| ReadError::Unreadable(format!("cannot read {}: {e}", path.display())))?;
        let document = Document::parse(&text).map_err(|e| {
            ReadError::Broken(format!("the console file {} is broken ({e}): fix it by hand first", path.display()))
        })?;
        Ok((document, text))
    })
    .await
    .map_err(|e| ReadError::Unreadable(format!("read task failed: {e}")))?
}

/// Writes `text` over the console file if it still holds `on_disk` (the text the edit started
/// from), on a blocking thread.
pub async fn write_if_unchanged(path: &Path, on_disk: &str, text: String) -> Result<(), WriteError> {
    let (path, on_disk) = (path.to_owned(), on_disk.to_owned());
    tokio::task::spawn_blocking(move || {
        let now = read_text(&path).map_err(|e| WriteError::Io(format!("cannot read {}: {e}", path.display())))?;
        if now != on_disk {
            return Err(WriteError::Changed(format!(
                "{} changed on disk while this edit was being made (edited by hand?): nothing was written; reload and try again",
                path.display()
            )));
        }
        write_atomically(&path, &text).map_err(|e| WriteError::Io(format!("cannot write {}: {e}", path.display())))
    })
    .await
    .map_err(|e| WriteError::Io(format!("save task failed: {e}")))?
}

/// The console file as a reload finds it. Blocking: the reloader runs off the runtime.
#[derive(Debug)]
pub struct OnDisk {
    /// Its bytes' hash (`u64::MAX`: no file, or unreadable), for the watcher.
    pub hash: u64,
    /// When it was last modified.
    pub changed_at: Option<SystemTime>,
    /// Its text (empty: no file yet), or why it cannot be read.
    pub text: Result<String, String>,
}

/// Reads the console file for a reload.
pub fn read_on_disk(path: &Path) -> OnDisk {
    let changed_at = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let (hash, text) = match std::fs::read(path) {
        Ok(bytes) => (
            crate::fingerprint::fnv1a(&bytes),
            String::from_utf8(bytes).map_err(|_| "file is not valid UTF-8".to_owned()),
        ),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => (u64::MAX, Ok(String::new())),
        Err(e) => (u64::MAX, Err(format!("cannot read file: {e}"))),
    };
    OnDisk { hash, changed_at, text }
}

/// The text of the config file at `path` if it is still the one hashed `hash` when loaded (a
/// file changed since then, or unreadable, gives `None`). Blocking: for the reloader.
pub fn loaded_text(path: &Path, hash: u64) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    (crate::fingerprint::fnv1a(text.as_bytes()) == hash).then_some(text)
}

/// Writes `text` to `path` atomically, readable by the owner only (it may hold secrets).
pub fn write_atomically(path: &Path, text: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let folder = folder_of(path);
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("console-receivers.yml");
    let temporary = folder.join(format!(".{name}.{}.{:08x}.tmp", std::process::id(), fastrand::u32(..)));
    let result = (|| {
        let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&temporary)?;
        file.write_all(text.as_bytes())?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&temporary, path)?;
        std::fs::File::open(&folder)?.sync_all()
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&temporary);
    }
    result
}

/// Checks that the console file's folder can be written (creating it if needed); if not, the
/// file is still read but editing is off, saying why. Blocking: called once, at start.
pub fn probe(file: ConsoleFile) -> ConsoleFile {
    let ConsoleFile::At(path) = &file else {
        return file;
    };
    let folder = folder_of(path);
    remove_leftovers(path);
    let writable = std::fs::create_dir_all(&folder).and_then(|()| {
        let probe = folder.join(format!(".amrelay-probe.{}", std::process::id()));
        std::fs::File::create(&probe)?;
        std::fs::remove_file(&probe)
    });
    match writable {
        Ok(()) => file,
        Err(e) => {
            let why = format!("editing in the console is off: cannot write in {} ({e})", folder.display());
            ConsoleFile::ReadOnly(path.clone(), why)
        }
    }
}

/// Removes temporary files a write interrupted by a crash left beside the console file (the
/// file itself is whole: the rename never happened).
fn remove_leftovers(path: &Path) {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return;
    };
    let Ok(entries) = std::fs::read_dir(folder_of(path)) else {
        return;
    };
    let prefix = format!(".{name}.");
    for entry in entries.flatten() {
        let file_name = entry.file_name();
        let file_name = file_name.to_string_lossy();
        if file_name.starts_with(&prefix) && file_name.ends_with(".tmp") {
            let _ = std::fs::remove_file(entry.path());
        }
    }
}

/// The folder holding `path` (`.` for a bare file name).
fn folder_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(folder) if !folder.as_os_str().is_empty() => folder.to_owned(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_are_atomic_and_private() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console-receivers.yml");
        write_atomically(&path, "receivers: []\n").unwrap();
        write_atomically(&path, "receivers: [{name: a}]\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "receivers: [{name: a}]\n");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        // No temporary file left behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    /// A save never overwrites a hand edit made after the edit read the file.
    #[tokio::test]
    async fn a_save_refuses_a_file_changed_since_it_was_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console-receivers.yml");
        let file = ConsoleFile::At(path.clone());
        let (document, on_disk) = read_document(&file).await.unwrap();
        assert!(document.receivers.is_empty() && on_disk.is_empty());
        std::fs::write(&path, "receivers: [{name: by-hand}]\n").unwrap();
        let refused = write_if_unchanged(&path, &on_disk, "receivers: []\n".into()).await;
        assert!(matches!(refused, Err(WriteError::Changed(_))), "{refused:?}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "receivers: [{name: by-hand}]\n");
        let (document, on_disk) = read_document(&file).await.unwrap();
        assert_eq!(document.receivers.len(), 1);
        write_if_unchanged(&path, &on_disk, "receivers: []\n".into()).await.unwrap();
        std::fs::write(&path, "receivers: 7\n").unwrap();
        assert!(matches!(read_document(&file).await, Err(ReadError::Broken(_))));
    }
}
