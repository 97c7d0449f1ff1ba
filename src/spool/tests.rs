//! The file spool's own tests: reopening, bounds, migration, corruption.

use super::writer::seq_key_bytes;
use super::*;
use redb::Database;

fn header(group: &str) -> Header {
    Header {
        group_key: group.into(),
        id: format!("id-{group}"),
        accepted_unix_ms: 1,
        attempts: 0,
        alerts: 1,
        dead: None,
    }
}

fn info() -> DeadInfo {
    DeadInfo {
        receiver: "r".into(),
        reason: "max_attempts".into(),
        error: "HTTP 503".into(),
        at_unix_ms: 5,
        destination: None,
    }
}

fn config(dir: &Path, max_bytes: u64) -> SpoolConfig {
    SpoolConfig { path: dir.join("spool.redb"), max_bytes, memory_window_bytes: 1 << 20, group_commit: true }
}

#[tokio::test]
async fn pending_records_survive_reopening_in_order_with_attempts() {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Arc<str> = "r".into();
    {
        let (spool, restored) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
        assert!(restored.is_empty());
        let body = Bytes::from_static(br#"{"version":"4"}"#);
        let mut seqs = Vec::new();
        for group in ["a", "b", "c"] {
            let record = NewRecord { receiver: receiver.clone(), header: header(group), body: body.clone() };
            seqs.extend(spool.append(1, || vec![record]).await.unwrap());
        }
        spool.attempted(&receiver, seqs[2], 4);
        spool.delivered(&receiver, seqs[1]);
        spool.close().await;
    }
    let (spool, restored) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    let groups: Vec<_> = restored.iter().map(|s| (s.header.group_key.as_str(), s.header.attempts)).collect();
    assert_eq!(groups, [("a", 0), ("c", 4)]);
    // Counted again from the file: two records (keys, headers, bodies) and one attempt count.
    let record = seq_key_bytes("r") + record::encode(&header("a"), br#"{"version":"4"}"#).len() as u64;
    assert_eq!(spool.bytes(), 2 * record + seq_key_bytes("r") + 4);
}

#[tokio::test]
async fn full_spool_refuses_and_dead_letters_are_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let receiver: Arc<str> = "r".into();
    let body = Bytes::from_static(br#"{"version":"4","x":"yyyyyyy"}"#);
    // Room for one record: its key, header and body count, not only the body.
    let one = seq_key_bytes("r") + record::encode(&header("a"), &body).len() as u64;
    let (full, _) = Spool::open(&config(dir.path(), one + 10), 2).unwrap();
    full.append(1, || vec![NewRecord { receiver: receiver.clone(), header: header("a"), body: body.clone() }])
        .await
        .unwrap();
    assert_eq!(full.bytes(), one);
    let refused = full
        .append(1, || vec![NewRecord { receiver: receiver.clone(), header: header("b"), body: body.clone() }])
        .await;
    assert!(matches!(refused, Err(SpoolError::Full(max)) if max == one + 10));
    full.close().await;

    let dir = tempfile::tempdir().unwrap();
    let (spool, _) = Spool::open(&config(dir.path(), 1 << 20), 2).unwrap();
    let seq = spool
        .append(1, || vec![NewRecord { receiver: receiver.clone(), header: header("a"), body: body.clone() }])
        .await
        .unwrap();
    spool.dead_letter(&receiver, seq[0], header("a"), body.clone(), info());
    for n in 0..3 {
        let seq = spool
            .append(1, || vec![NewRecord { receiver: receiver.clone(), header: header("c"), body: body.clone() }])
            .await
            .unwrap();
        spool.dead_letter(&receiver, seq[0], header(&format!("d{n}")), body.clone(), info());
    }
    // Dead letters reach the file through the writer; the listing reads beside it.
    spool.flush().await.unwrap();
    let dead = spool.dead_letter_page(0, 10, None).await.unwrap().entries;
    assert_eq!(dead.iter().map(|e| e.header.group_key.as_str()).collect::<Vec<_>>(), ["d1", "d2"]);
    assert_eq!(spool.dead_letter_totals().await.unwrap(), (2, 2 * body.len() as u64));
    let taken = spool.take_dead_letters(Some("r"), ReplayCursor::default()).await.unwrap().taken;
    assert_eq!(taken.len(), 2);
    assert!(spool.dead_letter_page(0, 10, None).await.unwrap().entries.is_empty());
    assert_eq!(spool.dead_letter_totals().await.unwrap(), (0, 0));
    assert_eq!(spool.bytes(), 0, "the file holds nothing any more");
}

/// Regression (issue 21): spools of earlier versions keep thread state by whole groupKey. They
/// still open: each group moves to its hash, with the groupKey's start and its entry kept.
#[tokio::test]
async fn thread_state_of_an_older_spool_moves_to_group_hashes() {
    let dir = tempfile::tempdir().unwrap();
    let long = "k".repeat(100_000);
    {
        let db = Database::create(dir.path().join("spool.redb")).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut legacy = txn.open_table(writer::LEGACY_THREADS).unwrap();
            legacy.insert(("r", long.as_str()), &b"\x2a\0\0\0\0\0\0\0m1"[..]).unwrap();
            legacy.insert(("r", "short"), &b"\x2a\0\0\0\0\0\0\0m2"[..]).unwrap();
        }
        txn.commit().unwrap();
    }
    let (spool, _) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    let listed = spool.list_threads(&"r".into()).await.unwrap();
    assert_eq!(listed.len(), 2);
    let (_, stored) = listed.iter().find(|(group, _)| *group == group_hash(&long)).unwrap();
    let (preview, entry) = record::decode_thread(stored).unwrap();
    assert_eq!((preview.len(), &entry[8..]), (record::GROUP_PREVIEW_BYTES, &b"m1"[..]));
    assert!(spool.bytes() < 1000, "{} bytes for two groups", spool.bytes());
    spool.close().await;
    // Moved once: the old table is gone, a second open finds the same.
    let (spool, _) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    assert_eq!(spool.list_threads(&"r".into()).await.unwrap().len(), 2);
}

#[tokio::test]
async fn an_unreadable_file_is_moved_aside() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("spool.redb"), vec![0xAB; 10_000]).unwrap();
    let (spool, restored) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    assert!(restored.is_empty());
    assert!(spool.is_healthy());
    let moved = std::fs::read_dir(dir.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().contains("corrupt"))
        .count();
    assert_eq!(moved, 1);
}

