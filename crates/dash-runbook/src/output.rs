//! Presentation shared by the reports: aligned tables, human durations and
//! sizes, and progress lines on stderr for long steps.

use std::future::Future;
use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// A plain text table: a header row and left-aligned columns.
#[derive(Debug, Default)]
pub struct Table {
    headers: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(headers: &[&str]) -> Table {
        Table {
            headers: headers.iter().map(|h| h.to_string()).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table, each line ending in a newline, trailing spaces trimmed.
    pub fn render(&self) -> String {
        let columns = self.headers.len();
        let mut widths: Vec<usize> = self.headers.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&self.headers).chain(&self.rows) {
            let mut line = String::new();
            for (i, width) in widths.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                line.push_str(cell);
                let pad = width.saturating_sub(cell.chars().count()) + 2;
                line.extend(std::iter::repeat_n(' ', pad));
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }
}

/// `350ms`, `4.2s`, `3m 12s`, `2h 05m`, `3d 04h`.
pub fn duration(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..=59 => format!("{:.1}s", d.as_secs_f64()),
        60..=3599 => format!("{}m {:02}s", secs / 60, secs % 60),
        3600..=86_399 => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
        _ => format!("{}d {:02}h", secs / 86_400, secs % 86_400 / 3600),
    }
}

/// [`duration`] of fractional seconds (negative counts as zero).
pub fn seconds(s: f64) -> String {
    duration(Duration::from_secs_f64(s.max(0.0)))
}

/// `812 B`, `12.3 KiB`, `4.0 MiB`, `1.2 GiB`.
pub fn bytes(n: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64 / 1024.0;
    let mut unit = 0;
    while v >= 1024.0 && unit < UNITS.len() - 1 {
        v /= 1024.0;
        unit += 1;
    }
    format!("{v:.1} {}", UNITS[unit])
}

/// `-` for a missing value.
pub fn or_dash<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

/// Progress of one long step, on stderr: a live line on a terminal, and a
/// line every [`Progress::QUIET_EVERY`] otherwise (CI logs, pipes).
pub struct Progress {
    label: String,
    started: Instant,
    tty: bool,
    last: Mutex<Instant>,
}

impl Progress {
    /// How often a non-terminal gets an update line.
    pub const QUIET_EVERY: Duration = Duration::from_secs(10);

    pub fn start(label: impl Into<String>) -> Progress {
        let label = label.into();
        let tty = std::io::stderr().is_terminal();
        let now = Instant::now();
        let mut err = std::io::stderr().lock();
        let _ = match tty {
            true => write!(err, "{label} ..."),
            false => writeln!(err, "{label} ..."),
        };
        let _ = err.flush();
        Progress {
            label,
            started: now,
            tty,
            last: Mutex::new(now),
        }
    }

    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    /// Reports how far the step got.
    pub fn update(&self, detail: &str) {
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        let elapsed = duration(self.started.elapsed());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K{} ... {detail} ({elapsed})", self.label);
        } else if last.elapsed() >= Self::QUIET_EVERY {
            let _ = writeln!(err, "{} ... {detail} ({elapsed})", self.label);
            *last = Instant::now();
        }
        let _ = err.flush();
    }

    /// Ends the step with its outcome.
    pub fn finish(self, outcome: &str) {
        let elapsed = duration(self.started.elapsed());
        let mut err = std::io::stderr().lock();
        if self.tty {
            let _ = write!(err, "\r\x1b[K");
        }
        let _ = writeln!(err, "{}: {outcome} ({elapsed})", self.label);
    }

    /// Awaits `fut`, updating the line every half second with `detail()`.
    pub async fn track<T>(&self, fut: impl Future<Output = T>, detail: impl Fn() -> String) -> T {
        tokio::pin!(fut);
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        tick.tick().await;
        loop {
            tokio::select! {
                v = &mut fut => return v,
                _ = tick.tick() => self.update(&detail()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let mut t = Table::new(&["NODE", "ROLE"]);
        t.row(vec!["node0".into(), "primary".into()]);
        t.row(vec!["n1".into(), "-".into()]);
        assert_eq!(t.render(), "NODE   ROLE\nnode0  primary\nn1     -\n");
    }

    #[test]
    fn humane_units() {
        assert_eq!(duration(Duration::from_millis(350)), "350ms");
        assert_eq!(duration(Duration::from_secs(312)), "5m 12s");
        assert_eq!(seconds(-1.0), "0ms");
        assert_eq!(bytes(812), "812 B");
        assert_eq!(bytes(5 * 1024 * 1024), "5.0 MiB");
    }
}
