//! A reader of server-sent events (the API's `/events/stream`): bytes in,
//! whole messages out, as the SSE format defines them.

/// The longest line kept waiting for its end; past it the stream is broken.
const MAX_LINE: usize = 16 << 20;

/// One message: its `event:` name (`message` when none), `data:` and `id:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub event: String,
    pub data: String,
    pub id: Option<String>,
}

/// Bytes not yet ending in a newline, and the fields of the message so far.
#[derive(Debug, Default)]
pub struct Parser {
    buf: Vec<u8>,
    event: Option<String>,
    data: Option<String>,
    id: Option<String>,
}

impl Parser {
    /// Takes the next bytes; returns the messages they complete.
    pub fn feed(&mut self, bytes: &[u8]) -> Result<Vec<Message>, String> {
        self.buf.extend_from_slice(bytes);
        let mut done = Vec::new();
        while let Some(end) = self.buf.iter().position(|b| *b == b'\n') {
            let raw: Vec<u8> = self.buf.drain(..=end).collect();
            let line = String::from_utf8_lossy(&raw);
            let line = line.trim_end_matches(['\n', '\r']);
            if line.is_empty() {
                if let Some(data) = self.data.take() {
                    done.push(Message {
                        event: self.event.take().unwrap_or_else(|| "message".into()),
                        data,
                        id: self.id.clone(),
                    });
                }
                self.event = None;
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (line, ""),
            };
            match field {
                "event" => self.event = Some(value.to_string()),
                "data" => match &mut self.data {
                    Some(d) => {
                        d.push('\n');
                        d.push_str(value);
                    }
                    None => self.data = Some(value.to_string()),
                },
                "id" => self.id = Some(value.to_string()),
                // Comments (keep-alives) and fields this reader does not use.
                _ => {}
            }
        }
        if self.buf.len() > MAX_LINE {
            return Err(format!(
                "a line of the event stream passed {MAX_LINE} bytes"
            ));
        }
        Ok(done)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_complete_at_a_blank_line_across_chunks() {
        let mut p = Parser::default();
        assert!(p
            .feed(b": keep-alive\n\nid: 5-1\nevent: agent.")
            .unwrap()
            .is_empty());
        let got = p.feed(b"killed\ndata: {\"a\":\r\ndata: 1}\n\n").unwrap();
        assert_eq!(
            got,
            [Message {
                event: "agent.killed".into(),
                data: "{\"a\":\n1}".into(),
                id: Some("5-1".into()),
            }]
        );
        let got = p.feed(b"data:x\n\n").unwrap();
        assert_eq!(got[0].event, "message");
        assert_eq!(got[0].data, "x");
        assert_eq!(
            got[0].id.as_deref(),
            Some("5-1"),
            "the last id carries over"
        );
    }
}
