//! Alertmanager's own tables (`timeinterval/timeinterval_test.go`, prometheus/alertmanager at
//! 68fb2d5), ported: the same inputs, the same expected intervals, instants and error messages.

use super::*;

/// Parses a YAML list of intervals as Alertmanager's tests do; the first error's message.
fn parse_list(yaml: &str) -> Result<Vec<TimeInterval>, String> {
    let raw: Vec<RawTimeInterval> = serde_saphyr::from_str(yaml).map_err(|e| e.to_string())?;
    let mut errors = Vec::new();
    let intervals: Vec<_> =
        raw.iter().map(|r| interval_from(r, &mut |_: &Location, _: &str, e: String| errors.push(e))).collect();
    match errors.into_iter().next() {
        Some(e) => Err(e),
        None => Ok(intervals),
    }
}

/// Go's RFC822Z (`02 Jan 06 15:04 -0700`) → an instant.
fn at(text: &str) -> jiff::Timestamp {
    let parts: Vec<&str> = text.split_whitespace().collect();
    let month = MONTHS.iter().position(|m| m[..3].eq_ignore_ascii_case(parts[1])).unwrap() + 1;
    let year: i32 = parts[2].parse().unwrap();
    let year = if year >= 69 { 1900 + year } else { 2000 + year };
    let day: u32 = parts[0].parse().unwrap();
    let offset = format!("{}:{}", &parts[4][..3], &parts[4][3..]);
    format!("{year}-{month:02}-{day:02}T{}:00{offset}", parts[3]).parse().unwrap()
}

fn tz(name: &str) -> Option<TimeZone> {
    Some(TZDB.get(name).unwrap())
}

fn interval(
    times: &[(u16, u16)],
    weekdays: &[Range],
    days: &[Range],
    months: &[Range],
    years: &[Range],
) -> TimeInterval {
    TimeInterval {
        times: times.to_vec(),
        weekdays: weekdays.to_vec(),
        days_of_month: days.to_vec(),
        months: months.to_vec(),
        years: years.to_vec(),
        location: None,
    }
}

fn check_contains(interval: &TimeInterval, contains: &[&str], excludes: &[&str]) {
    for t in contains {
        assert!(interval.contains(at(t)), "{interval:?} should contain {t}");
    }
    for t in excludes {
        assert!(!interval.contains(at(t)), "{interval:?} should not contain {t}");
    }
}

// TestContainsTime.
#[test]
fn alertmanager_contains_time_table() {
    let business = interval(&[(540, 1020)], &[(1, 5)], &[], &[], &[]);
    let sydney = TimeInterval { location: tz("Australia/Sydney"), ..business.clone() };
    let sydney_november = TimeInterval { months: vec![(11, 11)], ..sydney.clone() };
    let new_york_last_day =
        TimeInterval { days_of_month: vec![(-1, -1)], location: tz("America/New_York"), ..Default::default() };
    let table: Vec<(TimeInterval, Vec<&str>, Vec<&str>)> = vec![
        (
            TimeInterval::default(),
            vec!["02 Jan 06 15:04 +0000", "03 Jan 07 10:04 +0000", "04 Jan 06 09:04 +0000"],
            vec![],
        ),
        (
            business,
            vec!["04 May 20 15:04 +0000", "05 May 20 10:04 +0000", "09 Jun 20 09:04 +0000"],
            vec!["03 May 20 15:04 +0000", "04 May 20 08:59 +0000", "05 May 20 05:00 +0000"],
        ),
        (
            // Easter 2020
            interval(&[], &[], &[(4, 6)], &[(4, 4)], &[(2020, 2020)]),
            vec!["04 Apr 20 15:04 +0000", "05 Apr 20 00:00 +0000", "06 Apr 20 23:05 +0000"],
            vec![
                "03 May 18 15:04 +0000",
                "03 Apr 20 23:59 +0000",
                "04 Jun 20 23:59 +0000",
                "06 Apr 19 23:59 +0000",
                "07 Apr 20 00:00 +0000",
            ],
        ),
        (
            // The last three days of each month.
            interval(&[], &[], &[(-3, -1)], &[], &[]),
            vec![
                "31 Jan 20 15:04 +0000",
                "30 Jan 20 15:04 +0000",
                "29 Jan 20 15:04 +0000",
                "30 Jun 20 00:00 +0000",
                "29 Feb 20 23:05 +0000",
            ],
            vec![
                "03 May 18 15:04 +0000",
                "27 Jan 20 15:04 +0000",
                "03 Apr 20 23:59 +0000",
                "04 Jun 20 23:59 +0000",
                "06 Apr 19 23:59 +0000",
                "07 Apr 20 00:00 +0000",
                "01 Mar 20 00:00 +0000",
            ],
        ),
        (
            // Out of bound days are clamped to the month's boundaries.
            interval(&[], &[], &[(-31, 31)], &[(6, 6)], &[]),
            vec!["30 Jun 20 00:00 +0000", "01 Jun 20 00:00 +0000"],
            vec!["31 May 20 00:00 +0000", "1 Jul 20 00:00 +0000"],
        ),
        // AEST 9AM to 5PM, Monday to Friday.
        (sydney, vec!["06 Apr 21 13:00 +1000"], vec!["06 Apr 21 13:00 +0000"]),
        // An alternative time zone during daylight saving time.
        (sydney_november, vec!["01 Nov 21 09:00 +1100", "31 Oct 21 22:00 +0000"], vec!["31 Oct 21 21:00 +0000"]),
        // Last-day mutes do not shift during spring-forward months.
        (new_york_last_day, vec!["31 Mar 21 12:00 -0400"], vec!["30 Mar 21 12:00 -0400"]),
    ];
    for (interval, contains, excludes) in &table {
        check_contains(interval, contains, excludes);
    }
}

