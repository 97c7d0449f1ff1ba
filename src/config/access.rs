//! `server.access` — who may do what, for which tenants — and `server.auth_proxy` — who the
//! request is when an authenticating proxy (oauth2-proxy, Grafana-style) sits in front.
//!
//! Authentication (`basic_auth_users`, `authorization`, the proxy's headers) says who a caller
//! is; `server.access` gives that user, or one of their groups, a [`Role`] over tenants. The
//! first entry naming the user or one of their groups applies. Without `server.access` every
//! authenticated caller is `admin`, as before roles existed.

use std::net::IpAddr;

use serde_saphyr::Spanned;

use super::issues::Issues;
use super::raw::{RawAccessRule, RawAuthProxy};

/// What a caller may do. Ordered: each role may do what the roles before it may, except that
/// `sender` may only post alerts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    /// `POST /webhook` and `/webhook/{receiver}` only.
    Sender,
    /// Reads what concerns its tenants' receivers.
    Viewer,
    /// A viewer that also edits its tenants' console receivers, tests them, replays their dead
    /// letters.
    Editor,
    /// Everything.
    Admin,
}

impl Role {
    /// The role written `name`.
    pub fn parse(name: &str) -> Option<Role> {
        [Role::Sender, Role::Viewer, Role::Editor, Role::Admin].into_iter().find(|r| r.as_str() == name)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Viewer => "viewer",
            Role::Editor => "editor",
            Role::Admin => "admin",
        }
    }
}

/// One entry of `server.access`, validated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessRule {
    pub users: Vec<String>,
    pub groups: Vec<String>,
    pub role: Role,
    /// The tenants a viewer or editor acts for (empty for admin and sender).
    pub tenants: Vec<String>,
}

/// `server.auth_proxy`, validated.
#[derive(Debug, Clone)]
pub struct AuthProxy {
    pub user_header: http::HeaderName,
    pub groups_header: Option<http::HeaderName>,
    pub trusted_cidrs: Vec<Cidr>,
}

impl AuthProxy {
    /// Whether the proxy's headers are believed from `peer`.
    pub fn trusts(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.trusted_cidrs.iter().any(|cidr| cidr.contains(peer))
    }
}

/// An address range such as `10.0.0.0/8` or `::1/128` (a bare address is a range of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Parses `address/prefix` or a bare address.
    pub fn parse(text: &str) -> Option<Cidr> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix.parse::<u8>().ok()?)),
            None => (text, None),
        };
        let network: IpAddr = address.parse().ok()?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Cidr { network, prefix })
    }

    /// Whether `ip` lies in this range (an IPv4 range never holds an IPv6 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        in_cidr(ip, self.network, self.prefix)
    }
}

/// Whether `ip` lies in `network/bits` (an IPv4 range never holds an IPv6 address).
pub fn in_cidr(ip: IpAddr, network: IpAddr, bits: u8) -> bool {
    match (ip, network) {
        (IpAddr::V4(ip), IpAddr::V4(net)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(ip) & mask == u32::from(net) & mask
        }
        (IpAddr::V6(ip), IpAddr::V6(net)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(ip) & mask == u128::from(net) & mask
        }
        _ => false,
    }
}

