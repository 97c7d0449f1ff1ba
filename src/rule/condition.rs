//! KubeSphere-style label conditions with Kubernetes label-selector semantics.
//!
//! This module owns everything about an operator: its YAML spelling (serde), which values it
//! takes ([`Condition::parse`]) and what it means ([`Condition::holds`]), so a new operator is
//! a change here alone; the config layer only adds file positions and field paths.
//!
//! As in Prometheus, a label whose value is empty is treated as absent. Value lists are compiled
//! once at config load: short lists stay a vector (a linear scan of a few strings beats hashing),
//! long ones become a hash set, so an `In` list of 1,000 values costs about what one of 10 does.

use std::collections::HashSet;
use std::fmt;

/// Above this many values a hash set is faster than comparing each one.
const LINEAR_SCAN_MAX: usize = 8;

/// The four operators of a Kubernetes label selector, spelled in YAML as they are here
/// (`operator: NotIn`); anything else is serde's "unknown variant" error.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
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

/// Why a written condition is refused: the field it concerns (`label` or `values`, relative to
/// the condition) and a message for the user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionError {
    /// The condition's field at fault: `label` or `values`.
    pub field: &'static str,
    pub message: String,
}

impl Condition {
    /// Checks a condition as written (the label, and the values its operator takes) and compiles
    /// it. Every problem is returned, in field order, so that one check shows them all.
    pub fn parse(label: &str, operator: Operator, values: &[String]) -> Result<Condition, Vec<ConditionError>> {
        let mut errors = Vec::new();
        let mut refuse = |field, message: String| errors.push(ConditionError { field, message });
        if label.is_empty() {
            refuse("label", "must not be empty".into());
        }
        match operator {
            Operator::In | Operator::NotIn if values.is_empty() => {
                refuse("values", format!("{operator:?} needs at least one value"));
            }
            Operator::In | Operator::NotIn if values.iter().any(String::is_empty) => refuse(
                "values",
                "empty strings never match: an empty label value counts as absent (use Exists or DoesNotExist)".into(),
            ),
            Operator::Exists | Operator::DoesNotExist if !values.is_empty() => {
                refuse("values", format!("{operator:?} takes no values"));
            }
            _ => {}
        }
        if errors.is_empty() { Ok(Condition::new(label, operator, values)) } else { Err(errors) }
    }

    /// Builds a condition; `values` must already be validated for the operator (see [`Condition::parse`]).
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
    fn parse_checks_the_values_each_operator_takes() {
        assert!(Condition::parse("team", Operator::Exists, &[]).is_ok());
        assert!(Condition::parse("team", Operator::In, &values(&["sre"])).is_ok());
        let error = |label, operator, list: &[&str]| Condition::parse(label, operator, &values(list)).unwrap_err();
        assert_eq!(
            error("team", Operator::In, &[]),
            [ConditionError { field: "values", message: "In needs at least one value".into() }]
        );
        assert_eq!(error("team", Operator::DoesNotExist, &["x"])[0].message, "DoesNotExist takes no values");
        assert!(error("team", Operator::NotIn, &[""])[0].message.starts_with("empty strings never match"));
        let both = error("", Operator::Exists, &["x"]);
        assert_eq!(both.iter().map(|e| e.field).collect::<Vec<_>>(), ["label", "values"]);
    }

    #[test]
    fn operators_are_spelled_in_yaml_as_in_kubernetes() {
        let parsed: Vec<Operator> = serde_saphyr::from_str("[In, NotIn, Exists, DoesNotExist]").unwrap();
        assert_eq!(parsed, [Operator::In, Operator::NotIn, Operator::Exists, Operator::DoesNotExist]);
        let error = serde_saphyr::from_str::<Operator>("Equals").unwrap_err().to_string();
        assert!(error.contains("unknown variant `Equals`"), "{error}");
    }

    #[test]
    fn displays_readably() {
        let c = Condition::new("severity", Operator::In, &values(&["critical"]));
        assert_eq!(c.to_string(), r#"severity In ["critical"]"#);
    }
}
