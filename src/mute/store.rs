//! Where silences live: a list every delivery reads without a lock (`ArcSwap`), changed one at
//! a time by the API, and — with a spool file — kept in `<spool path>.silences.json`, written
//! atomically (temporary file, fsync, rename, fsync the folder) *before* the change is visible,
//! so an answer of 200 means the change survives `kill -9`. Expired silences are kept 5 days,
//! as Alertmanager keeps them, then forgotten.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use jiff::Timestamp;

use super::silence::{Posted, Silence, State};
use crate::metrics as m;

/// How long an expired silence stays listed (Alertmanager's default retention).
pub const EXPIRED_RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("no silence with id {0:?}")]
    NotFound(String),
    #[error("cannot write the silences file: {0}")]
    Write(String),
}

/// Every silence of the process.
#[derive(Debug)]
pub struct Silences {
    list: ArcSwap<Vec<Arc<Silence>>>,
    /// Changes one at a time (off the delivery path: only the API takes it).
    writer: tokio::sync::Mutex<()>,
    file: Option<PathBuf>,
}

impl Silences {
    /// Silences kept in memory only (no spool file): a restart forgets them.
    pub fn in_memory() -> Silences {
        Silences { list: ArcSwap::from_pointee(Vec::new()), writer: tokio::sync::Mutex::new(()), file: None }
    }

