//! Durations written the way Alertmanager and Prometheus write them: `250ms`, `10s`, `5m`, `1h30m`.
//!
//! Prometheus' `model.ParseDuration` accepts a sequence of `<number><unit>` terms with units in
//! decreasing order (`y w d h m s ms`); we accept exactly that, so a value copied from an
//! Alertmanager config means the same here.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserialize, Deserializer};

/// A duration parsed from Prometheus' text form; keeps the text for display.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PromDuration(pub Duration);

const UNITS: [(&str, u64); 7] = [
    ("y", 365 * 24 * 3600 * 1000),
    ("w", 7 * 24 * 3600 * 1000),
    ("d", 24 * 3600 * 1000),
    ("h", 3600 * 1000),
    ("m", 60 * 1000),
    ("s", 1000),
    ("ms", 1),
];

/// Parses `text` as a Prometheus duration.
pub fn parse(text: &str) -> Result<Duration, String> {
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    if text.is_empty() {
        return Err("empty duration".into());
    }
    let bad = || format!("invalid duration {text:?}: expected terms like 250ms, 10s, 5m, 1h30m");
    let mut rest = text;
    let mut total_ms: u64 = 0;
    // Units must appear in decreasing order, each at most once, as in Prometheus.
    let mut next_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return Err(bad());
        }
        let number: u64 = rest[..digits].parse().map_err(|_| bad())?;
        rest = &rest[digits..];
        let unit_len = rest.bytes().take_while(u8::is_ascii_alphabetic).count();
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let position = UNITS[next_unit..].iter().position(|(name, _)| *name == unit).ok_or_else(bad)?;
        let (_, millis) = UNITS[next_unit + position];
        next_unit += position + 1;
        total_ms = number
            .checked_mul(millis)
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(|| format!("duration {text:?} is too large"))?;
    }
    Ok(Duration::from_millis(total_ms))
}

/// Formats a duration the way Prometheus prints one (`1h30m`, `250ms`, `0s`).
pub fn format(duration: Duration) -> String {
    let mut ms = duration.as_millis() as u64;
    if ms == 0 {
        return "0s".into();
    }
    let mut out = String::new();
    for (name, unit_ms) in UNITS {
        if ms >= unit_ms {
            out.push_str(&format!("{}{}", ms / unit_ms, name));
            ms %= unit_ms;
        }
    }
    out
}

impl fmt::Debug for PromDuration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&format(self.0))
    }
}

impl<'de> Deserialize<'de> for PromDuration {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        parse(&text).map(PromDuration).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_prometheus_forms() {
        assert_eq!(parse("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse("5m"), Ok(Duration::from_secs(300)));
        assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse("1d"), Ok(Duration::from_secs(86400)));
        assert_eq!(parse("0"), Ok(Duration::ZERO));
    }

    #[test]
    fn rejects_malformed_and_misordered_terms() {
        for bad in ["", "10", "s", "1.5s", "10 s", "5m1h", "1s1s", "-1s", "10sec", "99999999999999999y"] {
            assert!(parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn formats_round_trip() {
        for text in ["250ms", "10s", "5m", "1h30m", "1d2h"] {
            assert_eq!(format(parse(text).unwrap()), text);
        }
    }
}
