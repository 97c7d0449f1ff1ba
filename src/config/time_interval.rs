//! `time_intervals:` — named sets of time intervals, with Alertmanager's syntax and semantics
//! (its `timeinterval` package), so that an Alertmanager config's `time_intervals` block pasted
//! as is loads and means the same thing.
//!
//! An interval contains an instant when every field it sets contains it (a field left out
//! contains everything): `times` (`HH:MM`, start inclusive, end exclusive, `24:00` allowed as
//! an end), `weekdays` (`monday:friday`), `days_of_month` (`1:5`, negatives count from the end
//! of the month: `-3:-1` is the last three days), `months` (`may:august` or `5:8`) and `years`
//! (`2024:2026`), all in `location` (an IANA name, from the time zone database built into
//! amrelay) or UTC. Error messages are Alertmanager's, placed at the YAML position.

use std::collections::BTreeMap;
use std::sync::Arc;

use jiff::tz::TimeZone;
use serde::Deserialize;
use serde_saphyr::{Location, Spanned};

use super::issues::Issues;

/// One entry of the top-level `time_intervals:`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTimeIntervalSet {
    pub name: Spanned<String>,
    #[serde(default)]
    pub time_intervals: Vec<Spanned<RawTimeInterval>>,
}

/// One interval of a named set, as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimeInterval {
    pub times: Vec<Spanned<RawTimeRange>>,
    pub weekdays: Vec<Spanned<Scalar>>,
    pub days_of_month: Vec<Spanned<Scalar>>,
    pub months: Vec<Spanned<Scalar>>,
    pub years: Vec<Spanned<Scalar>>,
    pub location: Option<Spanned<String>>,
}

/// `{start_time, end_time}`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RawTimeRange {
    pub start_time: Option<String>,
    pub end_time: Option<String>,
}

/// A range written as a string (`'1:5'`) or, as YAML lets Alertmanager's users write it, a bare
/// number (`1`, `2024`).
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum Scalar {
    Number(i64),
    Text(String),
}

impl Scalar {
    fn text(&self) -> String {
        match self {
            Scalar::Number(n) => n.to_string(),
            Scalar::Text(t) => t.clone(),
        }
    }
}

/// An inclusive range of weekdays (0 = Sunday), days of the month, months or years.
pub type Range = (i32, i32);

/// One validated interval: every field set must contain an instant for the interval to.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TimeInterval {
    /// Minutes of the day, `[start, end)`.
    pub times: Vec<(u16, u16)>,
    pub weekdays: Vec<Range>,
    pub days_of_month: Vec<Range>,
    pub months: Vec<Range>,
    pub years: Vec<Range>,
    /// `None`: UTC.
    pub location: Option<TimeZone>,
}

/// Every named set of the config, by name.
#[derive(Debug, Clone, Default)]
pub struct TimeIntervals {
    pub by_name: BTreeMap<String, Arc<[TimeInterval]>>,
}

static TZDB: std::sync::LazyLock<jiff::tz::TimeZoneDatabase> =
    std::sync::LazyLock::new(jiff::tz::TimeZoneDatabase::bundled);

impl TimeInterval {
    /// Whether the interval contains `instant` (Alertmanager's `ContainsTime`).
    pub fn contains(&self, instant: jiff::Timestamp) -> bool {
        let t = instant.to_zoned_datetime(self.location.clone().unwrap_or(TimeZone::UTC));
        let minute = i32::from(t.hour()) * 60 + i32::from(t.minute());
        if !self.times.is_empty() && !self.times.iter().any(|&(s, e)| minute >= i32::from(s) && minute < i32::from(e)) {
            return false;
        }
        if !self.days_of_month.is_empty() {
            let days = i32::from(t.days_in_month());
            let day = i32::from(t.day());
            let within = self.days_of_month.iter().any(|&(begin, end)| {
                let begin = if begin < 0 { days + begin + 1 } else { begin };
                let end = if end < 0 { days + end + 1 } else { end };
                // A start after the month's end (`30:31` in February) contains nothing.
                begin <= days && day >= begin.clamp(-days, days) && day <= end.clamp(-days, days)
            });
            if !within {
                return false;
            }
        }
        let within =
            |ranges: &[Range], value: i32| ranges.is_empty() || ranges.iter().any(|&(b, e)| value >= b && value <= e);
        within(&self.months, i32::from(t.month()))
            && within(&self.weekdays, i32::from(t.weekday().to_sunday_zero_offset()))
            && within(&self.years, i32::from(t.year()))
    }
}

