//! The spool's cost per accepted batch: appends from many concurrent requests, with group commit
//! on and off, beside the memory-only spool, measured in the same run.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use amrelay::spool::{Header, NewRecord, Spool, SpoolConfig};
use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

fn record(body: &Bytes) -> NewRecord {
    NewRecord {
        receiver: "bench".into(),
        header: Header {
            group_key: "g".into(),
            id: "id".into(),
            accepted_unix_ms: 0,
            attempts: 0,
            alerts: 5,
            dead: None,
        },
        body: body.clone(),
    }
}

/// `concurrency` tasks each append one record, as concurrent requests do; returns when all are on disk.
async fn burst(spool: &Arc<Spool>, body: &Bytes, concurrency: usize) {
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let spool = spool.clone();
        let body = body.clone();
        tasks.push(tokio::spawn(async move { spool.append(1, || vec![record(&body)]).await.unwrap() }));
    }
    for task in tasks {
        task.await.unwrap();
    }
}

fn open(dir: &Path, name: &str, group_commit: bool) -> Arc<Spool> {
    let config = SpoolConfig { path: dir.join(name), max_bytes: u64::MAX, memory_window_bytes: u64::MAX, group_commit };
    Arc::new(Spool::open(&config, 10).unwrap().0)
}

fn appends(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let body = Bytes::from(vec![b'x'; 2500]);
    let mut group = c.benchmark_group("spool_append");
    group.sample_size(10).measurement_time(Duration::from_secs(5));
    for concurrency in [1, 32] {
        group.throughput(Throughput::Elements(concurrency as u64));
        let spools = [
            ("memory", Arc::new(Spool::memory(10, amrelay::Budget::process()))),
            ("redb_group_commit", open(dir.path(), &format!("on-{concurrency}.redb"), true)),
            ("redb_no_group_commit", open(dir.path(), &format!("off-{concurrency}.redb"), false)),
        ];
        for (name, spool) in spools {
            group.bench_function(BenchmarkId::new(name, concurrency), |b| {
                b.iter_custom(|iterations| {
                    runtime.block_on(async {
                        let started = Instant::now();
                        for _ in 0..iterations {
                            burst(&spool, &body, concurrency).await;
                        }
                        started.elapsed()
                    })
                })
            });
        }
    }
    group.finish();
}

criterion_group!(benches, appends);
criterion_main!(benches);
