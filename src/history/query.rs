//! The history listing's filters, parsed from `GET /api/v1/history?…` (and `amrelay history`),
//! and the one rule of which records match them.

use std::str::FromStr;

use super::{DEFAULT_LIMIT, MAX_LIMIT, Outcome, Record};

/// `?receiver=&tenant=&group_key=&alertname=&fingerprint=&outcome=&since=&until=&limit=&after=`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub receiver: Option<String>,
    pub tenant: Option<String>,
    pub group_key: Option<String>,
    pub alertname: Option<String>,
    pub fingerprint: Option<String>,
    pub outcome: Option<Outcome>,
    /// Finished at or after (ms since the epoch).
    pub since_ms: Option<u64>,
    /// Finished at or before (ms since the epoch).
    pub until_ms: Option<u64>,
    pub limit: usize,
    /// Records older than this sequence (the previous page's `next_after`).
    pub after: Option<u64>,
    /// Set by the server, not the caller: the receivers a viewer or editor may see (`None`:
    /// all), so that its pages are full pages of its own records.
    pub visible: Option<std::collections::BTreeSet<String>>,
}

/// A filter that does not parse, named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct QueryError {
    pub field: &'static str,
    pub message: String,
}

/// Which index a listing walks: the narrowest its filters allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Index<'a> {
    Receiver(&'a str),
    Fingerprint(&'a str),
    /// Every record, newest first.
    All,
}

impl Query {
    /// Parses a URL query string; unknown keys are an error (a typo would otherwise list all).
    pub fn parse(query: &str) -> Result<Query, QueryError> {
        let mut parsed = Query { limit: DEFAULT_LIMIT, ..Query::default() };
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            let value = value.into_owned();
            let text = || (!value.is_empty()).then(|| value.clone());
            match &*key {
                "receiver" => parsed.receiver = text(),
                "tenant" => parsed.tenant = text(),
                "group_key" => parsed.group_key = text(),
                "alertname" => parsed.alertname = text(),
                "fingerprint" => parsed.fingerprint = text(),
                "outcome" if value.is_empty() => {}
                "outcome" => {
                    parsed.outcome = Some(Outcome::parse(&value).ok_or_else(|| QueryError {
                        field: "outcome",
                        message: format!("{value:?} is not one of delivered, dead_lettered, receiver_removed, muted"),
                    })?)
                }
                "since" => parsed.since_ms = time("since", &value)?,
                "until" => parsed.until_ms = time("until", &value)?,
                "limit" => {
                    let limit: usize = value
                        .parse()
                        .map_err(|_| QueryError { field: "limit", message: format!("{value:?} is not a number") })?;
                    parsed.limit = limit.clamp(1, MAX_LIMIT);
                }
                "after" if value.is_empty() => {}
                "after" => {
                    parsed.after = Some(value.parse().map_err(|_| QueryError {
                        field: "after",
                        message: format!("{value:?} is not a cursor (the next_after of a previous page)"),
                    })?)
                }
                other => {
                    return Err(QueryError {
                        field: "query",
                        message: format!(
                            "unknown filter {other:?}; filters: receiver, tenant, group_key, alertname, fingerprint, \
                             outcome, since, until, limit, after"
                        ),
                    });
                }
            }
        }
        Ok(parsed)
    }

    /// The index to walk: by receiver, else by fingerprint, else all records.
    pub fn index(&self) -> Index<'_> {
        match (&self.receiver, &self.fingerprint) {
            (Some(receiver), _) => Index::Receiver(receiver),
            (None, Some(fingerprint)) => Index::Fingerprint(fingerprint),
            (None, None) => Index::All,
        }
    }

    /// Whether `record` passes every filter.
    pub fn matches(&self, record: &Record) -> bool {
        let equal = |wanted: &Option<String>, have: &str| wanted.as_deref().is_none_or(|w| w == have);
        equal(&self.receiver, &record.receiver)
            && self.visible.as_ref().is_none_or(|visible| visible.contains(&record.receiver))
            && self.tenant.as_deref().is_none_or(|t| record.tenant.as_deref() == Some(t))
            && equal(&self.group_key, &record.group_key)
            && self.alertname.as_deref().is_none_or(|a| record.alertnames.iter().any(|n| n == a))
            && self.fingerprint.as_deref().is_none_or(|f| record.fingerprints.iter().any(|n| n == f))
            && self.outcome.is_none_or(|o| o == record.outcome)
            && self.since_ms.is_none_or(|since| record.finished_unix_ms >= since)
            && self.until_ms.is_none_or(|until| record.finished_unix_ms <= until)
    }

    /// Whether every record older than `record` is older than `since` too, so a walk newest
    /// first can stop: sequence is finishing order, and a finishing time is taken just before
    /// the record gets its sequence (a clock step back of up to a minute is allowed for).
    pub fn past_since(&self, record: &Record) -> bool {
        const CLOCK_SLACK_MS: u64 = 60_000;
        self.since_ms.is_some_and(|since| record.finished_unix_ms.saturating_add(CLOCK_SLACK_MS) < since)
    }
}

