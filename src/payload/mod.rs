//! Alertmanager's webhook payload: decoding what arrives and encoding what each receiver gets.

mod alert;
mod decode;
mod depth;
mod encode;
mod labels;

pub use alert::{Alert, Status};
pub use decode::{DecodeError, Notification, Source, decode, decode_with, decode_within};
pub use depth::nesting_exceeds;
pub use encode::encode;
pub use labels::{LabelSet, Str};
