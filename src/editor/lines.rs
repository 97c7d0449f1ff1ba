//! Where the config file's receivers set `enabled:`: the status and the receivers API point an
//! operator at the line to edit, since those receivers are read-only in the console.
//!
//! The lines are found once per load, from the text the snapshot was loaded from
//! ([`enabled_lines`]), and kept in the snapshot: a status refresh reads no file.

use std::collections::BTreeMap;

use serde::Serialize;

/// The `enabled:` line of each named receiver (`(name, enabled)`) in the config file's `text`.
pub fn enabled_lines<'r>(
    text: &str,
    receivers: impl IntoIterator<Item = (&'r str, bool)>,
) -> BTreeMap<String, EnabledLine> {
    receivers
        .into_iter()
        .filter_map(|(name, enabled)| Some((name.to_owned(), enabled_line(text, name, enabled)?)))
        .collect()
}

/// Where a receiver's `enabled:` is set in the config file, and the line that flips it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnabledLine {
    /// 1-based line number: of the `enabled:` line, or, when there is none, of the line to add
    /// it after (the receiver's `name:`).
    pub line: usize,
    /// Whether `change_to` is a new line to insert after `line` rather than a replacement.
    pub insert: bool,
    /// The line as it is now.
    pub current: String,
    /// The line that gives the opposite setting, with the same indentation.
    pub change_to: String,
}

/// Finds the `enabled:` line of receiver `name` in block-style YAML (the form the shipped
/// configs use); `None` for other layouts, where the page only names the key.
pub fn enabled_line(text: &str, name: &str, enabled: bool) -> Option<EnabledLine> {
    let lines: Vec<&str> = text.lines().collect();
    let (name_at, column) = lines.iter().enumerate().find_map(|(i, line)| {
        let (column, rest) = key_at(line, "name:")?;
        (unquote(strip_comment(rest).trim()) == name).then_some((i, column))
    })?;
    // The item starts at the line with its `- ` just left of the keys' column.
    let dash = column.checked_sub(2)?;
    let start = (0..=name_at).rev().find(|&i| lines[i].get(dash..column) == Some("- "))?;
    let end = (start + 1..lines.len())
        .find(|&i| {
            let line = lines[i];
            let indent = line.len() - line.trim_start().len();
            !line.trim().is_empty() && !line.trim_start().starts_with('#') && indent < column
        })
        .unwrap_or(lines.len());
    let flipped = format!("{}enabled: {}", " ".repeat(column), !enabled);
    match (start..end).find(|&i| key_at(lines[i], "enabled:").is_some_and(|(c, _)| c == column)) {
        Some(i) => {
            let current = lines[i].to_owned();
            let change_to = format!("{}{}", &current[..column], flipped.trim_start());
            Some(EnabledLine { line: i + 1, insert: false, current, change_to })
        }
        None => Some(EnabledLine {
            line: name_at + 1,
            insert: true,
            current: lines[name_at].to_owned(),
            change_to: flipped,
        }),
    }
}

/// The column of `key` on this line (after any `- `) and what follows it.
fn key_at<'l>(line: &'l str, key: &str) -> Option<(usize, &'l str)> {
    let trimmed = line.trim_start();
    let item = trimmed.strip_prefix("- ").map(str::trim_start).unwrap_or(trimmed);
    let column = line.len() - item.len();
    item.strip_prefix(key).map(|rest| (column, rest))
}

fn strip_comment(value: &str) -> &str {
    value.find(" #").map_or(value, |at| &value[..at])
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if let Some(inner) = value.strip_prefix(quote).and_then(|v| v.strip_suffix(quote)) {
            return inner;
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "receivers:
  - name: ops   # the chat
    url: http://a/
    enabled: true
    conditions:
      - {label: severity, operator: In, values: [critical]}
  # a comment between items
  - url: http://b/
    name: \"quiet\"
";

    #[test]
    fn finds_the_enabled_line_of_a_receiver() {
        let found = enabled_line(YAML, "ops", true).unwrap();
        assert_eq!(
            found,
            EnabledLine {
                line: 4,
                insert: false,
                current: "    enabled: true".into(),
                change_to: "    enabled: false".into(),
            }
        );
    }

    #[test]
    fn without_one_says_where_to_add_it() {
        let found = enabled_line(YAML, "quiet", true).unwrap();
        assert_eq!((found.line, found.insert, found.change_to.as_str()), (9, true, "    enabled: false"));
    }

    #[test]
    fn unknown_layouts_give_no_line() {
        assert_eq!(enabled_line(YAML, "missing", true), None);
        assert_eq!(enabled_line("receivers: [{name: ops, url: 'http://a/'}]", "ops", true), None);
    }
}
