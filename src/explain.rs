//! Route explanations: which receiver would get which alert of a batch, and why the others not.
//!
//! `amrelay route-test` and `POST /api/v1/route-test` both print an [`Explanation`]. It never
//! disagrees with what the relay does: the verdict for each alert is [`route::takes`], the very
//! filter [`route::plan`] applies, and `enabled` is checked first as `plan` does; only the reason
//! is worked out afterwards, from the same parts (`send_resolved`, then
//! [`Rule::first_rejection`](crate::rule::Rule::first_rejection)). Nothing is queued or delivered
//! and no metric moves.
//!
//! An explanation is bounded whatever the batch (issue 15: 180,000 alerts and 6 receivers made a
//! 128 MB answer): each list shows at most [`MAX_ITEMS`] entries and a body at most
//! [`MAX_BODY_BYTES`], and every cut says how many entries (or bytes) it left out, so the
//! verdicts stay exact while the answer stays small.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use serde::Serialize;

use crate::config::ReceiverConfig;
use crate::payload::{Notification, Status};
use crate::route;
use crate::rule::{Clause, Labels, MatchOp, parse_matchers};

/// The most entries an explanation shows in each list: the alerts, and each receiver's alerts
/// and alerts left out. The rest are counted (`…_omitted`).
pub const MAX_ITEMS: usize = 1000;
/// The largest body an explanation shows; a larger one is left out, its size given.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

/// The routing of one batch.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    /// The batch's alerts, numbered from 0 as in the payload (the first [`MAX_ITEMS`]).
    pub alerts: Vec<AlertView>,
    /// Alerts of the batch not shown in `alerts`.
    pub alerts_omitted: usize,
    /// Every configured receiver, in config order.
    pub receivers: Vec<ReceiverRoute>,
    /// The receivers that would get a notification (at least one alert), in config order.
    pub receiving: Vec<String>,
}

/// One alert of the batch, as the explanation refers to it.
#[derive(Debug, Clone, Serialize)]
pub struct AlertView {
    pub index: usize,
    pub status: &'static str,
    /// Sorted by name.
    pub labels: BTreeMap<String, String>,
}

/// What one receiver would get.
#[derive(Debug, Clone, Serialize)]
pub struct ReceiverRoute {
    pub name: String,
    pub enabled: bool,
    /// Its `tenant:` (`None`: a global receiver, which sees every tenant's alerts).
    pub tenant: Option<String>,
    /// The alerts it would be sent (indexes into the batch), in payload order (the first
    /// [`MAX_ITEMS`]).
    pub alerts: Vec<usize>,
    /// Alerts it would be sent beyond those listed in `alerts`.
    pub alerts_omitted: usize,
    /// Every other alert, with why it is left out (the first [`MAX_ITEMS`]).
    pub left_out: Vec<LeftOut>,
    /// Alerts left out beyond those listed in `left_out`.
    pub left_out_omitted: usize,
    /// The exact body it would be sent (rendered with its template; secrets a preset puts in
    /// the body shown as `<secret>`), when it gets alerts.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// The Content-Type sent with `body`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub content_type: Option<String>,
    /// Why the body could not be rendered (the notification would be dead-lettered, reason
    /// `template`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_error: Option<String>,
    /// The size of a body larger than [`MAX_BODY_BYTES`], which is then not shown.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body_omitted_bytes: Option<usize>,
    /// Whether the body comes from a template (a preset, `payload` or `body`).
    #[serde(skip)]
    pub templated: bool,
}

/// An alert a receiver would not get, and why.
#[derive(Debug, Clone, Serialize)]
pub struct LeftOut {
    pub alert: usize,
    /// `disabled`, `tenant`, `resolved`, `condition`, `matcher` or `max_alerts`.
    pub kind: &'static str,
    /// The first reason, readable: the clause that failed and the label value it saw.
    pub reason: String,
}

/// Explains how `receivers` would route `n`.
pub fn explain<'c>(receivers: impl IntoIterator<Item = &'c ReceiverConfig>, n: &Notification<'_>) -> Explanation {
    let alerts = n
        .alerts
        .iter()
        .enumerate()
        .take(MAX_ITEMS)
        .map(|(index, alert)| AlertView {
            index,
            status: alert.status.as_str(),
            labels: alert.labels.pairs().map(|(k, v)| (k.to_owned(), v.to_owned())).collect(),
        })
        .collect();
    let receivers: Vec<ReceiverRoute> = receivers.into_iter().map(|config| receiver_route(config, n)).collect();
    let receiving = receivers.iter().filter(|r| !r.alerts.is_empty()).map(|r| r.name.clone()).collect();
    let alerts_omitted = n.alerts.len().saturating_sub(MAX_ITEMS);
    Explanation { alerts, alerts_omitted, receivers, receiving }
}

