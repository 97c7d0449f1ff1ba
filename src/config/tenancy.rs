//! `tenancy:` — which label names an alert's tenant, and what receivers saved by a tenant's
//! editor may reach; and `tenant:` on a receiver.
//!
//! A tenant receiver sees only alerts whose tenant label equals its tenant. The check is a
//! clause of its own in the receiver's [`Rule`] (`Rule::tenant`), evaluated before its
//! conditions and matchers, so nothing the receiver writes can widen it; that also holds for
//! `/webhook/{receiver}`, which runs the same rule. Tenancy is off without this block.

use std::net::IpAddr;
use std::sync::Arc;

use serde_saphyr::{Location, Spanned};

use super::issues::Issues;
use super::raw::{RawReceiver, RawTenancy};
use crate::rule::{Condition, Operator, Rule};

/// `tenancy:`, validated.
#[derive(Debug, Clone)]
pub struct Tenancy {
    pub label: String,
    /// What a tenant's console receivers may reach.
    pub guard: Arc<OutboundGuard>,
}

/// What a receiver a tenant's editor can change may connect to: a tenant must not reach the
/// relay's own network. Applied to every console receiver with a `tenant:` (an editor of that
/// tenant can replace it, whoever saved it), never to the config file's or to global ones.
///
/// Link-local addresses (169.254.0.0/16, fe80::/10: cloud metadata endpoints) are always
/// refused; loopback, private and shared ranges unless `allow_private_networks`.
#[derive(Debug, Clone, Default)]
pub struct OutboundGuard {
    pub allow_private_networks: bool,
    /// `allowed_hosts`, compiled; empty: any host (the address rules still apply).
    pub allowed_hosts: Vec<glob::Pattern>,
}

impl OutboundGuard {
    /// Whether a receiver may name `host` under `allowed_hosts`.
    pub fn host_allowed(&self, host: &str) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
        self.allowed_hosts.is_empty() || self.allowed_hosts.iter().any(|p| p.matches(&host))
    }

    /// Why connecting to `ip` is refused, or `None` when it is allowed.
    pub fn refuses(&self, ip: IpAddr) -> Option<&'static str> {
        let ip = ip.to_canonical();
        let (link_local, private) = match ip {
            IpAddr::V4(v4) => {
                let shared = v4.octets()[0] == 100 && (v4.octets()[1] & 0xc0) == 64;
                (v4.is_link_local(), v4.is_loopback() || v4.is_private() || v4.is_unspecified() || shared)
            }
            IpAddr::V6(v6) => {
                (v6.is_unicast_link_local(), v6.is_loopback() || v6.is_unique_local() || v6.is_unspecified())
            }
        };
        if link_local {
            Some("a link-local address (cloud metadata lives there)")
        } else if private && !self.allow_private_networks {
            Some("a loopback or private address (set tenancy.allow_private_networks to allow it)")
        } else {
            None
        }
    }

    /// The field error for a tenant receiver's URL, when its host is refused before any lookup:
    /// outside `allowed_hosts`, or an address literal the rules refuse.
    pub fn check_url(&self, url: &http::Uri) -> Option<String> {
        let host = url.host()?;
        if !self.host_allowed(host) {
            return Some(format!("host {host:?} is not in tenancy.allowed_hosts"));
        }
        let literal = host.trim_start_matches('[').trim_end_matches(']').parse::<IpAddr>().ok()?;
        self.refuses(literal).map(|why| format!("{host} is {why}: a tenant's receiver may not reach it"))
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
    let guard = OutboundGuard { allow_private_networks: raw.allow_private_networks, allowed_hosts };
    Some(Tenancy { label, guard: Arc::new(guard) })
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
    fn link_local_is_always_refused_and_private_ranges_unless_allowed() {
        use super::OutboundGuard;
        let strict = OutboundGuard::default();
        let open = OutboundGuard { allow_private_networks: true, ..OutboundGuard::default() };
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "::1",
            "fd00::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
        ] {
            assert!(strict.refuses(private.parse().unwrap()).is_some(), "{private}");
            assert!(open.refuses(private.parse().unwrap()).is_none(), "{private}");
        }
        for metadata in ["169.254.169.254", "fe80::1", "::ffff:169.254.169.254"] {
            assert!(open.refuses(metadata.parse().unwrap()).is_some(), "{metadata}");
        }
        for public in ["192.0.2.1", "2001:db8::1", "8.8.8.8"] {
            assert!(strict.refuses(public.parse().unwrap()).is_none(), "{public}");
        }
        let url = |u: &str| u.parse::<http::Uri>().unwrap();
        assert!(strict.check_url(&url("http://127.0.0.1:9/")).is_some());
        assert!(strict.check_url(&url("http://[::1]:9/")).is_some());
        assert!(strict.check_url(&url("https://hooks.example.com/")).is_none(), "names are checked at connect");
    }

    #[test]
    fn allowed_hosts_are_globs() {
        let config = load("tenancy: {label: namespace, allowed_hosts: ['*.slack.com', hooks.example.com]}\n").unwrap();
        let guard = config.server.tenancy.unwrap().guard;
        assert!(guard.host_allowed("hooks.slack.com") && guard.host_allowed("HOOKS.example.com"));
        assert!(!guard.host_allowed("slack.com.evil.example") && !guard.host_allowed("127.0.0.1"));
        let error = load("tenancy: {label: namespace, allowed_hosts: ['https://x']}\n").unwrap_err();
        assert!(error.contains("tenancy.allowed_hosts[0]"), "{error}");
    }
}
