//! Reading and writing `text/event-stream` (the WHATWG HTML Standard,
//! "Server-sent events", §9.2.6 "Interpreting an event stream"), by hand:
//! the gateway must see the events exactly as a client's parser would —
//! lines end at CRLF, LF or a lone CR, a chunk may end anywhere (inside a
//! CRLF too), a leading BOM is skipped — and then writes each event anew
//! from the fields it read, so the client parses what the gateway checked.
//! The SSE crates at hand parse for clients (over a whole connection, with
//! reconnection) rather than frame bytes in a proxy.

/// Largest event (its fields and the line being read).
pub const MAX_EVENT_BYTES: usize = 16 * 1024 * 1024;

/// One dispatched event, or a comment line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Event(Event),
    /// A comment (`:` line), kept only as a keep-alive.
    Comment,
}

/// The fields of one event, as a client would read them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Event {
    /// The `id` field, if this event set one.
    pub id: Option<String>,
    /// The `event` field (the event type).
    pub event: Option<String>,
    /// The `data` lines joined by LF; `None` when the event had no `data`.
    pub data: Option<Vec<u8>>,
    /// The `retry` field, when it is a number (the spec ignores others).
    pub retry: Option<u64>,
}

/// The event being too large to buffer.
#[derive(Debug, PartialEq, Eq)]
pub struct TooLarge;

/// Splits a byte stream into events, chunk by chunk.
#[derive(Debug, Default)]
pub struct Framer {
    line: Vec<u8>,
    pending: Event,
    /// Bytes held by `pending`.
    size: usize,
    /// The previous chunk ended with CR: an LF starting this one belongs to it.
    after_cr: bool,
    /// Past the start of the stream (where a BOM is skipped).
    started: bool,
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Feeds a chunk; returns the items it completed.
    pub fn push(&mut self, mut chunk: &[u8]) -> Result<Vec<Item>, TooLarge> {
        let mut items = Vec::new();
        if !self.started && !chunk.is_empty() {
            // The BOM may itself be split across chunks; hold a partial one.
            self.line.extend_from_slice(chunk);
            if b"\xEF\xBB\xBF".starts_with(&self.line) && self.line.len() < 3 {
                return Ok(items);
            }
            self.started = true;
            let held = std::mem::take(&mut self.line);
            let body = held.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(&held);
            self.feed(body, &mut items)?;
            return Ok(items);
        }
        if chunk.is_empty() {
            return Ok(items);
        }
        if self.after_cr && chunk[0] == b'\n' {
            chunk = &chunk[1..];
        }
        self.after_cr = false;
        self.feed(chunk, &mut items)?;
        Ok(items)
    }

    fn feed(&mut self, mut bytes: &[u8], items: &mut Vec<Item>) -> Result<(), TooLarge> {
        while let Some(end) = bytes.iter().position(|b| *b == b'\n' || *b == b'\r') {
            self.line.extend_from_slice(&bytes[..end]);
            let cr = bytes[end] == b'\r';
            bytes = &bytes[end + 1..];
            if cr {
                match bytes.first() {
                    Some(b'\n') => bytes = &bytes[1..],
                    None => self.after_cr = true,
                    Some(_) => {}
                }
            }
            let line = std::mem::take(&mut self.line);
            self.line_done(&line, items)?;
        }
        self.line.extend_from_slice(bytes);
        if self.line.len() + self.size > MAX_EVENT_BYTES {
            return Err(TooLarge);
        }
        Ok(())
    }

    fn line_done(&mut self, line: &[u8], items: &mut Vec<Item>) -> Result<(), TooLarge> {
        if line.is_empty() {
            let mut event = std::mem::take(&mut self.pending);
            self.size = 0;
            if event == Event::default() {
                return Ok(());
            }
            if let Some(data) = &mut event.data
                && data.last() == Some(&b'\n')
            {
                data.pop();
            }
            items.push(Item::Event(event));
            return Ok(());
        }
        if line[0] == b':' {
            items.push(Item::Comment);
            return Ok(());
        }
        let (field, value) = match line.iter().position(|b| *b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &b""[..]),
        };
        match field {
            b"data" => {
                let data = self.pending.data.get_or_insert_with(Vec::new);
                data.extend_from_slice(value);
                data.push(b'\n');
            }
            b"event" => self.pending.event = Some(String::from_utf8_lossy(value).into_owned()),
            b"id" if !value.contains(&0) => {
                self.pending.id = Some(String::from_utf8_lossy(value).into_owned());
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                self.pending.retry = std::str::from_utf8(value).ok().and_then(|v| v.parse().ok());
            }
            _ => {}
        }
        self.size += line.len();
        if self.size > MAX_EVENT_BYTES {
            return Err(TooLarge);
        }
        Ok(())
    }
}

impl Event {
    /// The event as stream bytes, one field per line. `data` must hold no
    /// line break (a JSON text written by serde_json holds none).
    pub fn write(&self, out: &mut Vec<u8>) {
        let mut field = |name: &str, value: &[u8]| {
            out.extend_from_slice(name.as_bytes());
            out.extend_from_slice(b": ");
            out.extend_from_slice(value);
            out.push(b'\n');
        };
        if let Some(event) = &self.event {
            field("event", event.as_bytes());
        }
        if let Some(id) = &self.id {
            field("id", id.as_bytes());
        }
        if let Some(retry) = self.retry {
            field("retry", retry.to_string().as_bytes());
        }
        if let Some(data) = &self.data {
            field("data", data);
        }
        out.push(b'\n');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(chunks: &[&[u8]]) -> Vec<Item> {
        let mut f = Framer::new();
        chunks.iter().flat_map(|c| f.push(c).unwrap()).collect()
    }

    fn event(id: Option<&str>, data: &str) -> Item {
        Item::Event(Event {
            id: id.map(String::from),
            data: Some(data.as_bytes().to_vec()),
            ..Event::default()
        })
    }

    #[test]
    fn every_line_ending_and_split_frames_like_a_client() {
        let want = vec![event(Some("1"), "a\nb"), event(None, "c")];
        assert_eq!(frame(&[b"id: 1\ndata: a\ndata: b\n\ndata:c\n\n"]), want);
        assert_eq!(
            frame(&[b"id: 1\r\ndata: a\r\ndata: b\r\n\r\ndata:c\r\n\r\n"]),
            want
        );
        assert_eq!(frame(&[b"id: 1\rdata: a\rdata: b\r\rdata:c\r\r"]), want);
        // CRLF split across chunks is one line ending, not two.
        assert_eq!(
            frame(&[
                b"\xEF\xBB",
                b"\xBFid: 1\r",
                b"",
                b"\ndata: a\r\ndata: b\r",
                b"\n\r\ndata:c\n\n"
            ]),
            want
        );
        // An event never completed is never dispatched.
        assert_eq!(frame(&[b"data: {\"partial\": true}\n"]), vec![]);
        assert_eq!(frame(&[b": ping\n\n"]), vec![Item::Comment]);
    }

    #[test]
    fn written_events_read_back_the_same() {
        let e = Event {
            id: Some("x_1".into()),
            event: Some("message".into()),
            data: Some(b"{}".to_vec()),
            retry: Some(5),
        };
        let mut out = Vec::new();
        e.write(&mut out);
        assert_eq!(frame(&[&out]), vec![Item::Event(e)]);
    }

    #[test]
    fn an_oversized_event_is_refused() {
        let mut f = Framer::new();
        let big = vec![b'a'; MAX_EVENT_BYTES];
        assert!(f.push(b"data: ").is_ok());
        assert_eq!(f.push(&big), Err(TooLarge));
    }
}