fn receiver_route(config: &ReceiverConfig, n: &Notification<'_>) -> ReceiverRoute {
    let mut route = ReceiverRoute {
        name: config.name.clone(),
        enabled: config.enabled,
        tenant: config.tenant.clone(),
        alerts: Vec::new(),
        alerts_omitted: 0,
        left_out: Vec::new(),
        left_out_omitted: 0,
        body: None,
        content_type: None,
        body_error: None,
        body_omitted_bytes: None,
        templated: config.endpoint.template.is_some(),
    };
    let mut taken = Vec::new();
    let mut sent = 0;
    for (index, alert) in n.alerts.iter().enumerate() {
        let left_out = |kind, reason| LeftOut { alert: index, kind, reason };
        let full = route.left_out.len() >= MAX_ITEMS;
        if full && !(config.enabled && route::takes(config, alert)) {
            // Counted, not described: the reason would be built only to be thrown away.
            route.left_out_omitted += 1;
        } else if !config.enabled {
            route.left_out.push(left_out("disabled", "receiver disabled (enabled: false)".into()));
        } else if route::takes(config, alert) {
            taken.push(index);
            if config.max_alerts != 0 && sent >= config.max_alerts {
                if full {
                    route.left_out_omitted += 1;
                } else {
                    let reason = format!("cut by max_alerts: {} (counted in truncatedAlerts)", config.max_alerts);
                    route.left_out.push(left_out("max_alerts", reason));
                }
            } else {
                sent += 1;
                if route.alerts.len() < MAX_ITEMS {
                    route.alerts.push(index);
                } else {
                    route.alerts_omitted += 1;
                }
            }
        } else if let Some(Clause::Tenant(t)) = config.rule.first_rejection(&alert.labels) {
            // Before `resolved`: another tenant's alert is left out for that, whatever its status.
            route
                .left_out
                .push(left_out("tenant", format!("{} {}", Clause::Tenant(t), seen(&alert.labels, t.label()))));
        } else if !config.send_resolved && alert.status == Status::Resolved {
            route.left_out.push(left_out("resolved", "resolved and send_resolved is false".into()));
        } else {
            let (kind, reason) = match config.rule.first_rejection(&alert.labels) {
                Some(Clause::Tenant(t)) => {
                    ("tenant", format!("{} {}", Clause::Tenant(t), seen(&alert.labels, t.label())))
                }
                Some(Clause::Condition(c)) => {
                    ("condition", format!("{} {}", Clause::Condition(c), seen(&alert.labels, c.label())))
                }
                Some(Clause::Matcher(m)) => {
                    ("matcher", format!("{} {}", Clause::Matcher(m), seen(&alert.labels, &m.name)))
                }
                // Unreachable while `takes` is what it is; said plainly rather than hidden.
                None => ("rule", "rejected by the receiver's rule".into()),
            };
            route.left_out.push(left_out(kind, reason));
        }
    }
    if !taken.is_empty() {
        body(config, n, &taken, &mut route);
    }
    route
}

/// The body `plan` and delivery would send: the v4 payload of the taken alerts, rendered with
/// the receiver's template.
fn body(config: &ReceiverConfig, n: &Notification<'_>, taken: &[usize], route: &mut ReceiverRoute) {
    let mut payload = Vec::new();
    crate::payload::encode(n, taken, config.max_alerts, &mut payload);
    let shown = |route: &mut ReceiverRoute, body: &[u8]| {
        if body.len() > MAX_BODY_BYTES {
            route.body_omitted_bytes = Some(body.len());
        } else {
            route.body = Some(String::from_utf8_lossy(body).into_owned());
        }
    };
    match &config.endpoint.template {
        None => {
            shown(route, &payload);
            route.content_type = Some("application/json".into());
        }
        Some(renderer) => {
            route.content_type = renderer.content_type().to_str().ok().map(str::to_owned);
            match renderer.render(&payload, crate::template::Reveal::Preview) {
                Ok(rendered) => shown(route, &rendered.body),
                Err(e) => route.body_error = Some(e.to_string()),
            }
        }
    }
}

/// What the alert had for `label`, as a rejection reason shows it.
fn seen(labels: &impl Labels, label: &str) -> String {
    match labels.get(label) {
        Some(value) => format!("does not hold: {label}={value:?}"),
        None => format!("does not hold: no {label} label"),
    }
}