/// Validates the top-level lists (`time_intervals:` and Alertmanager's older
/// `mute_time_intervals:`, each with its key); names must be unique across them.
pub(super) fn parse(issues: &mut Issues, lists: &[(&str, &Vec<Spanned<RawTimeIntervalSet>>)]) -> TimeIntervals {
    let mut by_name = BTreeMap::new();
    for (key, index, set) in lists.iter().flat_map(|(key, raw)| raw.iter().enumerate().map(move |(i, s)| (key, i, s))) {
        let field = format!("{key}[{index}]");
        let name = &set.value.name;
        if name.value.is_empty() {
            issues.add(Some(&name.referenced), format!("{field}.name"), "must not be empty");
        }
        let intervals: Vec<TimeInterval> = set
            .value
            .time_intervals
            .iter()
            .enumerate()
            .map(|(i, interval)| {
                let field = format!("{field}.time_intervals[{i}]");
                let mut report = |at: &Location, key: &str, message: String| {
                    issues.add(Some(at), format!("{field}.{key}"), message);
                };
                interval_from(&interval.value, &mut report)
            })
            .collect();
        if by_name.insert(name.value.clone(), intervals.into()).is_some() {
            issues.add(
                Some(&name.referenced),
                format!("{field}.name"),
                format!("duplicate time interval name {:?}", name.value),
            );
        }
    }
    TimeIntervals { by_name }
}

/// Validates one interval, reporting each mistake at the position of the value at fault.
pub fn interval_from(raw: &RawTimeInterval, report: &mut dyn FnMut(&Location, &str, String)) -> TimeInterval {
    let mut interval = TimeInterval::default();
    for (i, range) in raw.times.iter().enumerate() {
        match time_range(&range.value) {
            Ok(minutes) => interval.times.push(minutes),
            Err(e) => report(&range.referenced, &format!("times[{i}]"), e),
        }
    }
    let mut ranges = |values: &[Spanned<Scalar>], key: &str, check: fn(&str) -> Result<Range, String>| {
        let mut out = Vec::new();
        for (i, value) in values.iter().enumerate() {
            match check(&value.value.text()) {
                Ok(range) => out.push(range),
                Err(e) => report(&value.referenced, &format!("{key}[{i}]"), e),
            }
        }
        out
    };
    interval.weekdays = ranges(&raw.weekdays, "weekdays", weekday_range);
    interval.days_of_month = ranges(&raw.days_of_month, "days_of_month", day_of_month_range);
    interval.months = ranges(&raw.months, "months", month_range);
    interval.years = ranges(&raw.years, "years", year_range);
    if let Some(location) = &raw.location {
        match location.value.as_str() {
            // Go's `time.LoadLocation` takes "" and "UTC" as UTC and "Local" as the host's zone.
            "" | "UTC" => interval.location = Some(TimeZone::UTC),
            "Local" => interval.location = Some(TimeZone::system()),
            name => match TZDB.get(name) {
                Ok(tz) => interval.location = Some(tz),
                Err(_) => report(&location.referenced, "location", format!("unknown time zone {name}")),
            },
        }
    }
    interval
}

/// `{start_time, end_time}` → minutes of the day, `[start, end)`.
pub fn time_range(raw: &RawTimeRange) -> Result<(u16, u16), String> {
    let (Some(start), Some(end)) =
        (raw.start_time.as_deref().filter(|s| !s.is_empty()), raw.end_time.as_deref().filter(|s| !s.is_empty()))
    else {
        return Err("both start and end times must be provided".into());
    };
    let (start, end) = (parse_time(start)?, parse_time(end)?);
    if start >= end {
        return Err("start time cannot be equal or greater than end time".into());
    }
    Ok((start, end))
}

