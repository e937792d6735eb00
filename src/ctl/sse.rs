//! An incremental parser of Server-Sent Events, for `fiscald ctl events`.

/// One Server-Sent Event.
#[derive(Debug, Default, PartialEq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub data: String,
}

/// Incremental Server-Sent Events parser (fields `event`, `id`, `data`; comments ignored).
#[derive(Debug, Default)]
pub struct SseParser {
    buf: Vec<u8>,
    current: SseEvent,
    has_data: bool,
}

impl SseParser {
    /// Feed bytes; returns the events completed by them.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<SseEvent> {
        self.buf.extend_from_slice(bytes);
        let mut out = Vec::new();
        while let Some(nl) = self.buf.iter().position(|&b| b == b'\n') {
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            let line = String::from_utf8_lossy(&line);
            if line.is_empty() {
                let ev = std::mem::take(&mut self.current);
                if std::mem::take(&mut self.has_data) {
                    out.push(ev);
                }
                continue;
            }
            if line.starts_with(':') {
                continue;
            }
            let (field, value) = match line.split_once(':') {
                Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
                None => (&*line, ""),
            };
            match field {
                "event" => self.current.event = Some(value.to_string()),
                "id" => self.current.id = Some(value.to_string()),
                "data" => {
                    if self.has_data {
                        self.current.data.push('\n');
                    }
                    self.current.data.push_str(value);
                    self.has_data = true;
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_events_across_chunks() {
        let mut p = SseParser::default();
        assert!(p.push(b": hello\n\nevent: job\nid: 3\nda").is_empty());
        let evs = p.push(b"ta: {\"id\": 7}\r\ndata: more\r\n\r\ndata: x\n\n");
        assert_eq!(
            evs,
            vec![
                SseEvent {
                    event: Some("job".into()),
                    id: Some("3".into()),
                    data: "{\"id\": 7}\nmore".into()
                },
                SseEvent {
                    event: None,
                    id: None,
                    data: "x".into()
                }
            ]
        );
    }
}
