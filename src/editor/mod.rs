//! The console in one place: the console file (`--config.console-file`) as a document of
//! receiver definitions, which of their fields are secret, its file I/O, and where the config
//! file's receivers set `enabled:`. The HTTP handlers (`crate::server::receivers_api`, the status
//! in `crate::server::admin`) decide what to change and when; this module only knows the file.
//!
//! - [`document`]: the file's text ⇄ a list of definitions, each shaped like its YAML; entity
//!   tags; the names (never values) of changed fields; validation errors by field.
//! - [`secrets`]: the one table of where secrets sit in a definition. Answers blank them
//!   ([`redact`]) and edits that leave one blank keep the stored value ([`keep_blank_secrets`])
//!   from that same table, and a preset's secret options are known from the preset's own
//!   metadata ([`crate::template::Preset::options`]), not guessed from their names.
//! - [`file`]: reading the file (off the runtime's threads, for handlers), writing it
//!   atomically, refusing to overwrite a hand edit, and probing whether it can be written.
//! - [`lines`]: the line of the config file that flips a receiver's `enabled:`, found once per
//!   load (a status refresh reads no file).
//!
//! Parsing and validating the console file's receivers stays in `crate::config::console`: the
//! reloader and `check-config` validate it with the config file, by the same code, and `config`
//! (a lower layer) must not depend on this module. Here the file is only a document: its
//! schema is checked there, before anything reaches the disk.

pub mod document;
pub mod file;
pub mod lines;
pub mod secrets;

pub use document::{Document, FieldError, changed_fields, etag, etag_of, field_errors};
pub use file::probe;
pub use lines::EnabledLine;
pub use secrets::{keep_blank_secrets, redact};
