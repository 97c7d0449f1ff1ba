//! The request path without sockets: decode, rules, encode, and the whole ingest→route→encode
//! path, each beside a naive baseline measured in the same run (decode to `serde_json::Value`,
//! filter, recompute, re-encode), so the gain of amrelay's design is a ratio.

mod common;

use std::hint::black_box;
use std::path::Path;

use amrelay::payload::{Notification, decode, decode_with, decode_within, encode, nesting_exceeds};
use amrelay::queue::Shared;
use amrelay::reload::Reloader;
use amrelay::route::{Recipients, plan};
use amrelay::rule::{Condition, LabelIndex, Operator, Rule};
use amrelay::snapshot::Snapshot;
use amrelay::spool::Spool;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::{Map, Value};

fn decode_batches(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    for n in [1, 10, 100, 1000] {
        let body = common::batch(n);
        group.throughput(Throughput::Elements(n as u64));
        group.bench_with_input(BenchmarkId::new("amrelay", n), &body, |b, body| {
            b.iter(|| black_box(decode(body.as_bytes()).unwrap().alerts.len()))
        });
        group.bench_with_input(BenchmarkId::new("naive_value", n), &body, |b, body| {
            b.iter(|| black_box(serde_json::from_slice::<Value>(body.as_bytes()).unwrap()))
        });
        // The webhook's decode under `max_json_depth` (32): the nesting checked by the decoder
        // in its one pass, against the former separate pre-check then decode.
        let index = LabelIndex::default();
        group.bench_with_input(BenchmarkId::new("depth_folded", n), &body, |b, body| {
            b.iter(|| black_box(decode_within(body.as_bytes(), &index, 32).unwrap().alerts.len()))
        });
        group.bench_with_input(BenchmarkId::new("depth_precheck", n), &body, |b, body| {
            b.iter(|| {
                assert!(!nesting_exceeds(body.as_bytes(), 32));
                black_box(decode_with(body.as_bytes(), &index).unwrap().alerts.len())
            })
        });
    }
    group.finish();
}

fn conditions(c: &mut Criterion) {
    let body = common::batch(100);
    let mut group = c.benchmark_group("conditions");
    group.throughput(Throughput::Elements(100));
    for count in [1, 10, 100] {
        // Conditions that all hold for half the alerts, so evaluation usually runs to the end.
        let conditions: Vec<Condition> = (0..count)
            .map(|i| match i % 3 {
                0 => Condition::new("team", Operator::Exists, &[]),
                1 => Condition::new("namespace", Operator::NotIn, &["kube-system".to_string()]),
                _ => Condition::new("silenced_by", Operator::DoesNotExist, &[]),
            })
            .collect();
        let mut rule = Rule { tenant: None, conditions, matchers: Vec::new() };
        let mut index = LabelIndex::default();
        rule.intern(&mut index);
        let n = decode_with(body.as_bytes(), &index).unwrap();
        group.bench_function(BenchmarkId::new("conditions", count), |b| {
            b.iter(|| n.alerts.iter().filter(|a| rule.matches(&a.labels)).count())
        });
    }
    for values in [1, 10, 100, 1000] {
        let mut list: Vec<String> = (0..values - 1).map(|i| format!("pod-{i}")).collect();
        list.push("api-42".into());
        let mut rule =
            Rule { tenant: None, conditions: vec![Condition::new("pod", Operator::In, &list)], matchers: Vec::new() };
        let mut index = LabelIndex::default();
        rule.intern(&mut index);
        let n = decode_with(body.as_bytes(), &index).unwrap();
        group.bench_function(BenchmarkId::new("in_list_values", values), |b| {
            b.iter(|| n.alerts.iter().filter(|a| rule.matches(&a.labels)).count())
        });
    }
    group.finish();
}

