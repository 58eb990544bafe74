//! Printing for `dashctl swarm` and `dashctl agent`: API text as data
//! (control characters escaped), fields, JSON, and stdout that may close.

use std::io::Write;

use serde_json::Value;

use super::{Api, Failure};

/// `text` made safe for one table cell or line: every control character
/// (newlines and tabs too) and every bidirectional override shows escaped.
pub fn clean(text: &str) -> String {
    escape(text, false)
}

/// [`clean`] for a log line: tabs stay tabs.
pub fn clean_line(text: &str) -> String {
    escape(text, true)
}

fn escape(text: &str, keep_tabs: bool) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        let bidi = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        match c {
            '\t' if keep_tabs => out.push(c),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x100 && c.is_control() => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() || bidi => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
            c => out.push(c),
        }
    }
    out
}

/// `text` cut to `max` characters, with an ellipsis when cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.chars().count() > max {
        true => format!("{}…", text.chars().take(max - 1).collect::<String>()),
        false => text.to_string(),
    }
}

/// Writes `text` to stdout; a reader that went away ends the command quietly.
pub fn out(text: &str) -> Result<(), Failure> {
    let mut stdout = std::io::stdout().lock();
    match stdout
        .write_all(text.as_bytes())
        .and_then(|_| stdout.flush())
    {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Err(Failure::Closed),
        Err(e) => Err(Failure::Failed(format!("cannot write to stdout: {e}"))),
    }
}

/// Prints `v` as indented JSON.
pub fn out_json(v: &Value) -> Result<(), Failure> {
    let text = serde_json::to_string_pretty(v).unwrap_or_default();
    out(&format!("{text}\n"))
}

/// The API's JSON, or `human(v)`, as `--json` asks.
pub fn print_one(api: &Api, v: &Value, human: impl Fn(&Value) -> String) -> Result<u8, Failure> {
    match api.json {
        true => out_json(v)?,
        false => out(&human(v))?,
    }
    Ok(0)
}

/// Aligned `name:  value` lines.
pub fn fields(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(k, _)| k.len()).max().unwrap_or(0) + 1;
    rows.iter()
        .map(|(k, v)| format!("{:width$}  {v}\n", format!("{k}:")))
        .collect()
}

/// A string field of an API object, made safe to print (`-` when absent).
pub fn text(v: &Value, key: &str) -> String {
    match v.get(key) {
        Some(Value::String(s)) => clean(s),
        None | Some(Value::Null) => "-".into(),
        Some(other) => clean(&other.to_string()),
    }
}

/// A number field, with `decimals` places (`-` when absent).
pub fn number(v: &Value, pointer: &str, decimals: usize) -> String {
    v.pointer(pointer)
        .and_then(Value::as_f64)
        .map_or("-".into(), |n| format!("{n:.decimals$}"))
}

/// `2024-05-01 12:00:01` from an RFC 3339 timestamp field (UTC).
pub fn when(v: &Value, key: &str) -> String {
    let t = text(v, key);
    match t.len() >= 19 && t.is_char_boundary(19) {
        true => t[..19].replace('T', " "),
        false => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_print_escaped() {
        assert_eq!(clean("\u{1b}[31mred\u{7}"), "\\x1b[31mred\\x07");
        assert_eq!(clean("a\nb\tc"), "a\\nb\\tc");
        assert_eq!(clean_line("a\tb\rc"), "a\tb\\rc");
        assert_eq!(clean("\u{9b}2J \u{202e}txt"), "\\x9b2J \\u{202e}txt");
        assert_eq!(clean("naïve ✓"), "naïve ✓");
    }

    #[test]
    fn long_text_is_cut() {
        assert_eq!(cut("abcdef", 4), "abc…");
        assert_eq!(cut("abc", 4), "abc");
    }
}
