//! Payloads and configs shared by the benchmarks: realistic Alertmanager batches.

#![allow(dead_code)]

use serde_json::{Value, json};

/// One alert as Alertmanager 0.25 sends it, about 500 bytes; half are `critical`.
pub fn alert(i: usize) -> Value {
    json!({
        "status": if i % 7 == 3 { "resolved" } else { "firing" },
        "labels": {
            "alertname": "KubePodCrashLooping", "cluster": "prod-eu-1", "container": "api",
            "instance": format!("10.0.{}.{}:8080", i / 250, i % 250), "job": "kube-state-metrics",
            "namespace": if i.is_multiple_of(3) { "kube-system" } else { "shop" }, "pod": format!("api-{i}"),
            "prometheus": "monitoring/k8s", "severity": if i.is_multiple_of(2) { "critical" } else { "warning" },
            "team": "checkout",
        },
        "annotations": {
            "description": format!("Pod shop/api-{i} (api) is in waiting state (reason: \"CrashLoopBackOff\")."),
            "summary": "Pod is crash looping.",
        },
        "startsAt": "2026-11-29T04:36:08.439Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
        "fingerprint": format!("{:016x}", i * 7919),
    })
}

/// A version "4" batch of `n` alerts.
pub fn batch(n: usize) -> String {
    json!({
        "receiver": "amrelay", "status": "firing", "alerts": (0..n).map(alert).collect::<Vec<_>>(),
        "groupLabels": {"alertname": "KubePodCrashLooping"},
        "commonLabels": {"alertname": "KubePodCrashLooping", "cluster": "prod-eu-1"},
        "commonAnnotations": {}, "externalURL": "http://alertmanager.example:9093", "version": "4",
        "groupKey": "{}/{severity=~\"critical|warning\"}:{alertname=\"KubePodCrashLooping\"}", "truncatedAlerts": 0,
    })
    .to_string()
}

/// A receiver whose rule keeps the critical alerts outside kube-system.
pub const CRITICAL_RULE: &str = "conditions:
      - {label: severity, operator: In, values: [critical]}
      - {label: namespace, operator: NotIn, values: [kube-system]}
      - {label: team, operator: Exists}";
