//! `dashctl agent logs [--follow]`: an agent's events in log order, its
//! runtime's output lines as themselves and every other event as one status
//! line; with `--follow`, the live stream until the agent finishes.

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use uuid::Uuid;

use super::sse;
use crate::commands::domain::{clean, clean_line, out, Api, Failure, MAX_PAGE};

/// How often the log is read when the live stream is not available.
const POLL_EVERY: Duration = Duration::from_millis(500);
/// How long polling rides out an API that does not answer (a failover).
const POLL_PATIENCE: u32 = 60;
/// An agent already finished whose last event is not readable yet (its
/// transaction is held back behind an older one) is followed this long.
const SETTLE: Duration = Duration::from_secs(10);

/// Events after which nothing more happens to the agent.
fn is_final(kind: &str) -> bool {
    matches!(
        kind,
        "agent.completed" | "agent.failed" | "agent.killed" | "agent.deleted"
    )
}

pub async fn logs(api: &Api, id: Uuid, follow: bool) -> Result<u8, Failure> {
    let agent = api.get(&format!("/agents/{id}")).await?;
    let finished = matches!(
        agent.get("status").and_then(Value::as_str),
        Some("completed" | "failed" | "killed")
    );
    let mut log = Log {
        api,
        id,
        cursor: "0".into(),
        ended: false,
    };
    while log.read_page().await? == MAX_PAGE {}
    if !follow || log.ended {
        return Ok(0);
    }
    let settle = async {
        match finished {
            true => tokio::time::sleep(SETTLE).await,
            false => std::future::pending().await,
        }
    };
    tokio::select! {
        r = log.follow() => r,
        _ = settle => Ok(0),
        _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
    }
}

/// Where the reader is in one agent's log.
struct Log<'a> {
    api: &'a Api,
    id: Uuid,
    /// The last event printed (`0`: none yet).
    cursor: String,
    /// A final event was printed.
    ended: bool,
}

