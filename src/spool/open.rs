//! Opening a spool file: made private to this user, a corrupt one moved aside, an older one's
//! thread state moved to groupKey hashes, the destination-identity key made or read, and what it
//! holds counted and restored.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use bytes::Bytes;
use redb::{Database, ReadableDatabase, ReadableTable};

use super::record::{self, group_hash};
use super::writer::{
    ATTEMPTS, DEAD, DEAD_KEY_BYTES, LEGACY_THREADS, META, PENDING, Stored, THREAD_GROUPS, seq_key_bytes,
    thread_key_bytes,
};
use super::{CACHE_BYTES, unix_ms};

pub(super) enum OpenError {
    Corrupt(String),
    Other(String),
}

/// Opens the database, telling a corrupt file (moved aside by the caller) from other errors
/// (permissions, a second process: reported, never "repaired" by moving the file away). redb
/// checks some invariants with assertions, so a panic while opening also means corruption.
pub(super) fn open_database(path: &Path) -> Result<Database, OpenError> {
    use redb::{DatabaseError, StorageError};
    let path = path.to_owned();
    match std::panic::catch_unwind(move || Database::builder().set_cache_size(CACHE_BYTES).create(&path)) {
        Ok(Ok(db)) => Ok(db),
        Ok(Err(DatabaseError::Storage(StorageError::Corrupted(e)))) => Err(OpenError::Corrupt(e)),
        Ok(Err(DatabaseError::Storage(StorageError::Io(e)))) if e.kind() == std::io::ErrorKind::InvalidData => {
            Err(OpenError::Corrupt(e.to_string()))
        }
        Ok(Err(e @ DatabaseError::UpgradeRequired(_))) => Err(OpenError::Corrupt(e.to_string())),
        Ok(Err(e)) => Err(OpenError::Other(e.to_string())),
        Err(_) => Err(OpenError::Corrupt("the file failed redb's consistency checks".into())),
    }
}

pub(super) fn aside_name(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{}", unix_ms(SystemTime::now())));
    PathBuf::from(name)
}

/// A random key for destination identities that need not outlive the process (memory mode).
pub(super) fn random_identity_key() -> ring::hmac::Key {
    ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &ring::rand::SystemRandom::new())
        .expect("the system's random number generator works")
}

/// The spool file's key for destination identities, made at its first open and kept in it.
pub(super) fn identity_key(db: &Database) -> Result<ring::hmac::Key, String> {
    const NAME: &str = "destination_identity_key";
    let txn = db.begin_write().map_err(|e| format!("spool: {e}"))?;
    let key = {
        let mut meta = txn.open_table(META).map_err(|e| format!("spool: {e}"))?;
        let existing = meta.get(NAME).map_err(|e| format!("spool: {e}"))?.map(|v| v.value().to_vec());
        match existing {
            Some(key) if key.len() == 32 => key,
            _ => {
                let mut key = [0u8; 32];
                ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
                    .map_err(|_| "spool: the system's random number generator failed".to_owned())?;
                meta.insert(NAME, &key[..]).map_err(|e| format!("spool: {e}"))?;
                key.to_vec()
            }
        }
    };
    txn.commit().map_err(|e| format!("spool: {e}"))?;
    Ok(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key))
}

/// Moves thread state kept by whole groupKey (spools of earlier versions) to its hash, keeping
/// the groupKey's start for the listing, then deletes the old table: once, at open. A long
/// groupKey is read one entry at a time and shrinks to a few dozen bytes.
pub(super) fn migrate_threads(db: &Database) -> Result<(), String> {
    let read = db.begin_read().map_err(|e| format!("spool: {e}"))?;
    match read.open_table(LEGACY_THREADS) {
        Ok(_) => {}
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(()),
        Err(e) => return Err(format!("spool: {e}")),
    }
    drop(read);
    let txn = db.begin_write().map_err(|e| format!("spool: {e}"))?;
    let mut moved = 0;
    {
        let legacy = txn.open_table(LEGACY_THREADS).map_err(|e| format!("spool: {e}"))?;
        let mut threads = txn.open_table(THREAD_GROUPS).map_err(|e| format!("spool: {e}"))?;
        for entry in legacy.iter().map_err(|e| format!("spool: {e}"))? {
            let Ok((key, value)) = entry else { continue };
            let (receiver, group_key) = key.value();
            let stored = record::encode_thread(group_key, value.value());
            threads.insert((receiver, &group_hash(group_key)), stored.as_slice()).map_err(|e| format!("spool: {e}"))?;
            moved += 1;
        }
    }
    txn.delete_table(LEGACY_THREADS).map_err(|e| format!("spool: {e}"))?;
    txn.commit().map_err(|e| format!("spool: {e}"))?;
    tracing::info!(groups = moved, "spool: thread state moved to keys by groupKey hash");
    Ok(())
}