impl Explanation {
    /// The explanation as `amrelay route-test` prints it: per receiver, `+` for each alert it
    /// gets and `-` with the reason for each it does not.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let total = self.alerts.len() + self.alerts_omitted;
        let _ = writeln!(out, "{total} alert(s):");
        for alert in &self.alerts {
            let _ = writeln!(out, "  [{}] {:<8} {}", alert.index, alert.status, label_text(&alert.labels));
        }
        if self.alerts_omitted > 0 {
            let _ = writeln!(out, "  … {} more not shown", self.alerts_omitted);
        }
        for receiver in &self.receivers {
            let _ = writeln!(out);
            let state = if receiver.enabled { "" } else { " (disabled)" };
            let gets = match receiver.alerts.len() + receiver.alerts_omitted {
                0 => "gets nothing".to_owned(),
                k => format!("gets {k} of {total}"),
            };
            let tenant = receiver.tenant.as_deref().map(|t| format!(" [tenant {t}]")).unwrap_or_default();
            let _ = writeln!(out, "{}{tenant}{state}: {gets}", receiver.name);
            for &index in &receiver.alerts {
                let _ = writeln!(out, "  + [{index}] {}", alert_name(self.alerts.get(index)));
            }
            if receiver.alerts_omitted > 0 {
                let _ = writeln!(out, "  + … {} more not shown", receiver.alerts_omitted);
            }
            for left in &receiver.left_out {
                let _ =
                    writeln!(out, "  - [{}] {}: {}", left.alert, alert_name(self.alerts.get(left.alert)), left.reason);
            }
            if receiver.left_out_omitted > 0 {
                let _ = writeln!(out, "  - … {} more not shown", receiver.left_out_omitted);
            }
            if let Some(bytes) = receiver.body_omitted_bytes {
                let _ = writeln!(out, "  body: {bytes} bytes, over the {MAX_BODY_BYTES} shown at most");
            }
            if let Some(error) = &receiver.body_error {
                let _ = writeln!(out, "  body: cannot be rendered, would be dead-lettered (template): {error}");
            }
            if let Some(body) = &receiver.body {
                let content_type = receiver.content_type.as_deref().unwrap_or("");
                if receiver.templated {
                    let _ = writeln!(out, "  body ({content_type}, {} bytes):", body.len());
                    for line in body.lines() {
                        let _ = writeln!(out, "    {line}");
                    }
                } else {
                    // One long line of JSON helps no one here; --json has it byte for byte.
                    let _ = writeln!(
                        out,
                        "  body ({content_type}, {} bytes): the v4 payload of these alerts (--json shows it)",
                        body.len()
                    );
                }
            }
        }
        let _ = writeln!(out);
        let receiving = if self.receiving.is_empty() { "(none)".to_owned() } else { self.receiving.join(",") };
        let _ = writeln!(out, "receivers: {receiving}");
        out
    }
}

fn label_text(labels: &BTreeMap<String, String>) -> String {
    let pairs: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{{{}}}", pairs.join(", "))
}

fn alert_name(alert: Option<&AlertView>) -> &str {
    match alert {
        Some(alert) => alert.labels.get("alertname").map_or("(no alertname)", String::as_str),
        None => "(not shown)",
    }
}