    /// The silences kept next to the spool file; a missing file is no silence, an unreadable
    /// one an error (starting without them would lift every silence).
    pub fn open(spool_path: &Path) -> Result<Silences, String> {
        let mut name = spool_path.as_os_str().to_owned();
        name.push(".silences.json");
        let file = PathBuf::from(name);
        let list = match std::fs::read_to_string(&file) {
            Ok(text) => parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        let silences =
            Silences { list: ArcSwap::from_pointee(list), writer: tokio::sync::Mutex::new(()), file: Some(file) };
        silences.record_gauges(Timestamp::now());
        Ok(silences)
    }

    /// The file, if any.
    pub fn file(&self) -> Option<&Path> {
        self.file.as_deref()
    }

    /// Every silence now (active, pending and expired), without a lock.
    pub fn all(&self) -> Arc<Vec<Arc<Silence>>> {
        self.list.load_full()
    }

    /// Whether any silence is active at `now` for `receiver` (cheap: no payload is read).
    pub fn any_active_for(&self, receiver: &str, now: Timestamp) -> bool {
        self.list.load().iter().any(|s| s.state(now) == State::Active && s.covers(receiver))
    }

    /// One silence by id.
    pub fn get(&self, id: &str) -> Option<Arc<Silence>> {
        self.list.load().iter().find(|s| s.id == id).cloned()
    }

    /// Adds a silence, or replaces the one with its id; returns the id.
    pub async fn put(&self, posted: Posted, now: Timestamp) -> Result<String, StoreError> {
        let mut silence = Silence::from_posted(posted, now).map_err(StoreError::Invalid)?;
        let _one = self.writer.lock().await;
        let mut list: Vec<Arc<Silence>> = self.kept(now);
        match list.iter().position(|s| !silence.id.is_empty() && s.id == silence.id) {
            Some(at) => list[at] = Arc::new(silence.clone()),
            None if silence.id.is_empty() => {
                silence.id = new_id();
                list.push(Arc::new(silence.clone()));
            }
            None => return Err(StoreError::NotFound(silence.id)),
        }
        self.commit(list, now).await?;
        Ok(silence.id)
    }

    /// Expires a silence now (a pending one never starts), as Alertmanager's DELETE does.
    pub async fn expire(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        let _one = self.writer.lock().await;
        let mut list = self.kept(now);
        let at = list.iter().position(|s| s.id == id).ok_or_else(|| StoreError::NotFound(id.to_owned()))?;
        let mut silence = (*list[at]).clone();
        match silence.state(now) {
            State::Expired => return Err(StoreError::Invalid(format!("silence {id} already expired"))),
            State::Pending => silence.starts_at = now,
            State::Active => {}
        }
        silence.ends_at = now;
        silence.updated_at = now;
        list[at] = Arc::new(silence);
        self.commit(list, now).await
    }

    /// The list without silences expired longer than the retention.
    fn kept(&self, now: Timestamp) -> Vec<Arc<Silence>> {
        let cutoff = now - jiff::SignedDuration::try_from(EXPIRED_RETENTION).unwrap_or_default();
        self.list.load().iter().filter(|s| s.ends_at > cutoff).cloned().collect()
    }

    /// Writes the file (when there is one), then makes the list visible.
    async fn commit(&self, list: Vec<Arc<Silence>>, now: Timestamp) -> Result<(), StoreError> {
        if let Some(file) = self.file.clone() {
            let items: Vec<serde_json::Value> = list.iter().map(|s| s.to_json(None)).collect();
            let text = serde_json::to_string_pretty(&serde_json::json!({ "silences": items }))
                .map_err(|e| StoreError::Write(e.to_string()))?;
            tokio::task::spawn_blocking(move || crate::editor::file::write_atomically(&file, &text))
                .await
                .map_err(|e| StoreError::Write(e.to_string()))?
                .map_err(|e| StoreError::Write(e.to_string()))?;
        }
        self.list.store(Arc::new(list));
        self.record_gauges(now);
        Ok(())
    }

    /// `amrelay_silences{state}` at `now`.
    pub fn record_gauges(&self, now: Timestamp) {
        let list = self.list.load();
        for state in State::ALL {
            let count = list.iter().filter(|s| s.state(now) == state).count();
            metrics::gauge!(m::SILENCES, "state" => state.as_str()).set(count as f64);
        }
    }
}

/// `{"silences": [...]}`.
fn parse_file(text: &str) -> Result<Vec<Arc<Silence>>, String> {
    #[derive(serde::Deserialize)]
    struct File {
        silences: Vec<Posted>,
    }
    let file: File = serde_json::from_str(text).map_err(|e| e.to_string())?;
    file.silences.into_iter().map(|s| Silence::from_stored(s).map(Arc::new)).collect()
}

/// A random UUID (version 4), as Alertmanager's silence ids.
fn new_id() -> String {
    let bits = fastrand::u128(..) & !(0xf << 76) & !(0x3 << 62) | (0x4 << 76) | (0x2 << 62);
    let hex = format!("{bits:032x}");
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn posted(ends_at: &str) -> Posted {
        serde_json::from_value(json!({"matchers": "a=\"b\"", "endsAt": ends_at, "createdBy": "ops", "comment": "c"}))
            .unwrap()
    }

    #[tokio::test]
    async fn changes_reach_the_file_and_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool.redb");
        let now: Timestamp = "2026-12-07T20:00:00Z".parse().unwrap();
        let store = Silences::open(&spool).unwrap();
        let kept = store.put(posted("2026-12-07T22:00:00Z"), now).await.unwrap();
        let expired = store.put(posted("2026-12-07T22:00:00Z"), now).await.unwrap();
        store.expire(&expired, now).await.unwrap();
        assert!(store.expire(&expired, now).await.is_err(), "an expired silence cannot expire again");
        assert!(dir.path().join("spool.redb.silences.json").exists());

        let reopened = Silences::open(&spool).unwrap();
        assert_eq!(reopened.get(&kept).unwrap().state(now), State::Active);
        assert_eq!(reopened.get(&expired).unwrap().state(now), State::Expired);
        // Five days after both ended, the next change forgets them.
        let later = now + jiff::SignedDuration::from_secs(5 * 24 * 3600 + 3 * 3600);
        reopened.put(posted("2026-12-30T00:00:00Z"), later).await.unwrap();
        assert!(reopened.get(&expired).is_none() && reopened.get(&kept).is_none());
    }

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
