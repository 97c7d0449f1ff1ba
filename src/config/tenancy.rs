//! `tenancy:` — which label names an alert's tenant, and what receivers saved by a tenant's
//! editor may reach; and `tenant:` on a receiver.
//!
//! A tenant receiver sees only alerts whose tenant label equals its tenant. The check is a
//! clause of its own in the receiver's [`Rule`] (`Rule::tenant`), evaluated before its
//! conditions and matchers, so nothing the receiver writes can widen it; that also holds for
//! `/webhook/{receiver}`, which runs the same rule. Tenancy is off without this block.

use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::issues::Issues;
use super::raw::RawReceiver;
use crate::rule::{Condition, Operator, Rule};

/// `tenancy:` as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTenancy {
    /// The label whose value is an alert's tenant (e.g. `namespace`).
    pub label: Option<String>,
    /// Receivers saved by an editor may reach private ranges (never loopback or link-local).
    pub allow_private_networks: bool,
    /// Host globs (`*.slack.com`) receivers saved by an editor are restricted to, when set.
    pub allowed_hosts: Vec<String>,
}

/// `tenancy:`, validated.
#[derive(Debug, Clone, Default)]
pub struct Tenancy {
    pub label: String,
    pub allow_private_networks: bool,
    /// `allowed_hosts`, compiled; empty: any host (the address rules still apply).
    pub allowed_hosts: Vec<glob::Pattern>,
}

impl Tenancy {
    /// Whether an editor's receiver may name `host` (lowercase) under `allowed_hosts`.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.is_empty() || self.allowed_hosts.iter().any(|p| p.matches(&host))
    }
}

/// Validates `tenancy:`.
pub(super) fn tenancy(issues: &mut Issues, raw: Option<&Spanned<RawTenancy>>) -> Option<Tenancy> {
    let spanned = raw?;
    let (at, raw) = (&spanned.referenced, &spanned.value);
    let label = match raw.label.as_deref() {
        Some(label) if is_label_name(label) => label.to_owned(),
        Some(label) => {
            issues.add(Some(at), "tenancy.label", format!("{label:?} is not a label name"));
            return None;
        }
        None => {
            issues.add(Some(at), "tenancy.label", "is required: the label whose value is an alert's tenant");
            return None;
        }
    };
    let mut allowed_hosts = Vec::new();
    for (index, host) in raw.allowed_hosts.iter().enumerate() {
        match glob::Pattern::new(&host.to_ascii_lowercase()) {
            Ok(pattern) if !host.contains(['/', ':', '@']) && !host.is_empty() => allowed_hosts.push(pattern),
            _ => issues.add(
                Some(at),
                format!("tenancy.allowed_hosts[{index}]"),
                format!("{host:?} is not a host glob (e.g. `*.slack.com`; no scheme, port or path)"),
            ),
        }
    }
    Some(Tenancy { label, allow_private_networks: raw.allow_private_networks, allowed_hosts })
}

fn is_label_name(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A receiver's `tenant:`: checks the name, puts the tenant clause into its rule, and warns when
/// its own conditions or matchers on the tenant label can never hold for its tenant.
pub(super) fn receiver_tenant(
    issues: &mut Issues,
    field: &str,
    at: &Location,
    raw: &RawReceiver,
    label: Option<&str>,
    rule: &mut Rule,
) -> Option<String> {
    let spanned = raw.tenant.as_ref()?;
    let (at, tenant) = (if spanned.referenced.line() > 0 { &spanned.referenced } else { at }, &spanned.value);
    let Some(label) = label else {
        issues.add(Some(at), format!("{field}.tenant"), "needs tenancy.label: which label names an alert's tenant");
        return None;
    };
    if tenant.is_empty() {
        issues.add(Some(at), format!("{field}.tenant"), "must not be empty");
        return None;
    }
    for (index, condition) in rule.conditions.iter().enumerate() {
        if condition.label() == label && !condition.holds(Some(tenant)) {
            let at = raw.conditions.get(index).map(|c| &c.referenced);
            issues.warn(
                at,
                format!("{field}.conditions[{index}]"),
                format!("can never hold: this receiver only sees alerts with {label}={tenant:?} (tenant: {tenant})"),
            );
        }
    }
    for (index, written) in raw.matchers.iter().enumerate() {
        let parsed = crate::rule::parse_matchers_in(crate::rule::ParserMode::Fallback, &written.value);
        let never = parsed.ok().is_some_and(|p| p.matchers.iter().any(|m| m.name == label && !m.matches(tenant)));
        if never {
            issues.warn(
                Some(&written.referenced),
                format!("{field}.matchers[{index}]"),
                format!("can never match: this receiver only sees alerts with {label}={tenant:?} (tenant: {tenant})"),
            );
        }
    }
    rule.tenant = Some(Condition::new(label, Operator::In, std::slice::from_ref(tenant)));
    Some(tenant.clone())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::{Environment, from_str};

    fn load(text: &str) -> Result<crate::config::Config, String> {
        from_str(text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty()).map_err(|e| e.to_string())
    }

    #[test]
    fn a_tenant_needs_the_tenancy_label() {
        let error = load("receivers:\n  - {name: a, url: http://127.0.0.1:1/, tenant: team-a}\n").unwrap_err();
        assert!(error.contains("receivers[0].tenant") && error.contains("tenancy.label"), "{error}");
        let config = load("tenancy: {label: namespace}\nreceivers:\n  - {name: a, url: http://127.0.0.1:1/, tenant: team-a}\n  - {name: b, url: http://127.0.0.1:1/}\n").unwrap();
        assert_eq!(config.receivers[0].tenant.as_deref(), Some("team-a"));
        assert_eq!(config.receivers[1].tenant, None);
        assert_eq!(config.server.tenancy.unwrap().label, "namespace");
    }

    #[test]
    fn own_rules_that_never_match_the_tenant_warn_naming_the_field() {
        let config = load(
            "tenancy: {label: namespace}\nreceivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    tenant: team-a\n    conditions:\n      - {label: namespace, operator: In, values: [team-b]}\n    matchers: ['severity=\"x\"', 'namespace=\"team-c\"']\n",
        )
        .unwrap();
        let fields: Vec<_> = config.warnings.iter().map(|w| w.field.as_str()).collect();
        assert!(fields.contains(&"receivers[0].conditions[0]"), "{fields:?}");
        assert!(fields.contains(&"receivers[0].matchers[1]"), "{fields:?}");
        assert!(!fields.contains(&"receivers[0].matchers[0]"), "{fields:?}");
    }

    #[test]
    fn allowed_hosts_are_globs() {
        let config = load("tenancy: {label: namespace, allowed_hosts: ['*.slack.com', hooks.example.com]}\n").unwrap();
        let tenancy = config.server.tenancy.unwrap();
        assert!(tenancy.host_allowed("hooks.slack.com") && tenancy.host_allowed("HOOKS.example.com"));
        assert!(!tenancy.host_allowed("slack.com.evil.example") && !tenancy.host_allowed("127.0.0.1"));
        let error = load("tenancy: {label: namespace, allowed_hosts: ['https://x']}\n").unwrap_err();
        assert!(error.contains("tenancy.allowed_hosts[0]"), "{error}");
    }
}
