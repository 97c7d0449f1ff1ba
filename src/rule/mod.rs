//! A receiver's rule: its label conditions and Alertmanager matchers, all of which must hold.
//!
//! Rules are compiled once when the config is loaded and evaluated per alert on the request path
//! without allocating. The same evaluation explains a rejection (which clause failed first), so
//! the relay and any route explanation can never disagree.

mod condition;
mod matcher;
mod parse;
mod parse_classic;
mod parse_utf8;

pub use condition::{Condition, ConditionError, Operator};
pub use matcher::{MatchOp, MatchType, Matcher};
pub use parse::{Parsed, ParserMode, parse_matcher_in, parse_matchers, parse_matchers_in};

/// Read access to an alert's labels.
pub trait Labels {
    /// The label's value, or `None` when it is absent or empty (Prometheus treats both alike).
    fn get(&self, name: &str) -> Option<&str>;

    /// The same, for a label name interned at `slot` of the snapshot's [`LabelIndex`]: label sets
    /// decoded against that index answer with one array access instead of a search.
    #[inline]
    fn get_slot(&self, _slot: u32, name: &str) -> Option<&str> {
        self.get(name)
    }
}

/// Every label name the rules of one snapshot look at, each with a slot number.
///
/// Decoding resolves these names once per alert; each condition then reads its label by slot,
/// so evaluating a rule costs an array access per clause, not a string search.
#[derive(Debug, Clone, Default)]
pub struct LabelIndex {
    names: Vec<Box<str>>,
}

impl LabelIndex {
    /// The slot of `name`, added if new.
    pub fn intern(&mut self, name: &str) -> u32 {
        match self.names.iter().position(|n| &**n == name) {
            Some(slot) => slot as u32,
            None => {
                self.names.push(name.into());
                (self.names.len() - 1) as u32
            }
        }
    }

    /// The interned names, by slot.
    pub fn names(&self) -> &[Box<str>] {
        &self.names
    }
}

/// The clause of a rule that rejected an alert.
#[derive(Debug, Clone, Copy)]
pub enum Clause<'r> {
    /// The receiver's tenant (`tenant:` with `tenancy.label`): checked before everything else.
    Tenant(&'r Condition),
    Condition(&'r Condition),
    Matcher(&'r Matcher),
}

impl std::fmt::Display for Clause<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Clause::Tenant(c) => write!(f, "tenant {c}"),
            Clause::Condition(c) => write!(f, "condition {c}"),
            Clause::Matcher(m) => write!(f, "matcher {m}"),
        }
    }
}

/// The tenant, conditions and matchers, ANDed. An empty rule accepts every alert.
///
/// The tenant clause is checked first and on its own: no condition or matcher can widen what a
/// tenant receiver sees, since every clause must hold.
#[derive(Debug, Clone, Default)]
pub struct Rule {
    /// `tenancy.label In [tenant]` for a tenant receiver; `None` for a global one.
    pub tenant: Option<Condition>,
    pub conditions: Vec<Condition>,
    pub matchers: Vec<Matcher>,
}

impl Rule {
    /// Whether every clause holds for these labels.
    #[inline]
    pub fn matches(&self, labels: &impl Labels) -> bool {
        self.first_rejection(labels).is_none()
    }

    /// The first clause, in config order (conditions, then matchers), that does not hold.
    pub fn first_rejection(&self, labels: &impl Labels) -> Option<Clause<'_>> {
        if let Some(t) = self.tenant.as_ref().filter(|t| !t.holds(labels.get_slot(t.slot(), t.label()))) {
            return Some(Clause::Tenant(t));
        }
        if let Some(c) = self.conditions.iter().find(|c| !c.holds(labels.get_slot(c.slot(), c.label()))) {
            return Some(Clause::Condition(c));
        }
        self.matchers.iter().find(|m| !m.matches(labels.get_slot(m.slot, &m.name).unwrap_or(""))).map(Clause::Matcher)
    }

    /// Gives every label name this rule reads a slot in `index`.
    pub fn intern(&mut self, index: &mut LabelIndex) {
        for condition in self.tenant.iter_mut().chain(&mut self.conditions) {
            condition.set_slot(index.intern(condition.label()));
        }
        for matcher in &mut self.matchers {
            matcher.slot = index.intern(&matcher.name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    struct Map(HashMap<&'static str, &'static str>);

    impl Labels for Map {
        fn get(&self, name: &str) -> Option<&str> {
            self.0.get(name).copied().filter(|v| !v.is_empty())
        }
    }

    #[test]
    fn every_clause_must_hold_and_the_first_failure_is_named() {
        let rule = Rule {
            tenant: None,
            conditions: vec![Condition::new("severity", Operator::In, &["critical".into()])],
            matchers: parse_matchers(r#"alertname=~"Kube.*""#).unwrap(),
        };
        let hit = Map(HashMap::from([("severity", "critical"), ("alertname", "KubeDown")]));
        let wrong_severity = Map(HashMap::from([("severity", "info"), ("alertname", "KubeDown")]));
        let wrong_name = Map(HashMap::from([("severity", "critical"), ("alertname", "Disk")]));
        assert!(rule.matches(&hit));
        assert!(rule.first_rejection(&wrong_severity).unwrap().to_string().starts_with("condition severity In"));
        assert_eq!(rule.first_rejection(&wrong_name).unwrap().to_string(), r#"matcher alertname=~"Kube.*""#);
    }

    #[test]
    fn empty_value_counts_as_absent() {
        let rule = Rule {
            tenant: None,
            conditions: vec![Condition::new("team", Operator::DoesNotExist, &[])],
            matchers: vec![],
        };
        assert!(rule.matches(&Map(HashMap::from([("team", "")]))));
    }

    /// A tenant receiver's rule cannot be widened: its tenant is checked first, and an alert
    /// without the tenant label is no tenant's.
    #[test]
    fn the_tenant_clause_comes_first_and_cannot_be_widened() {
        let rule = Rule {
            tenant: Some(Condition::new("namespace", Operator::In, &["team-a".into()])),
            conditions: vec![Condition::new("namespace", Operator::In, &["team-a".into(), "team-b".into()])],
            matchers: vec![],
        };
        assert!(rule.matches(&Map(HashMap::from([("namespace", "team-a")]))));
        let other = Map(HashMap::from([("namespace", "team-b")]));
        assert!(matches!(rule.first_rejection(&other), Some(Clause::Tenant(_))));
        assert!(!rule.matches(&Map(HashMap::new())), "no tenant label: no tenant's");
    }

    #[test]
    fn empty_rule_accepts_everything() {
        assert!(Rule::default().matches(&Map(HashMap::new())));
    }
}
