//! Where silences live: a list every delivery reads without a lock (`ArcSwap`), changed one at
//! a time by the API, and kept in one of three places ([`Keep`], one `match` per operation):
//!
//! - memory (no spool): a restart forgets them;
//! - a file, `<spool path>.silences.json`, written atomically (temporary file, fsync, rename,
//!   fsync the folder) *before* the change is visible, so an answer of 200 survives `kill -9`;
//! - with `delivery.nats`, a JetStream key-value bucket (`<stream>_SILENCES`, one key, as
//!   replicated as the stream): a change is a compare-and-set on the key's revision, retried
//!   on a concurrent change, and every replica watches the key, so a silence made through one
//!   replica mutes on all of them.
//!
//! Expired silences are kept 5 days, as Alertmanager keeps them, then forgotten.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use async_nats::jetstream::{self, kv};
use futures_util::StreamExt;
use jiff::Timestamp;

use super::silence::{Posted, Silence, State};
use crate::metrics as m;

/// How long an expired silence stays listed (Alertmanager's default retention).
pub const EXPIRED_RETENTION: Duration = Duration::from_secs(5 * 24 * 3600);
/// The key of the shared bucket that holds the list.
const KV_KEY: &str = "silences";
/// Compare-and-set attempts before a change is refused (replicas changing silences at once).
const KV_ATTEMPTS: usize = 5;
const NOT_SHARED_YET: &str = "the shared silences are not open yet (JetStream is being provisioned); retry";

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("{0}")]
    Invalid(String),
    #[error("no silence with id {0:?}")]
    NotFound(String),
    #[error("cannot store the silences: {0}")]
    Write(String),
}

/// Where the list is kept.
#[derive(Debug)]
enum Keep {
    Memory,
    File(PathBuf),
    /// In the JetStream bucket, once [`Silences::share`] has opened it (after the streams are
    /// provisioned); changes are refused until then.
    Shared(Box<std::sync::OnceLock<kv::Store>>),
}

type List = Vec<Arc<Silence>>;

/// Every silence of the process.
#[derive(Debug)]
pub struct Silences {
    list: Arc<ArcSwap<List>>,
    /// Changes one at a time (off the delivery path: only the API takes it).
    writer: tokio::sync::Mutex<()>,
    keep: Keep,
}

impl Silences {
    fn with(list: List, keep: Keep) -> Silences {
        let silences =
            Silences { list: Arc::new(ArcSwap::from_pointee(list)), writer: tokio::sync::Mutex::new(()), keep };
        silences.record_gauges(Timestamp::now());
        silences
    }

    /// Silences kept in memory only (no spool file): a restart forgets them.
    pub fn in_memory() -> Silences {
        Silences::with(Vec::new(), Keep::Memory)
    }

