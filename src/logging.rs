//! Structured logs in Prometheus' two formats, `logfmt` (the default) and `json`.

use std::fmt;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// `--log.format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Logfmt,
    Json,
}

/// `--log.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl Level {
    fn directive(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }
}

/// Installs the global subscriber, writing to stderr. Library crates log at `warn` and above
/// only, so amrelay's own lines are not drowned.
pub fn init(level: Level, format: Format) {
    let filter = EnvFilter::new(format!("warn,amrelay={}", level.directive()));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match format {
        Format::Json => builder.json().flatten_event(true).with_current_span(false).try_init(),
        Format::Logfmt => builder.event_format(Logfmt).try_init(),
    };
}

/// `ts=… level=info msg="…" key=value`, as Prometheus' go-kit logger writes it.
struct Logfmt;

impl<S, N> FormatEvent<S, N> for Logfmt
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(&self, _ctx: &FmtContext<'_, S, N>, mut writer: Writer<'_>, event: &Event<'_>) -> fmt::Result {
        write!(writer, "ts=")?;
        SystemTime.format_time(&mut writer)?;
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        write!(writer, " level={level}")?;
        let mut visitor = LogfmtVisitor { message: None, fields: String::new() };
        event.record(&mut visitor);
        if let Some(message) = visitor.message {
            write!(writer, " msg={}", quote(&message))?;
        }
        writeln!(writer, "{}", visitor.fields)
    }
}

struct LogfmtVisitor {
    message: Option<String>,
    fields: String,
}

impl Visit for LogfmtVisitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = Some(value.to_owned());
        } else {
            self.fields.push_str(&format!(" {}={}", field.name(), quote(value)));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.record_str(field, &format!("{value:?}"));
    }
}

/// Quotes a value when logfmt requires it.
fn quote(value: &str) -> String {
    if !value.is_empty() && !value.contains(|c: char| c == ' ' || c == '"' || c == '=' || c.is_control()) {
        return value.to_owned();
    }
    format!("{value:?}")
}

#[cfg(test)]
mod tests {
    use super::quote;

    #[test]
    fn quotes_only_when_needed() {
        assert_eq!(quote("plain"), "plain");
        assert_eq!(quote("two words"), "\"two words\"");
        assert_eq!(quote("a=b"), "\"a=b\"");
        assert_eq!(quote(""), "\"\"");
        assert_eq!(quote("line\nbreak"), "\"line\\nbreak\"");
    }
}