impl Log<'_> {
    /// Prints the next page of the log; returns how many events it held.
    async fn read_page(&mut self) -> Result<usize, Failure> {
        let path = format!(
            "/events?agent_id={}&after={}&limit={MAX_PAGE}",
            self.id, self.cursor
        );
        let page = self.api.get(&path).await?;
        let items = page.get("items").and_then(Value::as_array);
        let items = items.map_or(&[][..], Vec::as_slice);
        for e in items {
            self.print(e)?;
        }
        Ok(items.len())
    }

    /// Prints one event and moves the cursor past it.
    fn print(&mut self, e: &Value) -> Result<(), Failure> {
        if let Some(c) = e.get("cursor").and_then(Value::as_str) {
            let safe = c.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
            if safe && !c.is_empty() {
                self.cursor = c.to_string();
            }
        }
        let kind = e.get("kind").and_then(Value::as_str).unwrap_or("?");
        self.ended |= is_final(kind);
        if self.api.json {
            return out(&format!("{e}\n"));
        }
        match render(e) {
            Rendered::Lines { stderr: true, text } => {
                let _ = std::io::stderr().lock().write_all(text.as_bytes());
                Ok(())
            }
            Rendered::Lines { text, .. } | Rendered::Status(text) => out(&text),
        }
    }

    /// Prints new events until a final one: the live stream while it
    /// serves, polling when it does not.
    async fn follow(&mut self) -> Result<u8, Failure> {
        loop {
            let path = format!("/events/stream?agent_id={}&after={}", self.id, self.cursor);
            let resp = match self.api.stream(&path).await {
                Ok(r) => r,
                Err(e) => {
                    eprintln!(
                        "dashctl: the live event stream is not available ({}); polling every 500 ms",
                        clean(&e.to_string())
                    );
                    return self.poll().await;
                }
            };
            self.read_stream(resp).await?;
            if self.ended {
                return Ok(0);
            }
            // The stream ended (the API restarted or failed over): reconnect
            // after the last event printed.
            tokio::time::sleep(POLL_EVERY).await;
        }
    }

    /// Prints the stream's events until it ends or a final event came.
    async fn read_stream(&mut self, mut resp: reqwest::Response) -> Result<(), Failure> {
        let mut parser = sse::Parser::default();
        while let Ok(Some(chunk)) = resp.chunk().await {
            let messages = parser.feed(&chunk).map_err(Failure::Failed)?;
            for m in messages {
                if m.event == "error" {
                    eprintln!("dashctl: the event stream says: {}", clean(&m.data));
                    continue;
                }
                let Ok(e) = serde_json::from_str::<Value>(&m.data) else {
                    continue;
                };
                self.print(&e)?;
                if self.ended {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    /// Reads the log every [`POLL_EVERY`] until a final event, riding out
    /// [`POLL_PATIENCE`] failed reads in a row.
    async fn poll(&mut self) -> Result<u8, Failure> {
        let mut failed = 0;
        loop {
            match self.read_page().await {
                Ok(_) if self.ended => return Ok(0),
                Ok(_) => failed = 0,
                Err(f @ Failure::Unreachable { .. })
                | Err(f @ Failure::Answered { status: 503, .. }) => {
                    failed += 1;
                    if failed >= POLL_PATIENCE {
                        return Err(f);
                    }
                }
                Err(f) => return Err(f),
            }
            tokio::time::sleep(POLL_EVERY).await;
        }
    }
}

/// How one event prints.
#[derive(Debug, PartialEq, Eq)]
enum Rendered {
    /// An `agent.output` event's lines, each ending in a newline.
    Lines { stderr: bool, text: String },
    /// `HH:MM:SS kind details` and a newline.
    Status(String),
}

fn render(e: &Value) -> Rendered {
    let kind = e.get("kind").and_then(Value::as_str).unwrap_or("?");
    let data = e.get("data").unwrap_or(&Value::Null);
    if kind == "agent.output" {
        let lines = data.get("lines").and_then(Value::as_array);
        let text: String = (lines.into_iter().flatten())
            .map(|l| match l.as_str() {
                Some(s) => format!("{}\n", clean_line(s)),
                None => format!("{}\n", clean(&l.to_string())),
            })
            .collect();
        let stderr = data.get("stream").and_then(Value::as_str) == Some("stderr");
        return Rendered::Lines { stderr, text };
    }
    let at = e.get("created_at").and_then(Value::as_str).unwrap_or("");
    let time = at.get(11..19).unwrap_or("--:--:--");
    let mut line = format!("{} {}", clean(time), clean(kind));
    for detail in details(kind, data) {
        line.push(' ');
        line.push_str(&detail);
    }
    Rendered::Status(line + "\n")
}

/// What a status line says after the kind, from the event's data.
fn details(kind: &str, data: &Value) -> Vec<String> {
    let num = |k: &str| data.get(k).and_then(Value::as_f64);
    let txt = |k: &str| data.get(k).and_then(Value::as_str).map(clean);
    let mut parts = Vec::new();
    if kind == "agent.cost" {
        parts.extend(num("cost").map(|c| format!("{c}")));
        return parts;
    }
    parts.extend(
        data.get("attempt")
            .map(|a| format!("attempt {}", clean(&a.to_string()))),
    );
    if kind == "agent.retried" {
        parts.extend(num("retry_count").map(|n| format!("retry {n}")));
    }
    parts.extend(num("progress").map(|p| format!("progress {:.0}%", p * 100.0)));
    parts.extend(
        num("cost")
            .filter(|c| *c > 0.0)
            .map(|c| format!("cost {c}")),
    );
    parts.extend(txt("error").map(|m| format!("error: {m}")));
    parts.extend(txt("reason").map(|m| format!("reason: {m}")));
    parts.extend(txt("message").map(|m| format!("message: {m}")));
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(kind: &str, data: Value) -> Value {
        json!({"kind": kind, "data": data, "created_at": "2025-01-02T12:00:01.5Z"})
    }

    #[test]
    fn status_lines_say_what_happened() {
        let line = |k, d| match render(&event(k, d)) {
            Rendered::Status(s) => s,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            line("agent.started", json!({"attempt": 2})),
            "12:00:01 agent.started attempt 2\n"
        );
        assert_eq!(
            line("agent.cost", json!({"cost": 0.25})),
            "12:00:01 agent.cost 0.25\n"
        );
        assert_eq!(
            line(
                "agent.failed",
                json!({"from": "running", "error": "boom\u{1b}[2J"})
            ),
            "12:00:01 agent.failed error: boom\\x1b[2J\n"
        );
        assert_eq!(line("agent.killed", json!({})), "12:00:01 agent.killed\n");
    }

    #[test]
    fn output_lines_print_as_themselves_escaped() {
        let e = event(
            "agent.output",
            json!({"stream": "stderr", "lines": ["a\tb", "\u{1b}[31mred"]}),
        );
        assert_eq!(
            render(&e),
            Rendered::Lines {
                stderr: true,
                text: "a\tb\n\\x1b[31mred\n".into()
            }
        );
    }
}
