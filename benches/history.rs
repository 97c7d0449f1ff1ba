//! The history listing (issue 25): a page of 1,000 records out of 1,000,000 in the spool file,
//! by the index a filter picks (receiver, fingerprint, or all records newest first), beside a
//! filter no index narrows (an alert name), which reads up to its scan bound — same run.
//!
//! `cargo bench --bench history`; filling the file takes a minute or two before the first figure.

use std::sync::Arc;
use std::time::Duration;

use amrelay::config::HistoryConfig;
use amrelay::spool::{Spool, SpoolConfig};
use amrelay::{HistoryOutcome, HistoryQuery, HistoryRecord};
use criterion::{Criterion, criterion_group, criterion_main};

const RECORDS: u64 = 1_000_000;
const RECEIVERS: u64 = 100;

fn record(n: u64, now: u64) -> HistoryRecord {
    HistoryRecord {
        seq: 0,
        receiver: format!("team-{}", n % RECEIVERS),
        tenant: None,
        group_key: format!("{{}}:{{alertname=\"Alert{}\"}}", n % 50),
        status: "firing".into(),
        alerts: 3,
        fingerprints: vec![format!("{n:016x}"), format!("{:016x}", n + RECORDS), format!("{:016x}", n + 2 * RECORDS)],
        alertnames: vec![format!("Alert{}", n % 50)],
        id: format!("{n:032x}"),
        attempts: 1,
        outcome: HistoryOutcome::Delivered,
        reason: None,
        http_status: Some(200),
        error: None,
        thread: None,
        accepted_unix_ms: now - 10,
        finished_unix_ms: now,
        latency_ms: 10,
    }
}

/// The newest record's sequence (0 when none).
async fn newest(spool: &Spool) -> u64 {
    let page = spool.history_page(HistoryQuery::parse("limit=1").unwrap()).await.unwrap();
    page.data.first().map_or(0, |r| r.seq)
}

fn listing(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let config = SpoolConfig {
        path: dir.path().join("history.redb"),
        max_bytes: u64::MAX,
        memory_window_bytes: u64::MAX,
        group_commit: true,
    };
    let spool = Arc::new(Spool::open(&config, 10).unwrap().0);
    spool.apply_history(&HistoryConfig { max_bytes: Some(u64::MAX), ..HistoryConfig::default() });
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as u64;
    let started = std::time::Instant::now();
    runtime.block_on(async {
        for n in 0..RECORDS {
            spool.record_history(record(n, now));
            if n % 4096 == 4095 {
                // Keeps the writer within MAX_BEHIND (8192) records, as finishing deliveries are.
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while newest(&spool).await + 4096 <= n && std::time::Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
            }
        }
    });
    let kept = runtime.block_on(newest(&spool));
    eprintln!("filled {kept} of {RECORDS} records in {:?}", started.elapsed());
    let mut group = c.benchmark_group("history_page_of_1000_in_1000000");
    group.sample_size(20).measurement_time(Duration::from_secs(10));
    for (name, query) in [
        ("all_newest", "limit=1000"),
        ("receiver_index", "limit=1000&receiver=team-7"),
        ("receiver_index_deep", &format!("limit=1000&receiver=team-7&after={}", RECORDS / 2)),
        ("fingerprint_index", &format!("limit=1000&fingerprint={:016x}", 123_456)),
        ("alertname_scan", "limit=1000&alertname=Alert7"),
    ] {
        let query = HistoryQuery::parse(query).unwrap();
        let found = runtime.block_on(spool.history_page(query.clone())).unwrap().data.len();
        eprintln!("{name}: {found} records per page");
        group.bench_function(name, |b| b.iter(|| runtime.block_on(spool.history_page(query.clone())).unwrap()));
    }
    group.finish();
}

criterion_group!(benches, listing);
criterion_main!(benches);