/// Bytes of the attempt counts, dead letters and thread state (keys and values), at open.
pub(super) fn other_bytes(db: &Database) -> Result<u64, String> {
    let txn = db.begin_read().map_err(|e| format!("spool: {e}"))?;
    let mut bytes = 0;
    match txn.open_table(ATTEMPTS) {
        Ok(table) => {
            for entry in table.iter().map_err(|e| format!("spool: {e}"))?.flatten() {
                bytes += seq_key_bytes(entry.0.value().0) + 4;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(format!("spool: {e}")),
    }
    match txn.open_table(DEAD) {
        Ok(table) => {
            for entry in table.iter().map_err(|e| format!("spool: {e}"))?.flatten() {
                bytes += DEAD_KEY_BYTES + entry.1.value().len() as u64;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(format!("spool: {e}")),
    }
    match txn.open_table(THREAD_GROUPS) {
        Ok(table) => {
            for entry in table.iter().map_err(|e| format!("spool: {e}"))?.flatten() {
                bytes += thread_key_bytes(entry.0.value().0) + entry.1.value().len() as u64;
            }
        }
        Err(redb::TableError::TableDoesNotExist(_)) => {}
        Err(e) => return Err(format!("spool: {e}")),
    }
    Ok(bytes)
}

/// Counts the dead letters and their body bytes (headers only), at open.
pub(super) fn dead_totals(db: &Database) -> Result<(u64, u64), String> {
    let txn = db.begin_read().map_err(|e| format!("spool: {e}"))?;
    let dead = match txn.open_table(DEAD) {
        Ok(dead) => dead,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok((0, 0)),
        Err(e) => return Err(format!("spool: {e}")),
    };
    let (mut count, mut bytes) = (0, 0);
    for entry in dead.iter().map_err(|e| format!("spool: {e}"))? {
        let Ok((_, value)) = entry else { continue };
        count += 1;
        bytes += record::header_only(value.value()).map_or(0, |(_, length)| length as u64);
    }
    Ok((count, bytes))
}

/// Reads every pending record's header; drops corrupt ones. Bodies are kept, in acceptance order,
/// while they fit in `window` bytes; the others are left empty (on disk, read back for delivery).
/// Returns the records, the next free sequence and the bytes the pending records take (keys,
/// headers and bodies).
pub(super) fn restore(db: &Database, window: u64) -> Result<(Vec<Stored>, u64, u64), String> {
    let mut restored = Vec::new();
    let mut bytes = 0;
    let mut corrupt: Vec<(String, u64)> = Vec::new();
    let mut next_seq = 1;
    let txn = db.begin_write().map_err(|e| format!("spool: {e}"))?;
    {
        let pending = txn.open_table(PENDING).map_err(|e| format!("spool: {e}"))?;
        let attempts = txn.open_table(ATTEMPTS).map_err(|e| format!("spool: {e}"))?;
        let dead = txn.open_table(DEAD).map_err(|e| format!("spool: {e}"))?;
        for entry in pending.iter().map_err(|e| format!("spool: {e}"))? {
            let Ok((key, value)) = entry else {
                tracing::error!("spool: unreadable entry skipped");
                continue;
            };
            let (receiver, seq) = key.value();
            next_seq = next_seq.max(seq + 1);
            match record::decode_header(value.value()) {
                Some((mut header, body)) => {
                    if let Ok(Some(count)) = attempts.get((receiver, seq)) {
                        header.attempts = count.value();
                    }
                    bytes += seq_key_bytes(receiver) + value.value().len() as u64;
                    restored.push((receiver.to_owned(), seq, header, body.len()));
                }
                None => {
                    tracing::error!(receiver, seq, "spool: corrupt record skipped");
                    corrupt.push((receiver.to_owned(), seq));
                }
            }
        }
        if let Some(Ok((key, _))) = dead.iter().map_err(|e| format!("spool: {e}"))?.next_back() {
            next_seq = next_seq.max(key.value() + 1);
        }
    }
    {
        let mut pending = txn.open_table(PENDING).map_err(|e| format!("spool: {e}"))?;
        for (receiver, seq) in &corrupt {
            let _ = pending.remove((receiver.as_str(), *seq));
        }
    }
    txn.commit().map_err(|e| format!("spool: {e}"))?;
    // Acceptance order across receivers: sequence numbers are global.
    restored.sort_by_key(|&(_, seq, _, _)| seq);
    // The oldest go first, so their bodies are the ones worth having at hand.
    let read = db.begin_read().map_err(|e| format!("spool: {e}"))?;
    let pending = read.open_table(PENDING).map_err(|e| format!("spool: {e}"))?;
    let mut room = window;
    let mut in_memory = 0;
    let restored: Vec<Stored> = restored
        .into_iter()
        .map(|(receiver, seq, header, length)| {
            let mut body = Bytes::new();
            if length as u64 <= room
                && let Ok(Some(value)) = pending.get((receiver.as_str(), seq))
                && let Some((_, kept)) = record::decode(value.value())
            {
                room -= length as u64;
                in_memory += 1;
                body = kept;
            }
            Stored { receiver, seq, header, body }
        })
        .collect();
    if !restored.is_empty() {
        tracing::info!(
            notifications = restored.len(),
            bodies_in_memory = in_memory,
            bytes,
            "restored pending notifications from the spool"
        );
    }
    Ok((restored, next_seq, bytes))
}