// TestParseTimeString.
#[test]
fn alertmanager_time_string_table() {
    type Case = (Option<&'static str>, Option<&'static str>, Option<(u16, u16)>);
    let table: [Case; 8] = [
        (Some("00:00"), Some("24:00"), Some((0, 1440))),
        (Some("01:35"), Some("17:39"), Some((95, 1059))),
        (Some("09:35"), Some("09:39"), Some((575, 579))),
        (Some("17:31"), Some("17:31"), None),
        (Some("12:30"), Some("24:01"), None),
        (Some("09:30"), Some("07:41"), None),
        (Some("24:00"), Some("17:41"), None),
        (Some("14:03"), None, None),
    ];
    for (start, end, expected) in table {
        let raw = RawTimeRange { start_time: start.map(str::to_owned), end_time: end.map(str::to_owned) };
        assert_eq!(time_range(&raw).ok(), expected, "{start:?}–{end:?}");
    }
}

// TestYamlUnmarshal: intervals, instants contained and excluded, and errors word for word.
#[test]
fn alertmanager_yaml_unmarshal_table() {
    type Case = (&'static str, Vec<TimeInterval>, Vec<&'static str>, Vec<&'static str>);
    let ok: Vec<Case> = vec![
        (
            "- weekdays: ['monday:friday']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'\n",
            vec![interval(&[(540, 1020)], &[(1, 5)], &[], &[], &[])],
            vec!["08 Jul 20 09:00 +0000", "08 Jul 20 16:59 +0000", "01 Apr 21 13:00 +0000"],
            vec!["08 Jul 20 05:00 +0000", "08 Jul 20 08:59 +0000"],
        ),
        (
            "# Last week, excluding Saturday, of the first quarter of the year during business hours from 2020 to 2025 and 2030-2035\n- weekdays: ['monday:friday', 'sunday']\n  months: ['january:march']\n  days_of_month: ['-7:-1']\n  years: ['2020:2025', '2030:2035']\n  times:\n    - start_time: '09:00'\n      end_time: '17:00'\n",
            vec![interval(&[(540, 1020)], &[(1, 5), (0, 0)], &[(-7, -1)], &[(1, 3)], &[(2020, 2025), (2030, 2035)])],
            vec![
                "27 Jan 21 09:00 +0000",
                "28 Jan 21 16:59 +0000",
                "29 Jan 21 13:00 +0000",
                "31 Mar 25 13:00 +0000",
                "31 Jan 35 13:00 +0000",
            ],
            vec!["30 Jan 21 13:00 +0000", "01 Apr 21 13:00 +0000", "30 Jan 26 13:00 +0000", "31 Jan 35 17:01 +0000"],
        ),
        ("- days_of_month: ['1:-1']\n", vec![interval(&[], &[], &[(1, -1)], &[], &[])], vec![], vec![]),
        ("- months: ['January:december']\n", vec![interval(&[], &[], &[], &[(1, 12)], &[])], vec![], vec![]),
        (
            "- years: ['2020:2022']\n  location: 'Australia/Sydney'\n",
            vec![TimeInterval { years: vec![(2020, 2022)], location: tz("Australia/Sydney"), ..Default::default() }],
            vec![],
            vec![],
        ),
    ];
    for (yaml, expected, contains, excludes) in ok {
        let parsed = parse_list(yaml).unwrap_or_else(|e| panic!("{yaml}: {e}"));
        assert_eq!(parsed, expected, "{yaml}");
        let any = |t: &str| parsed.iter().any(|i| i.contains(at(t)));
        assert!(contains.iter().all(|t| any(t)), "{yaml}");
        assert!(excludes.iter().all(|t| !any(t)), "{yaml}");
    }
    let errors = [
        (
            "- times:\n    - start_time: '01:99'\n      end_time: '23:59'",
            "couldn't parse timestamp 01:99, invalid format",
        ),
        (
            "- times:\n    - start_time: '00:00'\n      end_time: '99:99'",
            "couldn't parse timestamp 99:99, invalid format",
        ),
        ("- weekdays: ['friday:monday']", "start day cannot be before end day"),
        ("- weekdays: ['blurgsday:flurgsday']", "blurgsday is not a valid weekday"),
        ("- weekdays: ['1:3']", "1 is not a valid weekday"),
        ("- weekdays: ['-2:-1']", "-2 is not a valid weekday"),
        ("- days_of_month: ['0']", "0 is not a valid day of the month: out of range"),
        ("- days_of_month: ['-50:-20']", "-50 is not a valid day of the month: out of range"),
        ("- days_of_month: ['1:50']", "50 is not a valid day of the month: out of range"),
        ("- days_of_month: ['-15:5']", "end day must be negative if start day is negative"),
        ("- days_of_month: ['10:-25']", "end day -25 is always before start day 10"),
        ("- months: ['martius:june']", "martius is not a valid month"),
        ("- months: ['march:junius']", "junius is not a valid month"),
        ("- months: ['december:january']", "end month january is before start month december"),
        ("- years: ['2022:2020']", "end year 2020 is before start year 2022"),
    ];
    for (yaml, message) in errors {
        assert_eq!(parse_list(yaml).unwrap_err(), message, "{yaml}");
    }
}

// TestTimeIntervalComplete.
#[test]
fn alertmanager_complete_table() {
    let yaml = "- weekdays: ['monday:wednesday', 'saturday', 'sunday']\n  times:\n    - start_time: '13:00'\n      end_time: '15:00'\n  days_of_month: ['1', '10', '20:-1']\n  years: ['2020:2023']\n  months: ['january:march']\n";
    let parsed = parse_list(yaml).unwrap();
    check_contains(
        &parsed[0],
        &["10 Jan 21 13:00 +0000", "30 Jan 21 14:24 +0000"],
        &["09 Jan 21 13:00 +0000", "20 Jan 21 12:59 +0000", "02 Feb 21 13:00 +0000"],
    );
    // A start day after the end of the month is not clamped into it.
    let parsed = parse_list("- days_of_month: ['30:31']\n  years: ['2020:2023']\n  months: ['february']\n").unwrap();
    check_contains(&parsed[0], &[], &["28 Feb 21 13:00 +0000"]);
}

// TestIntervener_Mutes: which of two named sets contain an instant.
#[test]
fn alertmanager_intervener_table() {
    let sydney = tz("Australia/Sydney");
    let evenings = TimeInterval { times: vec![(0, 540), (1020, 1440)], location: sydney.clone(), ..Default::default() };
    let weekends = TimeInterval { weekdays: vec![(6, 6), (0, 0)], location: sydney, ..Default::default() };
    let in_sydney = |s: &str| -> jiff::Timestamp {
        format!("{s}[Australia/Sydney]").parse::<jiff::ZonedDateTime>().unwrap().timestamp()
    };
    let utc = |s: &str| -> jiff::Timestamp { format!("{s}Z").parse().unwrap() };
    let table = [
        (in_sydney("2024-01-01T00:00:00"), (true, false)),
        (in_sydney("2024-01-01T09:00:00"), (false, false)),
        (in_sydney("2024-01-06T10:00:00"), (false, true)),
        (in_sydney("2024-01-06T17:00:00"), (true, true)),
        (utc("2024-01-01T10:00:00"), (true, false)),
        (utc("2024-01-06T10:00:00"), (true, true)),
    ];
    for (now, expected) in table {
        assert_eq!((evenings.contains(now), weekends.contains(now)), expected, "{now}");
    }
}

// Beyond Alertmanager's tables: bare numbers, as YAML lets them be written, and a month number
// that could never match.
#[test]
fn bare_numbers_are_ranges_and_month_numbers_are_checked() {
    let parsed = parse_list("- days_of_month: [1, 15]\n  years: [2024]\n  months: [5]\n").unwrap();
    assert_eq!(parsed, vec![interval(&[], &[], &[(1, 1), (15, 15)], &[(5, 5)], &[(2024, 2024)])]);
    assert_eq!(parse_list("- months: ['13']").unwrap_err(), "13 is not a valid month");
    assert_eq!(parse_list("- location: 'Mars/Olympus'").unwrap_err(), "unknown time zone Mars/Olympus");
}
