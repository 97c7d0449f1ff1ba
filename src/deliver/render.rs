//! Turning a queued notification into what is sent: its receiver's template rendered once,
//! before the first attempt, and kept for the retries.
//!
//! The queue and the spool hold the filtered version "4" payload; the template is the one of
//! the receiver's current [`Target`] (rebuilt on reload), so a reload that changes a template
//! applies to notifications already queued. A render error is final: retrying would render the
//! same error, so the notification is dead-lettered with the reason `template`.

use std::sync::Arc;
use std::time::SystemTime;

use bytes::Bytes;
use http::{HeaderValue, Uri};

use super::Target;
use crate::template::{RenderError, Rendered, Reveal};

/// A notification ready for its attempts.
#[derive(Debug)]
pub struct Prepared {
    pub body: Bytes,
    /// `None`: the target's own (application/json).
    pub content_type: Option<HeaderValue>,
    rendered: Option<Rendered>,
    /// The URL its `url` template rendered (`None`: the target's URL).
    url: Option<Uri>,
}

impl Prepared {
    /// Renders `payload` with the target's template, if it has one, and its URL template (an
    /// empty or invalid URL is a render error: dead-lettered with reason `template`).
    pub fn new(target: &Target, payload: &Bytes) -> Result<Prepared, RenderError> {
        let url = match &target.url_template {
            Some(template) => Some(template.render(payload).map_err(RenderError::Template)?),
            None => None,
        };
        match &target.template {
            None => Ok(Prepared { body: payload.clone(), content_type: None, rendered: None, url }),
            Some(renderer) => {
                let rendered = renderer.render(payload, Reveal::Send)?;
                Ok(Prepared {
                    body: rendered.body.clone(),
                    content_type: Some(rendered.content_type.clone()),
                    rendered: Some(rendered),
                    url,
                })
            }
        }
    }

    /// Like [`new`](Self::new), with the rendering on a blocking thread: a template may run up
    /// to its fuel limit, which must not hold up the runtime's other tasks.
    pub async fn render(target: &Arc<Target>, payload: &Bytes) -> Result<Prepared, RenderError> {
        if target.template.is_none() && target.url_template.is_none() {
            return Prepared::new(target, payload);
        }
        let (target, payload) = (target.clone(), payload.clone());
        tokio::task::spawn_blocking(move || Prepared::new(&target, &payload))
            .await
            .unwrap_or_else(|e| Err(RenderError::Template(format!("render task failed: {e}"))))
    }

    /// The body of this attempt: as rendered, signed when the preset signs its body (Feishu).
    pub fn attempt_body(&self, target: &Target) -> Bytes {
        match (&target.template, &self.rendered) {
            (Some(renderer), Some(rendered)) => renderer.attempt_body(rendered, SystemTime::now()),
            _ => self.body.clone(),
        }
    }

    /// The URL of this attempt: the target's, as the preset extends and signs it.
    pub fn url(&self, target: &Target) -> Uri {
        let url = self.url.as_ref().unwrap_or(&target.url);
        match (&target.template, &self.rendered) {
            (Some(renderer), Some(rendered)) => renderer.attempt_url(url, rendered, SystemTime::now()),
            _ => url.clone(),
        }
    }
}
