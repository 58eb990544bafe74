//! Reading Prometheus text and the API's error shape in assertions.

use serde_json::Value;

/// The value of one metric sample line, e.g. `pg_up` or `pg_pool_max_size`.
pub fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().filter(|l| !l.starts_with('#')).find_map(|l| {
        l.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix(' '))
            .and_then(|v| v.trim().parse().ok())
    })
}

/// The sum of every sample of `name` whose label set contains all of `labels`
/// (e.g. `[r#"route="/api/v1/swarms""#]`); `None` when there is no such sample.
pub fn metric_sum(text: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let mut found = None;
    for l in text.lines().filter(|l| !l.starts_with('#')) {
        let Some(rest) = l.strip_prefix(name) else {
            continue;
        };
        let (set, value) = match rest.strip_prefix('{') {
            Some(r) => match r.split_once("} ") {
                Some((set, v)) => (set, v),
                None => continue,
            },
            None => match rest.strip_prefix(' ') {
                Some(v) => ("", v),
                None => continue,
            },
        };
        if labels
            .iter()
            .all(|want| set.split(',').any(|kv| kv == *want))
        {
            if let Ok(v) = value.trim().parse::<f64>() {
                *found.get_or_insert(0.0) += v;
            }
        }
    }
    found
}

/// Asserts a 4xx/5xx answer in the API's error shape with this code; returns the message.
pub fn assert_error(status: u16, body: &Value, want_status: u16, want_code: &str) -> String {
    assert_eq!(status, want_status, "status of {body}");
    assert_eq!(body["error"]["code"], want_code, "code of {body}");
    let msg = body["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("error message in {body}"));
    assert!(!msg.is_empty(), "an empty error message: {body}");
    msg.to_string()
}
