//! The notification history in the spool file: written by the writer thread in the same
//! transaction as the removals and dead letters it records (no commit of its own), bounded by
//! `history.max_bytes` and `history.retention`, read in read transactions of its own.

use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction};

use crate::history::{Index, Limits, Page, Query, Record, walk};

/// Records by sequence (finishing order).
pub const HISTORY: TableDefinition<u64, &[u8]> = TableDefinition::new("history");
/// (receiver, sequence): the records of one receiver, newest first by walking it backwards.
pub const HISTORY_BY_RECEIVER: TableDefinition<(&str, u64), ()> = TableDefinition::new("history_by_receiver");
/// (alert fingerprint, sequence): the records naming one alert.
pub const HISTORY_BY_FINGERPRINT: TableDefinition<(&str, u64), ()> = TableDefinition::new("history_by_fingerprint");

/// What the writer knows of the history it holds; copied into each transaction and back after
/// its commit, as the writer's sequence is.
#[derive(Debug, Clone)]
pub struct HistoryState {
    pub next_seq: u64,
    pub records: u64,
    pub bytes: u64,
    pub limits: Arc<Limits>,
}

impl HistoryState {
    /// Reads the counts at open: one pass over the records (a few hundred ms for the default
    /// 64 MiB), so that the bound holds from the first record written.
    pub fn open(db: &Database, limits: Arc<Limits>) -> Result<HistoryState, String> {
        let txn = db.begin_read().map_err(|e| format!("spool history: {e}"))?;
        let mut state = HistoryState { next_seq: 1, records: 0, bytes: 0, limits };
        let table = match txn.open_table(HISTORY) {
            Ok(table) => table,
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(state),
            Err(e) => return Err(format!("spool history: {e}")),
        };
        state.records = table.len().map_err(|e| format!("spool history: {e}"))?;
        for entry in table.iter().map_err(|e| format!("spool history: {e}"))? {
            let (key, value) = entry.map_err(|e| format!("spool history: {e}"))?;
            state.next_seq = key.value() + 1;
            if let Some(record) = Record::decode(value.value()) {
                state.bytes += Record::stored_bytes(value.value().len(), &record);
            }
        }
        crate::history::set_totals(state.records, state.bytes);
        Ok(state)
    }
}

/// Writes `records` and drops the oldest beyond the bounds, in the writer's transaction.
pub fn write(txn: &WriteTransaction, records: Vec<Record>, state: &mut HistoryState) -> Result<(), String> {
    let mut table = txn.open_table(HISTORY).map_err(|e| e.to_string())?;
    let mut by_receiver = txn.open_table(HISTORY_BY_RECEIVER).map_err(|e| e.to_string())?;
    let mut by_fingerprint = txn.open_table(HISTORY_BY_FINGERPRINT).map_err(|e| e.to_string())?;
    for mut record in records {
        record.seq = state.next_seq;
        state.next_seq += 1;
        let encoded = record.encode();
        table.insert(record.seq, encoded.as_slice()).map_err(|e| e.to_string())?;
        by_receiver.insert((record.receiver.as_str(), record.seq), ()).map_err(|e| e.to_string())?;
        for fingerprint in &record.fingerprints {
            by_fingerprint.insert((fingerprint.as_str(), record.seq), ()).map_err(|e| e.to_string())?;
        }
        state.records += 1;
        state.bytes += Record::stored_bytes(encoded.len(), &record);
    }
    let oldest_kept = state.limits.oldest_kept(crate::history::now_ms());
    loop {
        let oldest = table.first().map_err(|e| e.to_string())?.map(|(k, v)| (k.value(), v.value().to_vec()));
        let Some((seq, bytes)) = oldest else { break };
        let record = Record::decode(&bytes);
        let expired = record.as_ref().is_none_or(|r| r.finished_unix_ms < oldest_kept);
        if state.bytes <= state.limits.max_bytes() && !expired {
            break;
        }
        table.remove(seq).map_err(|e| e.to_string())?;
        state.records = state.records.saturating_sub(1);
        if let Some(record) = record {
            state.bytes = state.bytes.saturating_sub(Record::stored_bytes(bytes.len(), &record));
            by_receiver.remove((record.receiver.as_str(), seq)).map_err(|e| e.to_string())?;
            for fingerprint in &record.fingerprints {
                by_fingerprint.remove((fingerprint.as_str(), seq)).map_err(|e| e.to_string())?;
            }
        }
    }
    Ok(())
}

/// A page of records, newest first, walking the narrowest index (see [`Query::index`]).
pub fn page(db: &Database, query: &Query) -> Result<Page, String> {
    let txn = db.begin_read().map_err(|e| e.to_string())?;
    let table = match txn.open_table(HISTORY) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Page::default()),
        Err(e) => return Err(e.to_string()),
    };
    let below = query.after.unwrap_or(u64::MAX);
    let get = |seq: u64| -> Result<Option<Record>, String> {
        Ok(table.get(seq).map_err(|e| e.to_string())?.and_then(|v| Record::decode(v.value())))
    };
    match query.index() {
        Index::All => {
            let seqs = table.range(..below).map_err(|e| e.to_string())?.rev();
            walk(seqs.map(|entry| entry.map(|(k, _)| k.value()).map_err(|e| e.to_string())), get, query)
        }
        Index::Receiver(key) | Index::Fingerprint(key) => {
            let definition =
                if matches!(query.index(), Index::Receiver(_)) { HISTORY_BY_RECEIVER } else { HISTORY_BY_FINGERPRINT };
            let index = match txn.open_table(definition) {
                Ok(index) => index,
                Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Page::default()),
                Err(e) => return Err(e.to_string()),
            };
            let seqs = index.range((key, 0)..(key, below)).map_err(|e| e.to_string())?.rev();
            walk(seqs.map(|entry| entry.map(|(k, _)| k.value().1).map_err(|e| e.to_string())), get, query)
        }
    }
}