fn history_record(n: u64, receiver: &str, finished_unix_ms: u64) -> crate::history::Record {
    crate::history::Record {
        seq: 0,
        receiver: receiver.into(),
        tenant: None,
        group_key: format!("{{}}:{{n=\"{n}\"}}"),
        status: "firing".into(),
        alerts: 1,
        fingerprints: vec![format!("{n:016x}")],
        alertnames: vec!["A".into()],
        id: format!("id-{n}"),
        attempts: 1,
        outcome: crate::history::Outcome::Delivered,
        reason: None,
        http_status: Some(200),
        error: None,
        thread: None,
        accepted_unix_ms: finished_unix_ms,
        finished_unix_ms,
        latency_ms: 0,
    }
}

/// Every record of `query`, page after page (`limit` each); fails on a page loop.
async fn all_pages(spool: &Spool, query: &str) -> Vec<u64> {
    let mut seen = Vec::new();
    let mut after = String::new();
    for _ in 0..100_000 {
        let query = crate::history::Query::parse(&format!("{query}{after}")).unwrap();
        let page = spool.history_page(query).await.unwrap();
        seen.extend(page.data.iter().map(|r| r.seq));
        match page.next_after {
            Some(next) => after = format!("&after={next}"),
            None => return seen,
        }
    }
    panic!("pages never ended");
}

/// 10,000 records in the spool file and in memory: pages of 1,000 (the most a page holds) chain
/// with no record twice and none missed, by receiver and overall, newest first.
#[tokio::test]
async fn ten_thousand_history_records_page_without_duplicates_or_gaps() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    let memory = Spool::memory(10, crate::memory::Budget::process());
    let now = crate::history::now_ms();
    for spool in [&file, &memory] {
        for n in 0..10_000 {
            spool.record_history(history_record(n, if n % 2 == 0 { "even" } else { "odd" }, now));
            if n % 1000 == 999 {
                // As deliveries finish: a burst beyond MAX_BEHIND waiting records is dropped.
                spool.flush().await.unwrap();
            }
        }
        spool.flush().await.unwrap();
        let all = all_pages(spool, "limit=1000").await;
        assert_eq!(all.len(), 10_000);
        assert!(all.windows(2).all(|w| w[0] > w[1]), "newest first, each once");
        let even = all_pages(spool, "limit=1000&receiver=even").await;
        assert_eq!(even.len(), 5_000);
        assert!(even.windows(2).all(|w| w[0] > w[1]));
        let one = all_pages(spool, &format!("fingerprint={:016x}", 4321)).await;
        assert_eq!(one.len(), 1);
    }
}

/// `history.max_bytes` holds after every write (the oldest go first), `history.retention` drops
/// what finished too long ago, in the spool file and in memory alike.
#[tokio::test]
async fn history_bounds_drop_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    let memory = Spool::memory(10, crate::memory::Budget::process());
    let bounded = crate::config::HistoryConfig { max_bytes: Some(20_000), ..Default::default() };
    let now = crate::history::now_ms();
    for spool in [&file, &memory] {
        spool.apply_history(&bounded);
        for n in 0..500 {
            spool.record_history(history_record(n, "r", now));
        }
        spool.flush().await.unwrap();
        let page = spool.history_page(crate::history::Query::parse("limit=1000").unwrap()).await.unwrap();
        let on_disk = std::ptr::eq(spool, &file);
        let measure = |r: &crate::history::Record| {
            if on_disk { crate::history::Record::stored_bytes(r.encode().len(), r) } else { r.memory_bytes() }
        };
        let bytes: u64 = page.data.iter().map(measure).sum();
        assert!(bytes <= 20_000, "{bytes} bytes kept");
        assert!(bytes > 20_000 - 2 * bytes / page.data.len() as u64, "no more dropped than needed: {bytes}");
        assert_eq!(page.data[0].id, "id-499", "the newest kept");
    }
    let dir = tempfile::tempdir().unwrap();
    let (file, _) = Spool::open(&config(dir.path(), 1 << 20), 10).unwrap();
    let memory = Spool::memory(10, crate::memory::Budget::process());
    for spool in [&file, &memory] {
        // A week and a day old: past the default retention, dropped at the next write.
        spool.record_history(history_record(1, "r", now - 8 * 24 * 3600 * 1000));
        spool.record_history(history_record(2, "r", now - 6 * 24 * 3600 * 1000));
        spool.flush().await.unwrap();
        spool.record_history(history_record(3, "r", now));
        spool.flush().await.unwrap();
        let page = spool.history_page(crate::history::Query::parse("").unwrap()).await.unwrap();
        let ids: Vec<_> = page.data.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["id-3", "id-2"], "the expired record is gone, the others stay");
    }
}