/// RFC 3339 (`2026-12-07T10:00:00Z`) or Unix seconds (`1765101600`, `1765101600.5`).
fn time(field: &'static str, value: &str) -> Result<Option<u64>, QueryError> {
    if value.is_empty() {
        return Ok(None);
    }
    if let Ok(seconds) = value.parse::<f64>()
        && seconds.is_finite()
        && seconds >= 0.0
    {
        return Ok(Some((seconds * 1000.0) as u64));
    }
    jiff::Timestamp::from_str(value)
        .ok()
        .and_then(|t| u64::try_from(t.as_millisecond()).ok())
        .map(Some)
        .ok_or_else(|| QueryError { field, message: format!("{value:?} is neither an RFC 3339 time nor Unix seconds") })
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A delivered record with every field set, for the history's tests.
    pub(in crate::history) fn record() -> Record {
        Record {
            seq: 7,
            receiver: "team-a".into(),
            tenant: Some("a".into()),
            group_key: "{}:{alertname=\"Disk\"}".into(),
            status: "firing".into(),
            alerts: 2,
            fingerprints: vec!["f1".into(), "f2".into()],
            alertnames: vec!["Disk".into()],
            id: "id".into(),
            attempts: 1,
            outcome: Outcome::Delivered,
            reason: None,
            http_status: Some(200),
            error: None,
            thread: None,
            accepted_unix_ms: 1_000,
            finished_unix_ms: 2_000,
            latency_ms: 1_000,
        }
    }

    #[test]
    fn every_filter_alone_and_together() {
        let r = record();
        for (query, expected) in [
            ("", true),
            ("receiver=team-a", true),
            ("receiver=team-b", false),
            ("tenant=a", true),
            ("tenant=b", false),
            ("group_key=%7B%7D%3A%7Balertname%3D%22Disk%22%7D", true),
            ("group_key=x", false),
            ("alertname=Disk", true),
            ("alertname=Cpu", false),
            ("fingerprint=f2", true),
            ("fingerprint=f3", false),
            ("outcome=delivered", true),
            ("outcome=dead_lettered", false),
            ("since=2", true),
            ("since=2.001", false),
            ("until=2", true),
            ("until=1.999", false),
            ("since=1970-01-01T00:00:01Z&until=1970-01-01T00:00:02Z", true),
            ("receiver=team-a&alertname=Disk&fingerprint=f1&outcome=delivered&since=1", true),
            ("receiver=team-a&alertname=Disk&fingerprint=f1&outcome=dead_lettered", false),
        ] {
            assert_eq!(Query::parse(query).unwrap().matches(&r), expected, "{query}");
        }
    }

    #[test]
    fn bad_filters_are_named_errors() {
        for (query, field) in [
            ("outcome=lost", "outcome"),
            ("since=yesterday", "since"),
            ("limit=many", "limit"),
            ("after=x", "after"),
            ("recever=a", "query"),
        ] {
            assert_eq!(Query::parse(query).unwrap_err().field, field, "{query}");
        }
        assert_eq!(Query::parse("limit=100000").unwrap().limit, MAX_LIMIT);
        assert_eq!(Query::parse("limit=0").unwrap().limit, 1);
    }

    #[test]
    fn the_narrowest_index_is_chosen() {
        assert_eq!(Query::parse("receiver=r&fingerprint=f").unwrap().index(), Index::Receiver("r"));
        assert_eq!(Query::parse("fingerprint=f").unwrap().index(), Index::Fingerprint("f"));
        assert_eq!(Query::parse("alertname=a").unwrap().index(), Index::All);
    }
}
