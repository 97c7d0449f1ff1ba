//! KubeSphere-style label conditions with Kubernetes label-selector semantics.
//!
//! As in Prometheus, a label whose value is empty is treated as absent. Value lists are compiled
//! once at config load: short lists stay a vector (a linear scan of a few strings beats hashing),
//! long ones become a hash set, so an `In` list of 1,000 values costs about what one of 10 does.

use std::collections::HashSet;
use std::fmt;

/// Above this many values a hash set is faster than comparing each one.
const LINEAR_SCAN_MAX: usize = 8;

/// The four operators of a Kubernetes label selector.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

/// A compiled set of label values.
#[derive(Debug, Clone)]
enum ValueSet {
    Few(Vec<Box<str>>),
    Many(HashSet<Box<str>>),
}

impl ValueSet {
    fn new(values: &[String]) -> Self {
        if values.len() <= LINEAR_SCAN_MAX {
            ValueSet::Few(values.iter().map(|v| v.as_str().into()).collect())
        } else {
            ValueSet::Many(values.iter().map(|v| v.as_str().into()).collect())
        }
    }

    fn contains(&self, value: &str) -> bool {
        match self {
            ValueSet::Few(values) => values.iter().any(|v| &**v == value),
            ValueSet::Many(values) => values.contains(value),
        }
    }
}

/// One compiled condition.
#[derive(Debug, Clone)]
pub struct Condition {
    label: Box<str>,
    /// The label's slot in the snapshot's `LabelIndex` (`u32::MAX` until interned).
    slot: u32,
    operator: Operator,
    values: ValueSet,
    /// The values as written, for explanations.
    written: Vec<String>,
}

impl Condition {
    /// Builds a condition; `values` must already be validated for the operator.
    pub fn new(label: &str, operator: Operator, values: &[String]) -> Self {
        Condition {
            label: label.into(),
            slot: u32::MAX,
            operator,
            values: ValueSet::new(values),
            written: values.to_vec(),
        }
    }

    /// The label this condition looks at.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// The label's slot in the snapshot's `LabelIndex`.
    pub fn slot(&self) -> u32 {
        self.slot
    }

    pub(super) fn set_slot(&mut self, slot: u32) {
        self.slot = slot;
    }

    /// Whether the condition holds, given the label's value (`None` when absent or empty).
    pub fn holds(&self, value: Option<&str>) -> bool {
        match (self.operator, value) {
            (Operator::In, Some(v)) => self.values.contains(v),
            (Operator::In, None) => false,
            (Operator::NotIn, Some(v)) => !self.values.contains(v),
            (Operator::NotIn, None) => true,
            (Operator::Exists, value) => value.is_some(),
            (Operator::DoesNotExist, value) => value.is_none(),
        }
    }
}

impl fmt::Display for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.operator {
            Operator::In => write!(f, "{} In {:?}", self.label, self.written),
            Operator::NotIn => write!(f, "{} NotIn {:?}", self.label, self.written),
            Operator::Exists => write!(f, "{} Exists", self.label),
            Operator::DoesNotExist => write!(f, "{} DoesNotExist", self.label),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn values(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn in_needs_the_label_and_a_listed_value() {
        let c = Condition::new("severity", Operator::In, &values(&["critical", "warning"]));
        assert!(c.holds(Some("critical")));
        assert!(!c.holds(Some("info")));
        assert!(!c.holds(None));
    }

    #[test]
    fn not_in_holds_for_absent_labels() {
        let c = Condition::new("namespace", Operator::NotIn, &values(&["kube-system"]));
        assert!(c.holds(None));
        assert!(c.holds(Some("prod")));
        assert!(!c.holds(Some("kube-system")));
    }

    #[test]
    fn exists_and_does_not_exist() {
        let exists = Condition::new("team", Operator::Exists, &[]);
        let absent = Condition::new("team", Operator::DoesNotExist, &[]);
        assert!(exists.holds(Some("sre")) && !exists.holds(None));
        assert!(absent.holds(None) && !absent.holds(Some("sre")));
    }

    #[test]
    fn long_value_lists_use_a_set_with_the_same_answers() {
        let many: Vec<String> = (0..1000).map(|i| format!("ns-{i}")).collect();
        let c = Condition::new("namespace", Operator::In, &many);
        assert!(matches!(c.values, ValueSet::Many(_)));
        assert!(c.holds(Some("ns-999")));
        assert!(!c.holds(Some("ns-1000")));
    }

    #[test]
    fn displays_readably() {
        let c = Condition::new("severity", Operator::In, &values(&["critical"]));
        assert_eq!(c.to_string(), r#"severity In ["critical"]"#);
    }
}