/// Validates `server.access`.
pub(super) fn access(
    issues: &mut Issues,
    raw: Option<&Spanned<Vec<RawAccessRule>>>,
    tenancy: bool,
    proxy: bool,
    // Who can sign in without a proxy: basic-auth users and the bearer token's user (with a
    // proxy, anyone may).
    known: &[&str],
) -> Option<Vec<AccessRule>> {
    let signs_in = |user: &str| proxy || known.contains(&user);
    let spanned = raw?;
    let at = &spanned.referenced;
    let mut rules = Vec::new();
    for (index, rule) in spanned.value.iter().enumerate() {
        let field = format!("server.access[{index}]");
        let Some(role) = rule.role.as_deref().and_then(Role::parse) else {
            let given = rule.role.as_deref().map(|r| format!("{r:?} is not a role: ")).unwrap_or_default();
            issues.add(Some(at), format!("{field}.role"), format!("{given}give admin, editor, viewer or sender"));
            continue;
        };
        if rule.users.is_empty() && rule.groups.is_empty() {
            issues.add(Some(at), &field, "names nobody: give users or groups");
        }
        if !rule.groups.is_empty() && !proxy {
            issues.add(
                Some(at),
                format!("{field}.groups"),
                "groups come from server.auth_proxy.groups_header, which is not set",
            );
        }
        match role {
            Role::Viewer | Role::Editor if !tenancy => issues.add(
                Some(at),
                format!("{field}.role"),
                "a viewer or editor acts for tenants: set tenancy.label (or give the role admin)",
            ),
            Role::Viewer | Role::Editor if rule.tenants.is_empty() => {
                issues.add(Some(at), format!("{field}.tenants"), "a viewer or editor needs at least one tenant")
            }
            Role::Admin | Role::Sender if !rule.tenants.is_empty() => issues.add(
                Some(at),
                format!("{field}.tenants"),
                format!("only a viewer or editor has tenants: a {} acts for all", role.as_str()),
            ),
            _ => {}
        }
        for user in rule.users.iter().filter(|u| !signs_in(u)) {
            issues.warn(
                Some(at),
                format!("{field}.users"),
                format!(
                    "{user:?} is neither in server.basic_auth_users nor server.authorization.user: it cannot sign in"
                ),
            );
        }
        rules.push(AccessRule {
            users: rule.users.clone(),
            groups: rule.groups.clone(),
            role,
            tenants: rule.tenants.clone(),
        });
    }
    Some(rules)
}

/// Validates `server.auth_proxy`.
pub(super) fn auth_proxy(issues: &mut Issues, raw: Option<&Spanned<RawAuthProxy>>) -> Option<AuthProxy> {
    let spanned = raw?;
    let (at, raw) = (&spanned.referenced, &spanned.value);
    let header = |issues: &mut Issues, key: &str, value: Option<&str>| {
        let value = value?;
        match http::HeaderName::from_bytes(value.as_bytes()) {
            Ok(name) => Some(name),
            Err(_) => {
                issues.add(Some(at), format!("server.auth_proxy.{key}"), format!("{value:?} is not a header name"));
                None
            }
        }
    };
    let user_header = header(issues, "user_header", raw.user_header.as_deref());
    if raw.user_header.is_none() {
        issues.add(Some(at), "server.auth_proxy.user_header", "is required (e.g. X-Forwarded-User)");
    }
    let groups_header = header(issues, "groups_header", raw.groups_header.as_deref());
    let mut trusted_cidrs = Vec::new();
    for (index, text) in raw.trusted_cidrs.iter().enumerate() {
        match Cidr::parse(text) {
            Some(cidr) => trusted_cidrs.push(cidr),
            None => issues.add(
                Some(at),
                format!("server.auth_proxy.trusted_cidrs[{index}]"),
                format!("{text:?} is not an address range (e.g. 10.0.0.0/8)"),
            ),
        }
    }
    if raw.trusted_cidrs.is_empty() {
        issues.add(
            Some(at),
            "server.auth_proxy.trusted_cidrs",
            "is required: the proxy's addresses (its headers are believed from nowhere else)",
        );
    }
    Some(AuthProxy { user_header: user_header?, groups_header, trusted_cidrs })
}

