//! What a template costs per notification: each preset and a custom `payload` rendered from the
//! v4 payload, beside the untemplated encode of the same notification measured in the same run
//! (the baseline: what amrelay does per receiver without templates). Report the ratios.
//!
//! `cargo bench --bench templates`; the ratio preset / `encode` is the figure (issue 28's target:
//! at most 3× for 10 alerts).

#[path = "common.rs"]
mod common;

use std::hint::black_box;
use std::path::Path;

use amrelay::config::{self, Environment};
use amrelay::payload::{decode, encode};
use amrelay::template::{Preset, Renderer, Reveal};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

/// One receiver per preset (secrets inline, so the bench needs no files) and a custom payload.
fn renderers() -> Vec<(String, std::sync::Arc<Renderer>)> {
    let mut yaml = String::from("receivers:\n");
    for preset in Preset::ALL {
        let options = match preset {
            Preset::PagerDuty => "\n    preset_options: {routing_key: bench-key}",
            Preset::Opsgenie => "\n    preset_options: {api_key: bench-key}",
            Preset::Telegram => "\n    preset_options: {chat_id: -100123}",
            Preset::Webex => "\n    preset_options: {room_id: bench-room, token: bench-token}",
            Preset::Matrix => "\n    preset_options: {access_token: bench-token}",
            Preset::Pushover => "\n    preset_options: {token: bench-token, user_key: bench-user}",
            Preset::Ntfy => "\n    preset_options: {topic: bench}",
            Preset::Gotify => "\n    preset_options: {token: bench-token}",
            _ => "",
        };
        yaml += &format!("  - name: {0}\n    url: http://127.0.0.1:1/\n    preset: {0}{options}\n", preset.name());
    }
    yaml += r#"  - name: custom-payload
    url: http://127.0.0.1:1/
    payload:
      title: '[{{ status | upper }}] {{ commonLabels.alertname }}'
      severity: '{{ commonLabels.severity or "none" }}'
      count: '{{ alerts | length }}'
      alerts: '{{ alerts | toJson }}'
      source: '{{ externalURL }}'
"#;
    let config = config::from_str(&yaml, Path::new("bench.yml"), &Environment::empty()).expect("bench config");
    config.receivers.into_iter().map(|r| (r.name, r.endpoint.template.expect("templated"))).collect()
}

fn render_per_notification(c: &mut Criterion) {
    let renderers = renderers();
    for alerts in [1usize, 10, 100] {
        let mut group = c.benchmark_group(format!("template_{alerts}_alerts"));
        group.throughput(Throughput::Elements(1));
        let batch = common::batch(alerts);
        let n = decode(batch.as_bytes()).unwrap();
        let all: Vec<usize> = (0..n.alerts.len()).collect();
        let mut v4 = Vec::new();
        encode(&n, &all, 0, &mut v4);
        // The baseline: the untemplated encode of the same notification.
        group.bench_function(BenchmarkId::new("encode", "untemplated"), |b| {
            let mut out = Vec::with_capacity(v4.len());
            b.iter(|| {
                out.clear();
                encode(black_box(&n), &all, 0, &mut out);
                out.len()
            })
        });
        for (name, renderer) in &renderers {
            let kind = if name == "custom-payload" { "payload" } else { "preset" };
            group.bench_function(BenchmarkId::new(kind, name), |b| {
                b.iter(|| renderer.render(black_box(&v4), Reveal::Send).expect("renders").body.len())
            });
        }
        group.finish();
    }
}

criterion_group!(benches, render_per_notification);
criterion_main!(benches);
