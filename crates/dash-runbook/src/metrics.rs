//! The API's pool and connection health as its metrics endpoint reports it
//! (the runbook's `curl localhost:9090/metrics | grep pg_pool`).

use std::collections::BTreeMap;

use serde::Serialize;

/// The `pg_*` figures the runbook reads, from one scrape.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ApiMetrics {
    /// `pg_up`: 1 when the API is connected to a writable primary.
    pub pg_up: Option<f64>,
    pub pool_max_size: Option<f64>,
    pub pool_size: Option<f64>,
    pub pool_idle: Option<f64>,
    pub pool_in_use: Option<f64>,
    pub pool_waiting: Option<f64>,
    /// `pg_pool_acquire_timeouts_total`.
    pub acquire_timeouts: Option<f64>,
    /// `pg_connection_errors_total` by `reason`.
    pub connection_errors: BTreeMap<String, f64>,
    /// `pg_failovers_total`.
    pub failovers: Option<f64>,
}

impl ApiMetrics {
    /// Parses a Prometheus / OpenMetrics text exposition.
    pub fn parse(text: &str) -> ApiMetrics {
        let mut m = ApiMetrics::default();
        for line in text.lines().map(str::trim) {
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let Some((name, labels, value)) = split_sample(line) else {
                continue;
            };
            let slot = match name {
                "pg_up" => &mut m.pg_up,
                "pg_pool_max_size" => &mut m.pool_max_size,
                "pg_pool_size" => &mut m.pool_size,
                "pg_pool_idle" => &mut m.pool_idle,
                "pg_pool_in_use" => &mut m.pool_in_use,
                "pg_pool_waiting" => &mut m.pool_waiting,
                "pg_pool_acquire_timeouts_total" => &mut m.acquire_timeouts,
                "pg_failovers_total" => &mut m.failovers,
                "pg_connection_errors_total" => {
                    let reason = label(labels, "reason").unwrap_or_default();
                    *m.connection_errors.entry(reason).or_default() += value;
                    continue;
                }
                _ => continue,
            };
            *slot = Some(value);
        }
        m
    }

    /// Every connection error, all reasons together.
    pub fn connection_errors_total(&self) -> f64 {
        self.connection_errors.values().sum()
    }

    /// Whether the exposition held any `pg_pool_*` gauge at all.
    pub fn has_pool(&self) -> bool {
        self.pool_max_size.is_some() && self.pool_in_use.is_some()
    }

    /// One line for reports: `pg_up 1, pool 3/20 in use, 0 waiting, ...`.
    pub fn summary(&self) -> String {
        let n = |v: Option<f64>| v.map_or("?".to_string(), |v| format!("{v}"));
        format!(
            "pg_up {}, pool max {} size {} idle {} in use {} waiting {}, acquire timeouts {}, connection errors {}",
            n(self.pg_up),
            n(self.pool_max_size),
            n(self.pool_size),
            n(self.pool_idle),
            n(self.pool_in_use),
            n(self.pool_waiting),
            n(self.acquire_timeouts),
            self.connection_errors_total(),
        )
    }
}

/// `name{labels} value [timestamp]` into its parts.
fn split_sample(line: &str) -> Option<(&str, &str, f64)> {
    let (name, labels, rest) = match line.find('{') {
        Some(i) if !line[..i].contains(' ') => {
            let close = i + line[i..].find('}')?;
            (&line[..i], &line[i + 1..close], &line[close + 1..])
        }
        _ => {
            let (name, rest) = line.split_once(' ')?;
            (name, "", rest)
        }
    };
    let value = rest.split_whitespace().next()?.parse().ok()?;
    Some((name, labels, value))
}

/// The value of label `key` in `a="x",b="y"`.
fn label(labels: &str, key: &str) -> Option<String> {
    labels.split(',').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        (k.trim() == key).then(|| v.trim().trim_matches('"').to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SAMPLE: &str = "# HELP pg_up 1 when connected\n# TYPE pg_up gauge\npg_up 1\n\
        pg_pool_max_size 20\npg_pool_size 3\npg_pool_idle 2\npg_pool_in_use 1\npg_pool_waiting 0\n\
        # TYPE pg_pool_acquire_timeouts counter\npg_pool_acquire_timeouts_total 4\n\
        pg_connection_errors_total{reason=\"refused\"} 2\npg_connection_errors_total{reason=\"timeout\"} 1\n\
        pg_failovers_total 1\npg_pool_acquire_seconds_bucket{le=\"0.1\"} 5\n# EOF\n";

    #[test]
    fn reads_the_runbook_figures() {
        let m = ApiMetrics::parse(SAMPLE);
        assert_eq!(m.pg_up, Some(1.0));
        assert_eq!(m.pool_max_size, Some(20.0));
        assert_eq!(m.pool_in_use, Some(1.0));
        assert_eq!(m.acquire_timeouts, Some(4.0));
        assert_eq!(m.connection_errors["refused"], 2.0);
        assert_eq!(m.connection_errors_total(), 3.0);
        assert_eq!(m.failovers, Some(1.0));
        assert!(m.has_pool());
        assert!(!ApiMetrics::parse("").has_pool());
    }

    proptest! {
        #[test]
        fn never_panics(text in "\\PC*") {
            let _ = ApiMetrics::parse(&text);
        }

        #[test]
        fn gauges_round_trip(v in 0u32..1_000_000, reason in "[a-z_]{1,12}") {
            let text = format!("pg_pool_waiting {v}\npg_connection_errors_total{{reason=\"{reason}\"}} {v} 1700000000\n");
            let m = ApiMetrics::parse(&text);
            prop_assert_eq!(m.pool_waiting, Some(f64::from(v)));
            prop_assert_eq!(m.connection_errors.get(&reason).copied(), Some(f64::from(v)));
        }
    }
}