fn encode_payload(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for count in [10, 100, 1000] {
        let body = common::batch(count);
        let n = decode(body.as_bytes()).unwrap();
        let matched: Vec<usize> = (0..count).filter(|i| i % 2 == 0).collect();
        group.throughput(Throughput::Elements(matched.len() as u64));
        group.bench_function(BenchmarkId::new("amrelay", count), |b| {
            let mut out = Vec::with_capacity(body.len());
            b.iter(|| {
                out.clear();
                encode(&n, &matched, 0, &mut out);
                black_box(out.len())
            })
        });
    }
    group.finish();
}

/// Builds a snapshot with `receivers` receivers that each keep the critical alerts.
fn snapshot(runtime: &tokio::runtime::Runtime, receivers: usize) -> std::sync::Arc<Snapshot> {
    let _guard = runtime.enter();
    let mut yaml = String::from("receivers:\n");
    for i in 0..receivers {
        yaml.push_str(&format!("  - name: r{i}\n    url: http://127.0.0.1:9/\n    {}\n", common::CRITICAL_RULE));
    }
    let config =
        amrelay::config::from_str(&yaml, Path::new("bench.yml"), &amrelay::config::Environment::empty()).unwrap();
    let budget = amrelay::Budget::process();
    let spool = std::sync::Arc::new(Spool::memory(10, budget.clone()));
    Reloader::start(Path::new("bench.yml"), config, Shared::new(spool, budget)).unwrap().snapshot()
}

/// The naive way: a `Value` tree, filtered and re-encoded per receiver.
fn naive_route(body: &[u8], receivers: usize) -> usize {
    let value: Value = serde_json::from_slice(body).unwrap();
    let alerts = value["alerts"].as_array().unwrap();
    let mut total = 0;
    for _ in 0..receivers {
        let kept: Vec<&Value> = alerts
            .iter()
            .filter(|a| {
                let labels = &a["labels"];
                labels["severity"] == "critical"
                    && labels["namespace"] != "kube-system"
                    && labels.get("team").and_then(Value::as_str).is_some_and(|t| !t.is_empty())
            })
            .collect();
        if kept.is_empty() {
            continue;
        }
        let mut common: Map<String, Value> = kept[0]["labels"].as_object().unwrap().clone();
        for a in &kept[1..] {
            common.retain(|k, v| a["labels"].get(k) == Some(v));
        }
        let mut out = value.clone();
        out["alerts"] = Value::Array(kept.into_iter().cloned().collect());
        out["commonLabels"] = Value::Object(common);
        total += serde_json::to_vec(&out).unwrap().len();
    }
    total
}

fn amrelay_route(snapshot: &Snapshot, body: &[u8]) -> usize {
    let max_depth = snapshot.server.inbound.limits.max_json_depth;
    let n: Notification = decode_within(body, &snapshot.label_index, max_depth).unwrap();
    plan(snapshot, &n, Recipients::All).iter().map(|p| p.body.len()).sum()
}

fn whole_path(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let mut group = c.benchmark_group("ingest_route_encode");
    for (alerts, receivers) in [(10, 1), (10, 10), (10, 100), (100, 1), (1000, 1)] {
        let body = common::batch(alerts);
        let snap = snapshot(&runtime, receivers);
        assert_eq!(amrelay_route(&snap, body.as_bytes()) > 0, naive_route(body.as_bytes(), receivers) > 0);
        let id = format!("{alerts}_alerts_{receivers}_receivers");
        group.throughput(Throughput::Elements((alerts * receivers) as u64));
        group.bench_function(BenchmarkId::new("amrelay", &id), |b| {
            b.iter(|| amrelay_route(&snap, black_box(body.as_bytes())))
        });
        group.bench_function(BenchmarkId::new("naive_value", &id), |b| {
            b.iter(|| naive_route(black_box(body.as_bytes()), receivers))
        });
    }
    group.finish();
}

criterion_group!(benches, decode_batches, conditions, encode_payload, whole_path);
criterion_main!(benches);