/// `HH:MM` (00:00 to 23:59, or 24:00) → minutes.
fn parse_time(text: &str) -> Result<u16, String> {
    let invalid = || format!("couldn't parse timestamp {text}, invalid format");
    let bytes = text.as_bytes();
    if bytes.len() != 5 || bytes[2] != b':' || !text[..2].bytes().chain(text[3..].bytes()).all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let (hours, minutes): (u16, u16) =
        (text[..2].parse().map_err(|_| invalid())?, text[3..].parse().map_err(|_| invalid())?);
    if (hours < 24 && minutes < 60) || (hours == 24 && minutes == 0) {
        Ok(hours * 60 + minutes)
    } else {
        Err(invalid())
    }
}

/// Splits `a:b` or `a` (lower-cased), naming each member with `member`.
fn range_of(text: &str, member: fn(&str) -> Result<i32, String>) -> Result<Range, String> {
    let text = text.to_lowercase();
    match text.split_once(':') {
        Some((begin, end)) if !end.contains(':') => Ok((member(begin)?, member(end)?)),
        Some(_) => Err(format!("couldn't parse range {text}, invalid format")),
        None => member(&text).map(|v| (v, v)),
    }
}

fn number(text: &str) -> Result<i32, String> {
    text.parse().map_err(|_| format!("strconv.Atoi: parsing {text:?}: invalid syntax"))
}

const WEEKDAYS: [&str; 7] = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
const MONTHS: [&str; 12] = [
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];

/// `monday:friday`: names only, as Alertmanager.
pub fn weekday_range(text: &str) -> Result<Range, String> {
    let (begin, end) = range_of(text, |day| {
        WEEKDAYS.iter().position(|d| *d == day).map(|p| p as i32).ok_or_else(|| format!("{day} is not a valid weekday"))
    })?;
    if begin > end {
        return Err("start day cannot be before end day".into());
    }
    Ok((begin, end))
}

/// `1:5`, `-3:-1`, `1:-1`: 1..=31 or -31..=-1; a negative start needs a negative end.
pub fn day_of_month_range(text: &str) -> Result<Range, String> {
    let (begin, end) = range_of(text, number)?;
    for day in [begin, end] {
        if day == 0 || !(-31..=31).contains(&day) {
            return Err(format!("{day} is not a valid day of the month: out of range"));
        }
    }
    if begin < 0 && end > 0 {
        return Err("end day must be negative if start day is negative".into());
    }
    // Alertmanager's check, on a 28-day month.
    let check = |d: i32| if d < 0 { 28 + d } else { d };
    if check(begin) > check(end) {
        return Err(format!("end day {end} is always before start day {begin}"));
    }
    Ok((begin, end))
}

/// `may:august` or `5:8`.
pub fn month_range(text: &str) -> Result<Range, String> {
    let (begin, end) = range_of(text, |month| match MONTHS.iter().position(|m| *m == month) {
        Some(p) => Ok(p as i32 + 1),
        // Alertmanager takes any number; one outside 1..=12 could never match, so it is refused.
        None => {
            month.parse().ok().filter(|m| (1..=12).contains(m)).ok_or_else(|| format!("{month} is not a valid month"))
        }
    })?;
    if begin > end {
        let name = |m: i32| usize::try_from(m - 1).ok().and_then(|i| MONTHS.get(i)).copied().unwrap_or("");
        return Err(format!("end month {} is before start month {}", name(end), name(begin)));
    }
    Ok((begin, end))
}

/// `2024:2026`.
pub fn year_range(text: &str) -> Result<Range, String> {
    let (begin, end) = range_of(text, number)?;
    if begin > end {
        return Err(format!("end year {end} is before start year {begin}"));
    }
    Ok((begin, end))
}

#[cfg(test)]
#[path = "time_interval_tests.rs"]
mod tests;
