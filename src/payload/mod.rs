//! Alertmanager's webhook payload: decoding what arrives and encoding what each receiver gets.

mod decode;
mod depth;
mod encode;
mod labels;

pub use decode::{Alert, DecodeError, Notification, Source, Status, decode, decode_with};
pub use depth::nesting_exceeds;
pub use encode::encode;
pub use labels::{LabelSet, Str};