    /// The silences kept next to the spool file; a missing file is no silence, an unreadable
    /// one an error (starting without them would lift every silence).
    pub fn open(spool_path: &Path) -> Result<Silences, String> {
        let mut name = spool_path.as_os_str().to_owned();
        name.push(".silences.json");
        let file = PathBuf::from(name);
        let list = match std::fs::read_to_string(&file) {
            Ok(text) => parse_list(text.as_bytes()).map_err(|e| format!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => return Err(format!("cannot read {}: {e}", file.display())),
        };
        Ok(Silences::with(list, Keep::File(file)))
    }

    /// Silences to be shared through JetStream: empty, and refusing changes, until [`share`](Self::share).
    pub fn shared_later() -> Silences {
        Silences::with(Vec::new(), Keep::Shared(Box::default()))
    }

    /// Opens the bucket `bucket` (made with `replicas` replicas when missing), reads the list
    /// and watches it from now on; a second call does nothing.
    pub async fn share(&self, js: &jetstream::Context, bucket: &str, replicas: usize) -> Result<(), String> {
        let Keep::Shared(slot) = &self.keep else { return Ok(()) };
        if slot.get().is_some() {
            return Ok(());
        }
        // The bucket's stream, made as async-nats's `create_key_value` makes it, but without
        // its account query, whose answer async-nats cannot read from nats-server 2.9.
        let stream = jetstream::stream::Config {
            name: format!("KV_{bucket}"),
            subjects: vec![format!("$KV.{bucket}.>")],
            max_messages_per_subject: 1,
            allow_rollup: true,
            deny_delete: true,
            allow_direct: true,
            num_replicas: replicas.max(1),
            discard: jetstream::stream::DiscardPolicy::New,
            ..Default::default()
        };
        js.get_or_create_stream(stream).await.map_err(|e| format!("cannot make the silences bucket {bucket}: {e}"))?;
        let store =
            js.get_key_value(bucket).await.map_err(|e| format!("cannot open the silences bucket {bucket}: {e}"))?;
        let mut watch = store.watch_with_history(KV_KEY).await.map_err(|e| format!("cannot watch {bucket}: {e}"))?;
        let (list, _) = read_shared(&store).await?;
        self.list.store(Arc::new(list));
        self.record_gauges(Timestamp::now());
        let _ = slot.set(store);
        let shown = self.list.clone();
        let bucket = bucket.to_owned();
        tokio::spawn(async move {
            while let Some(entry) = watch.next().await {
                match entry.map_err(|e| e.to_string()).and_then(|e| parse_entry(&e)) {
                    Ok(list) => shown.store(Arc::new(list)),
                    Err(e) => tracing::warn!(bucket = %bucket, error = %e, "cannot read the shared silences"),
                }
            }
        });
        Ok(())
    }

    /// Every silence now (active, pending and expired), without a lock.
    pub fn all(&self) -> Arc<List> {
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
        let silence = Silence::from_posted(posted, now).map_err(StoreError::Invalid)?;
        self.change(now, |list| {
            let mut silence = silence.clone();
            match list.iter().position(|s| !silence.id.is_empty() && s.id == silence.id) {
                Some(at) => list[at] = Arc::new(silence.clone()),
                None if silence.id.is_empty() => {
                    silence.id = new_id();
                    list.push(Arc::new(silence.clone()));
                }
                None => return Err(StoreError::NotFound(silence.id)),
            }
            Ok(silence.id)
        })
        .await
    }

    /// Expires a silence now (a pending one never starts), as Alertmanager's DELETE does.
    pub async fn expire(&self, id: &str, now: Timestamp) -> Result<(), StoreError> {
        self.change(now, |list| {
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
            Ok(())
        })
        .await
    }

    /// Applies `edit` to the current list (without silences expired longer than the
    /// retention), stores the result where it is kept, then makes it visible.
    async fn change<T>(
        &self,
        now: Timestamp,
        edit: impl Fn(&mut List) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let _one = self.writer.lock().await;
        let mut last_error = String::new();
        for _ in 0..KV_ATTEMPTS {
            let (base, revision) = match &self.keep {
                Keep::Shared(slot) => {
                    let store = slot.get().ok_or_else(|| StoreError::Write(NOT_SHARED_YET.into()))?;
                    read_shared(store).await.map_err(StoreError::Write)?
                }
                Keep::Memory | Keep::File(_) => (self.list.load().to_vec(), None),
            };
            let mut list = kept(base, now);
            let out = edit(&mut list)?;
            let text = to_text(&list)?;
            let stored = match &self.keep {
                Keep::Memory => Ok(()),
                Keep::File(file) => {
                    let file = file.clone();
                    tokio::task::spawn_blocking(move || crate::editor::file::write_atomically(&file, &text))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r.map_err(|e| e.to_string()))
                        .map_err(StoreError::Write)?;
                    Ok(())
                }
                // Compare-and-set: another replica's change in between makes it fail, and the
                // change is made again on top of theirs.
                Keep::Shared(slot) => match (slot.get(), revision) {
                    (None, _) => Err(NOT_SHARED_YET.to_owned()),
                    (Some(store), Some(revision)) => {
                        store.update(KV_KEY, text.into(), revision).await.map(drop).map_err(|e| e.to_string())
                    }
                    (Some(store), None) => store.create(KV_KEY, text.into()).await.map(drop).map_err(|e| e.to_string()),
                },
            };
            match stored {
                Ok(()) => {
                    self.list.store(Arc::new(list));
                    self.record_gauges(now);
                    return Ok(out);
                }
                Err(e) => last_error = e,
            }
        }
        Err(StoreError::Write(last_error))
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

/// The list without silences expired longer than the retention.
fn kept(list: List, now: Timestamp) -> List {
    let cutoff = now - jiff::SignedDuration::try_from(EXPIRED_RETENTION).unwrap_or_default();
    list.into_iter().filter(|s| s.ends_at > cutoff).collect()
}

/// The list as the file and the bucket hold it.
fn to_text(list: &List) -> Result<String, StoreError> {
    let items: Vec<serde_json::Value> = list.iter().map(|s| s.to_json(None)).collect();
    serde_json::to_string_pretty(&serde_json::json!({ "silences": items }))
        .map_err(|e| StoreError::Write(e.to_string()))
}

/// The shared list and its revision (`None`: no list yet).
async fn read_shared(store: &kv::Store) -> Result<(List, Option<u64>), String> {
    match store.entry(KV_KEY).await.map_err(|e| format!("cannot read the shared silences: {e}"))? {
        Some(entry) => Ok((parse_entry(&entry)?, Some(entry.revision))),
        None => Ok((Vec::new(), None)),
    }
}

fn parse_entry(entry: &kv::Entry) -> Result<List, String> {
    match entry.operation {
        kv::Operation::Put => parse_list(&entry.value),
        kv::Operation::Delete | kv::Operation::Purge => Ok(Vec::new()),
    }
}

/// `{"silences": [...]}`.
fn parse_list(text: &[u8]) -> Result<List, String> {
    #[derive(serde::Deserialize)]
    struct File {
        silences: Vec<Posted>,
    }
    let file: File = serde_json::from_slice(text).map_err(|e| e.to_string())?;
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

    // Until JetStream is provisioned, a change could only be lost: it is refused, with why.
    #[tokio::test]
    async fn shared_silences_refuse_changes_until_the_bucket_is_open() {
        let now: Timestamp = "2026-12-07T20:00:00Z".parse().unwrap();
        let error = Silences::shared_later().put(posted("2026-12-07T22:00:00Z"), now).await.unwrap_err();
        assert!(error.to_string().contains("not open yet"), "{error}");
    }

    #[test]
    fn ids_are_version_4_uuids() {
        let id = new_id();
        assert_eq!(id.len(), 36);
        assert_eq!(&id[14..15], "4");
        assert!(matches!(&id[19..20], "8" | "9" | "a" | "b"), "{id}");
    }
}