/// The rule of `access` for a user and their groups: the first naming either.
pub fn grant<'a>(access: &'a [AccessRule], user: &str, groups: &[&str]) -> Option<&'a AccessRule> {
    access
        .iter()
        .find(|rule| rule.users.iter().any(|u| u == user) || rule.groups.iter().any(|g| groups.contains(&g.as_str())))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::config::{Environment, from_str};

    fn load(text: &str) -> Result<crate::config::Config, String> {
        from_str(text, Path::new("/nonexistent/amrelay.yml"), &Environment::empty()).map_err(|e| e.to_string())
    }

    #[test]
    fn cidrs_hold_their_addresses() {
        let net = Cidr::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.200.3".parse().unwrap()) && !net.contains("10.2.0.1".parse().unwrap()));
        assert!(Cidr::parse("0.0.0.0/0").unwrap().contains("192.0.2.1".parse().unwrap()));
        assert!(Cidr::parse("::1").unwrap().contains("::1".parse().unwrap()));
        assert!(!Cidr::parse("127.0.0.1").unwrap().contains("::1".parse().unwrap()));
        assert!(Cidr::parse("10.0.0.0/33").is_none() && Cidr::parse("x/8").is_none());
    }

    #[test]
    fn access_rules_are_checked_naming_the_field() {
        for (text, field) in [
            ("server: {access: [{users: [a]}]}\n", "server.access[0].role"),
            ("server: {access: [{role: admin}]}\n", "server.access[0]"),
            ("server: {access: [{users: [a], role: viewer, tenants: [t]}]}\n", "server.access[0].role"),
            ("tenancy: {label: ns}\nserver: {access: [{users: [a], role: editor}]}\n", "server.access[0].tenants"),
            ("server: {access: [{users: [a], role: sender, tenants: [t]}]}\n", "server.access[0].tenants"),
            ("server: {access: [{groups: [g], role: admin}]}\n", "server.access[0].groups"),
            ("server: {access: [{users: [a], role: boss}]}\n", "boss"),
            ("server: {auth_proxy: {user_header: X-User}}\n", "server.auth_proxy.trusted_cidrs"),
            ("server: {auth_proxy: {user_header: X-User, trusted_cidrs: [nope]}}\n", "trusted_cidrs[0]"),
            (
                "receivers:\n  - name: a\n    url: http://127.0.0.1:1/\n    http_config: {authorization: {credentials: x, user: am}}\n",
                "authorization.user",
            ),
        ] {
            let error = load(text).unwrap_err();
            assert!(error.contains(field), "{text}: {error}");
        }
    }

    #[test]
    fn a_user_who_cannot_sign_in_is_a_warning() {
        let config =
            load("server:\n  authorization: {credentials: tok}\n  access: [{users: [bearer, ghost], role: admin}]\n")
                .unwrap();
        let warnings: Vec<_> = config.warnings.iter().map(|w| w.message.as_str()).collect();
        assert!(warnings.iter().any(|w| w.contains("\"ghost\"")), "{warnings:?}");
        assert!(!warnings.iter().any(|w| w.contains("\"bearer\"")), "{warnings:?}");
    }

    #[test]
    fn the_first_rule_naming_the_user_or_a_group_applies() {
        let config = load(
            "tenancy: {label: namespace}\nserver:\n  authorization: {credentials: tok, user: alertmanager}\n  auth_proxy: {user_header: X-User, groups_header: X-Groups, trusted_cidrs: [127.0.0.1/32]}\n  access:\n    - {users: [alertmanager], role: sender}\n    - {groups: [team-a], role: editor, tenants: [team-a]}\n    - {users: [ann], role: admin}\n",
        )
        .unwrap();
        let auth = &config.server.inbound.auth;
        assert_eq!(auth.bearer_user, "alertmanager");
        let access = auth.access.as_deref().unwrap();
        assert_eq!(grant(access, "alertmanager", &[]).unwrap().role, Role::Sender);
        assert_eq!(grant(access, "bob", &["x", "team-a"]).unwrap().tenants, ["team-a"]);
        assert_eq!(grant(access, "ann", &["team-a"]).unwrap().role, Role::Editor, "first match");
        assert!(grant(access, "nobody", &[]).is_none());
    }
}
