//! The filter stage on SSE streams (a POST's answer, the GET stream, a
//! resumed stream): each event the framer ([`crate::sse`]) completes is
//! rewritten from what [`Answers`] let through, its id bound to the caller.

use crate::filter::{Answers, Out};
use crate::sse;

impl Answers {
    /// One SSE event from the upstream, rewritten onto `out`: its id bound to
    /// the caller, its messages filtered.
    pub fn event(&mut self, mut event: sse::Event, out: &mut Vec<u8>) {
        event.id = event.id.and_then(|id| {
            let bound = self.binding().event_id(&id);
            if bound.is_none() {
                tracing::warn!("an SSE event id from the upstream is unusable; dropped");
            }
            bound
        });
        let Some(data) = event.data.take() else {
            return event.write(out);
        };
        if data.is_empty() {
            // An empty event (a resumption point): nothing to check.
            event.data = Some(data);
            return event.write(out);
        }
        let kept: Vec<String> = match self.payload(&data) {
            Ok((outs, array)) => {
                let kept: Vec<String> = outs
                    .into_iter()
                    .filter_map(|o| match o {
                        Out::Answer(s) | Out::Unattributed(s) | Out::FromServer(s) => Some(s),
                        Out::Dropped => None,
                    })
                    .collect();
                if array && !kept.is_empty() {
                    vec![format!("[{}]", kept.join(","))]
                } else {
                    kept
                }
            }
            Err(()) => self.unreadable(),
        };
        // The event keeps its id (the stream resumes past it) even when all
        // it carried is withheld.
        if kept.is_empty() {
            if event.id.is_some() {
                event.write(out);
            }
            return;
        }
        for (i, text) in kept.into_iter().enumerate() {
            let mut e = sse::Event {
                data: Some(text.into_bytes()),
                ..sse::Event::default()
            };
            if i == 0 {
                e.id = event.id.take();
                e.event = event.event.take();
                e.retry = event.retry;
            }
            e.write(out);
        }
    }

    /// The end of a stream that broke (too large an event, the upstream
    /// gone): errors for what is still unanswered.
    pub fn broken(&mut self, out: &mut Vec<u8>) {
        for text in self.unreadable() {
            sse::Event {
                data: Some(text.into_bytes()),
                ..sse::Event::default()
            }
            .write(out);
        }
    }

    /// Feeds one chunk of an SSE stream through `framer`; what the client
    /// gets goes onto `out`. `Err`: the stream cannot go on (its end is
    /// written already).
    pub fn sse_chunk(
        &mut self,
        framer: &mut sse::Framer,
        chunk: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(), sse::TooLarge> {
        match framer.push(chunk) {
            Ok(items) => {
                for item in items {
                    match item {
                        sse::Item::Event(e) => self.event(e, out),
                        sse::Item::Comment => out.extend_from_slice(b":\n\n"),
                    }
                }
                Ok(())
            }
            Err(e) => {
                tracing::warn!(
                    "an SSE event from the upstream is too large to check; stream ended"
                );
                self.broken(out);
                Err(e)
            }
        }
    }
}

/// The SSE framer and filter over a whole stream given as chunks: what the
/// client would receive (for tests and fuzzing, without a network).
pub fn filter_sse<'c>(
    answers: &mut Answers,
    chunks: impl IntoIterator<Item = &'c [u8]>,
) -> Vec<u8> {
    let mut framer = sse::Framer::new();
    let mut out = Vec::new();
    for chunk in chunks {
        if answers.sse_chunk(&mut framer, chunk, &mut out).is_err() {
            break;
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::binding::Binding;
    use crate::filter::Allowed;
    use crate::mac::SessionKey;
    use serde_json::value::RawValue;
    use std::sync::Arc;

    #[test]
    fn a_stream_is_filtered_by_shape_and_unknown_responses_are_dropped() {
        let binding = Binding::new(SessionKey::from_bytes(&[2; 32]).unwrap(), "s", "p");
        let ids = [binding.request_id(&RawValue::from_string("3".into()).unwrap())];
        let allowed: Allowed = Arc::new(|_, name| name == "ok");
        let mut a = Answers::stream(binding, allowed);
        let stream = format!(
            "id: e1\ndata: {{\"jsonrpc\":\"2.0\",\"id\":\"{}\",\"result\":{{\"tools\":[{{\"name\":\"ok\"}},{{\"name\":\"no\"}}]}}}}\n\n\
             id: e2\ndata: {{\"jsonrpc\":\"2.0\",\"id\":5,\"result\":{{\"tools\":[{{\"name\":\"no\"}}]}}}}\n\n",
            ids[0]
        );
        let out = filter_sse(&mut a, stream.as_bytes().chunks(7));
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("\"no\""), "{out}");
        assert!(out.contains(r#""id":3"#), "{out}");
        assert_eq!(out.matches("id: e1.").count(), 1, "{out}");
        assert_eq!(
            out.matches("id: e2.").count(),
            1,
            "ids survive a withheld event: {out}"
        );
    }
}
