//! How a notification is stored in the spool: a small JSON header, then the body as sent.
//!
//! `[version: u8][header length: u32 LE][header JSON][body]`. A record that does not decode is
//! corrupt: the spool skips it with a log line instead of refusing to start.
//!
//! Thread state is keyed by a [`group_hash`] of the groupKey, not the groupKey itself, and keeps
//! only its first [`GROUP_PREVIEW_BYTES`] beside the entry (for the threads listing): a group
//! costs the same few dozen bytes there however long its groupKey is.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

const VERSION: u8 = 1;

/// A pending notification of one receiver.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    /// The groupKey, for per-group order.
    #[serde(rename = "g")]
    pub group_key: String,
    /// The idempotency key, stable across retries and restarts.
    #[serde(rename = "id")]
    pub id: String,
    /// Acceptance time, ms since the Unix epoch: the retry budget's `max_elapsed` counts from it.
    #[serde(rename = "t")]
    pub accepted_unix_ms: u64,
    /// Attempts already made.
    #[serde(rename = "a")]
    pub attempts: u32,
    /// Alerts in the body.
    #[serde(rename = "n")]
    pub alerts: usize,
    /// For dead letters: the receiver, why, when, and the last error.
    #[serde(rename = "dead", default, skip_serializing_if = "Option::is_none")]
    pub dead: Option<DeadInfo>,
}

/// What a dead letter adds to a pending record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeadInfo {
    pub receiver: String,
    pub reason: String,
    pub error: String,
    pub at_unix_ms: u64,
    /// The receiver's destination identity when it was dead-lettered (a keyed hash of its URL
    /// and preset, see `Spool::destination_identity`): a replay to a receiver of that name that
    /// now sends elsewhere needs `force=true`. `None`: not recorded (an older version, a
    /// receiver removed before, or the shared queue).
    #[serde(rename = "dest", default, skip_serializing_if = "Option::is_none")]
    pub destination: Option<String>,
}

/// What a group's thread state is keyed by: the SHA-256 of its groupKey.
pub type GroupHash = [u8; 32];

/// The groupKey's bytes kept beside its hash, for the threads listing.
pub const GROUP_PREVIEW_BYTES: usize = 128;

/// The key of a group's thread state.
pub fn group_hash(group_key: &str) -> GroupHash {
    let digest = ring::digest::digest(&ring::digest::SHA256, group_key.as_bytes());
    digest.as_ref().try_into().expect("SHA-256 is 32 bytes")
}

/// The start of a groupKey, at most [`GROUP_PREVIEW_BYTES`], cut at a character boundary.
pub fn group_preview(group_key: &str) -> &str {
    let mut end = group_key.len().min(GROUP_PREVIEW_BYTES);
    while !group_key.is_char_boundary(end) {
        end -= 1;
    }
    &group_key[..end]
}

/// A thread entry as stored: `[preview length: u16 LE][groupKey preview][entry]`, the entry
/// being the caller's (`crate::deliver::ThreadEntry`'s encoding).
pub fn encode_thread(preview: &str, entry: &[u8]) -> Vec<u8> {
    let preview = group_preview(preview);
    let mut out = Vec::with_capacity(2 + preview.len() + entry.len());
    out.extend_from_slice(&(preview.len() as u16).to_le_bytes());
    out.extend_from_slice(preview.as_bytes());
    out.extend_from_slice(entry);
    out
}

/// The preview and the entry of a stored thread entry; `None` if it is corrupt.
pub fn decode_thread(bytes: &[u8]) -> Option<(&str, &[u8])> {
    let (length, rest) = bytes.split_at_checked(2)?;
    let length = u16::from_le_bytes(length.try_into().ok()?) as usize;
    let (preview, entry) = rest.split_at_checked(length)?;
    Some((std::str::from_utf8(preview).ok()?, entry))
}

/// Encodes a record.
pub fn encode(header: &Header, body: &[u8]) -> Vec<u8> {
    let header = serde_json::to_vec(header).expect("header serializes");
    let mut out = Vec::with_capacity(5 + header.len() + body.len());
    out.push(VERSION);
    out.extend_from_slice(&(header.len() as u32).to_le_bytes());
    out.extend_from_slice(&header);
    out.extend_from_slice(body);
    out
}

/// Decodes a record's header and checks its body without copying it; `None` if it is corrupt.
pub fn decode_header(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let (header, body) = split(bytes)?;
    // The body is the JSON we encoded; a torn or flipped one must not be sent.
    serde_json::from_slice::<serde::de::IgnoredAny>(body).ok()?;
    Some((header, body))
}

/// Decodes a record's header alone, without reading the body: for listing dead letters.
pub fn header_only(bytes: &[u8]) -> Option<(Header, usize)> {
    split(bytes).map(|(header, body)| (header, body.len()))
}

fn split(bytes: &[u8]) -> Option<(Header, &[u8])> {
    let (&version, rest) = bytes.split_first()?;
    if version != VERSION || rest.len() < 4 {
        return None;
    }
    let length = u32::from_le_bytes(rest[..4].try_into().ok()?) as usize;
    let rest = &rest[4..];
    if rest.len() < length {
        return None;
    }
    let header: Header = serde_json::from_slice(&rest[..length]).ok()?;
    Some((header, &rest[length..]))
}

/// Decodes a record; `None` if it is corrupt.
pub fn decode(bytes: &[u8]) -> Option<(Header, Bytes)> {
    let (header, body) = decode_header(bytes)?;
    Some((header, Bytes::copy_from_slice(body)))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> Header {
        Header {
            group_key: "{}:{a=\"b\"}".into(),
            id: "k".into(),
            accepted_unix_ms: 42,
            attempts: 3,
            alerts: 2,
            dead: None,
        }
    }

    #[test]
    fn round_trips() {
        let bytes = encode(&header(), br#"{"version":"4"}"#);
        let (decoded, body) = decode(&bytes).unwrap();
        assert_eq!(decoded, header());
        assert_eq!(&body[..], br#"{"version":"4"}"#);
    }

    #[test]
    fn thread_entries_keep_a_bounded_preview_of_the_group_key() {
        let long = "é".repeat(1000);
        let stored = encode_thread(&long, b"entry");
        let (preview, entry) = decode_thread(&stored).unwrap();
        assert!(preview.len() <= GROUP_PREVIEW_BYTES && long.starts_with(preview), "{preview}");
        assert_eq!(entry, b"entry");
        assert_eq!(decode_thread(&[5, 0, b'a']), None);
        assert_ne!(group_hash("a"), group_hash("b"));
    }

    #[test]
    fn corrupt_records_are_refused() {
        let good = encode(&header(), br#"{"version":"4"}"#);
        assert!(decode(&[]).is_none());
        assert!(decode(&good[..good.len() - 3]).is_none(), "truncated body");
        assert!(decode(&good[..8]).is_none(), "truncated header");
        let mut flipped = good.clone();
        flipped[0] = 9;
        assert!(decode(&flipped).is_none(), "unknown version");
    }
}