/// A version "4" payload of firing alerts, each given by its labels in matcher syntax
/// (`alertname=X,severity=critical`, or `{alertname="X", severity="critical"}`): the quick
/// alerts of `amrelay route-test --alert`.
pub fn payload_from_labels(specs: &[String]) -> Result<String, String> {
    let mut alerts = Vec::with_capacity(specs.len());
    for spec in specs {
        let mut labels = serde_json::Map::new();
        for matcher in parse_matchers(spec)? {
            match matcher.op {
                MatchOp::Equal(value) => labels.insert(matcher.name, value.into()),
                _ => return Err(format!("--alert {spec:?}: give labels as name=value, not {matcher}")),
            };
        }
        alerts.push(serde_json::json!({
            "status": "firing", "labels": labels, "annotations": {},
            "startsAt": "1970-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z", "generatorURL": "",
            "fingerprint": format!("{:016x}", alerts.len()),
        }));
    }
    let payload = serde_json::json!({
        "receiver": "amrelay", "status": "firing", "alerts": alerts, "groupLabels": {}, "commonLabels": {},
        "commonAnnotations": {}, "externalURL": "", "version": "4", "groupKey": "{}:{route_test=\"true\"}",
        "truncatedAlerts": 0,
    });
    Ok(payload.to_string())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::payload::decode;

    const CONFIG: &str = r#"
receivers:
  - name: crit
    url: http://127.0.0.1:1/
    send_resolved: false
    conditions:
      - {label: severity, operator: In, values: [critical]}
  - name: kube
    url: http://127.0.0.1:1/
    max_alerts: 1
    matchers: ['alertname=~"Kube.*"']
  - name: off
    url: http://127.0.0.1:1/
    enabled: false
"#;

    fn explanation(specs: &[&str], resolved: &[usize]) -> Explanation {
        let config =
            crate::config::from_str(CONFIG, Path::new("amrelay.yml"), &crate::config::Environment::empty()).unwrap();
        let specs: Vec<String> = specs.iter().map(|s| s.to_string()).collect();
        let mut payload: serde_json::Value = serde_json::from_str(&payload_from_labels(&specs).unwrap()).unwrap();
        for &i in resolved {
            payload["alerts"][i]["status"] = "resolved".into();
        }
        let body = payload.to_string();
        explain(&config.receivers, &decode(body.as_bytes()).unwrap())
    }

    #[test]
    fn names_the_first_reason_for_each_alert_left_out() {
        let e = explanation(
            &["alertname=KubeA,severity=critical", "alertname=KubeB,severity=info", "alertname=Disk,severity=critical"],
            &[2],
        );
        assert_eq!(e.receiving, ["crit", "kube"]);
        let [crit, kube, off] = &e.receivers[..] else { panic!("three receivers") };
        assert_eq!(crit.alerts, [0]);
        assert_eq!(crit.left_out[0].kind, "condition");
        assert_eq!(crit.left_out[0].reason, r#"condition severity In ["critical"] does not hold: severity="info""#);
        assert_eq!(crit.left_out[1].kind, "resolved");
        assert_eq!(kube.alerts, [0]);
        assert_eq!(kube.left_out[0].kind, "max_alerts");
        assert_eq!(kube.left_out[1].reason, r#"matcher alertname=~"Kube.*" does not hold: alertname="Disk""#);
        assert!(off.alerts.is_empty() && off.left_out.iter().all(|l| l.kind == "disabled"));
        let text = e.to_text();
        assert!(text.contains("off (disabled): gets nothing"), "{text}");
        assert!(text.contains("  + [0] KubeA"), "{text}");
        assert!(text.ends_with("receivers: crit,kube\n"), "{text}");
    }

    /// Regression (issue 15): 180,000 alerts and 6 receivers made a 128 MB explanation. Every
    /// list is now cut at MAX_ITEMS and a body at MAX_BODY_BYTES, each cut counted, and the
    /// counts still add up to the batch.
    #[test]
    fn a_huge_batch_gives_a_bounded_explanation_that_counts_what_it_leaves_out() {
        let count = MAX_ITEMS * 3 + 7;
        let specs: Vec<String> = (0..count)
            .map(|i| {
                let severity = if i % 2 == 0 { "critical" } else { "info" };
                format!("alertname=Kube{i},severity={severity},pad={}", "p".repeat(100))
            })
            .collect();
        let specs: Vec<&str> = specs.iter().map(String::as_str).collect();
        let e = explanation(&specs, &[]);
        assert_eq!(e.alerts.len(), MAX_ITEMS);
        assert_eq!(e.alerts.len() + e.alerts_omitted, count);
        let [crit, kube, off] = &e.receivers[..] else { panic!("three receivers") };
        for receiver in [crit, kube, off] {
            assert!(receiver.alerts.len() <= MAX_ITEMS && receiver.left_out.len() <= MAX_ITEMS);
            let accounted =
                receiver.alerts.len() + receiver.alerts_omitted + receiver.left_out.len() + receiver.left_out_omitted;
            assert_eq!(accounted, count, "{}: every alert is listed or counted", receiver.name);
        }
        assert_eq!(crit.alerts.len() + crit.alerts_omitted, count.div_ceil(2), "every critical alert");
        assert!(crit.body.is_none() && crit.body_omitted_bytes.unwrap() > MAX_BODY_BYTES);
        assert_eq!((kube.alerts.len(), kube.alerts_omitted), (1, 0), "max_alerts: 1");
        assert!(kube.body.is_some(), "a small body is shown");
        let json = serde_json::to_vec(&e).unwrap();
        assert!(json.len() < 2 * 1024 * 1024, "{} bytes", json.len());
        let text = e.to_text();
        assert!(text.contains(&format!("… {} more not shown", e.alerts_omitted)), "{}", &text[..500]);
        assert!(text.contains(&format!("crit: gets {} of {count}", count.div_ceil(2))));
    }

    #[test]
    fn quick_alerts_take_only_equalities() {
        assert!(payload_from_labels(&["alertname=~X".to_owned()]).is_err());
        assert!(payload_from_labels(&["{a=\"1, 2\", b=c}".to_owned()]).is_ok());
    }
}
