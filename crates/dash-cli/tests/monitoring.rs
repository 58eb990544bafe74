//! The monitoring shipped in deploy/: the alert rules pass their promtool
//! unit tests and every alert has a firing case; Alertmanager's config is
//! valid and routes every critical alert to the "Dash Critical" pager and
//! every warning to chat; the Grafana dashboard parses and queries only
//! metrics that Dash (its API, its node agents) or its documented exporters
//! export. `promtool` and `amtool` come from Debian's `prometheus` and
//! `prometheus-alertmanager` packages (`make deps` installs them).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Series from the exporters the deployment documents (postgres_exporter,
/// kube-state-metrics) and Prometheus's own `up`.
const EXPORTER_METRICS: &[&str] = &[
    "up",
    "pg_replication_is_replica",
    "pg_replication_lag_seconds",
    "pg_stat_replication_pg_wal_lsn_diff",
    "pg_stat_replication_pg_current_wal_lsn_bytes",
    "kube_cronjob_status_last_successful_time",
    "kube_cronjob_created",
];

fn deploy() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy")
}

/// Runs a tool; panics with its output, or with how to install it.
fn run(tool: &str, args: &[&str]) -> std::process::Output {
    Command::new(tool).args(args).output().unwrap_or_else(|e| {
        panic!("cannot run {tool} ({e}): install Debian's prometheus and prometheus-alertmanager packages (`make deps`)")
    })
}

fn ok(tool: &str, args: &[&str]) -> String {
    let out = run(tool, args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{tool} {args:?} failed:\n{text}");
    text
}

fn yaml(path: &Path) -> serde_norway::Value {
    let text = std::fs::read_to_string(path).unwrap();
    serde_norway::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// (alert, severity) of every rule.
fn alerts() -> Vec<(String, String)> {
    let rules = yaml(&deploy().join("prometheus/alerts.yaml"));
    let mut out = Vec::new();
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            let name = r["alert"].as_str().unwrap().to_string();
            let sev = r["labels"]["severity"].as_str().unwrap_or("").to_string();
            out.push((name, sev));
        }
    }
    out
}

#[test]
fn every_alert_passes_its_promtool_tests_and_has_a_firing_case() {
    let rules = deploy().join("prometheus/alerts.yaml");
    ok("promtool", &["check", "rules", rules.to_str().unwrap()]);
    let (mut firing, mut silent) = (BTreeSet::new(), BTreeSet::new());
    for file in ["alerts_test.yaml", "alerts_healthy_test.yaml"] {
        let tests = deploy().join("prometheus").join(file);
        ok("promtool", &["test", "rules", tests.to_str().unwrap()]);
        for t in yaml(&tests)["tests"].as_sequence().unwrap() {
            for a in t["alert_rule_test"].as_sequence().unwrap() {
                let name = a["alertname"].as_str().unwrap().to_string();
                match a["exp_alerts"].as_sequence().is_some_and(|s| !s.is_empty()) {
                    true => firing.insert(name),
                    false => silent.insert(name),
                };
            }
        }
    }
    for (name, sev) in alerts() {
        assert!(firing.contains(&name), "{name} has no case where it fires");
        assert!(
            silent.contains(&name),
            "{name} has no case where it stays silent"
        );
        assert!(
            sev == "critical" || sev == "warning",
            "{name}: severity {sev:?}"
        );
    }
}

#[test]
fn critical_alerts_page_dash_critical_and_warnings_go_to_chat() {
    let config = deploy().join("alertmanager/alertmanager.yml");
    let config = config.to_str().unwrap();
    ok("amtool", &["check-config", config]);
    let file = format!("--config.file={config}");
    let mut cases: Vec<(String, Vec<String>)> = alerts()
        .into_iter()
        .map(|(name, sev)| {
            let receiver = match sev.as_str() {
                "critical" => "Dash Critical",
                _ => "dash-chat",
            };
            let labels = vec![
                format!("alertname={name}"),
                format!("severity={sev}"),
                "namespace=dash".to_string(),
            ];
            (receiver.to_string(), labels)
        })
        .collect();
    // Anything else (no severity) still reaches someone.
    cases.push(("dash-chat".into(), vec!["alertname=Unknown".into()]));
    for (receiver, labels) in cases {
        let verify = format!("--verify.receivers={receiver}");
        let mut args = vec!["config", "routes", "test", file.as_str(), verify.as_str()];
        args.extend(labels.iter().map(String::as_str));
        ok("amtool", &args);
    }
    // And the test can fail: a warning never pages.
    let verify = "--verify.receivers=Dash Critical";
    let out = run(
        "amtool",
        &[
            "config",
            "routes",
            "test",
            &file,
            verify,
            "alertname=DashPoolSaturated",
            "severity=warning",
        ],
    );
    assert!(!out.status.success(), "a warning was routed to the pager");
}

/// PromQL words that are never metric names.
const NOT_METRICS: &[&str] = &[
    "and",
    "or",
    "unless",
    "bool",
    "offset",
    "sum",
    "min",
    "max",
    "avg",
    "count",
    "group",
    "stddev",
    "stdvar",
    "topk",
    "bottomk",
    "quantile",
    "count_values",
];

/// Metric names a PromQL expression reads (label matchers, grouping
/// clauses, strings, numbers and function names left out).
fn metric_names(expr: &str) -> BTreeSet<String> {
    // Blank out `{...}` (label matchers, with their quoted values).
    let mut text = String::new();
    let (mut depth, mut quoted) = (0, false);
    for c in expr.chars() {
        match c {
            '"' if depth > 0 => quoted = !quoted,
            '{' if !quoted => depth += 1,
            '}' if !quoted => depth -= 1,
            _ => {}
        }
        text.push(if depth > 0 || c == '}' { ' ' } else { c });
    }
    // Blank out the label lists of `by (...)`, `on (...)` and the like.
    for kw in [
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
    ] {
        let mut from = 0;
        while let Some(at) = text[from..].find(kw).map(|i| i + from) {
            from = at + kw.len();
            let before = text[..at].chars().last();
            if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
                continue;
            }
            let rest = &text[from..];
            if let Some(open) = rest.find(|c: char| !c.is_whitespace()) {
                if rest[open..].starts_with('(') {
                    if let Some(close) = rest[open..].find(')') {
                        let (a, b) = (at, from + open + close + 1);
                        text.replace_range(a..b, &" ".repeat(b - a));
                    }
                }
            }
        }
    }
    let mut out = BTreeSet::new();
    let mut word = String::new();
    let chars: Vec<char> = text.chars().collect();
    for (i, &c) in chars.iter().enumerate() {
        if c.is_ascii_alphanumeric() || c == '_' || c == ':' {
            word.push(c);
            continue;
        }
        if !word.is_empty() {
            let next = chars[i..].iter().find(|c| !c.is_whitespace());
            let number = word.starts_with(|c: char| c.is_ascii_digit());
            let function = next == Some(&'(');
            // Inside a range selector `[5m]` the duration is not a name.
            let duration = c == ']';
            if !(number || function || duration || NOT_METRICS.contains(&word.as_str())) {
                out.insert(word.clone());
            }
            word.clear();
        }
    }
    if !word.is_empty() && !word.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(word);
    }
    out
}

/// The exposition's metric names, with each histogram's series and each
/// counter's `_total`.
fn exposed(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut parts = rest.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            match kind {
                "counter" => names.insert(format!("{name}_total")),
                "histogram" => {
                    for s in ["_bucket", "_sum", "_count"] {
                        names.insert(format!("{name}{s}"));
                    }
                    true
                }
                _ => names.insert(name.to_string()),
            };
        }
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grafana_dashboard_and_the_alerts_query_only_exported_metrics() {
    let app = dash_testkit::TestApp::spawn().await;
    let mut known = exposed(&app.metrics().await);
    known.extend(exposed(&dash_node::NodeMetrics::new().encode()));
    known.extend(EXPORTER_METRICS.iter().map(|s| s.to_string()));
    assert!(known.contains("pg_pool_max_size") && known.contains("dash_node_leader"));
    app.shutdown().await;

    let path = deploy().join("grafana/dash-overview.json");
    let dash: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    assert!(dash["title"].is_string() && dash["uid"].is_string());
    let mut exprs = Vec::new();
    for p in dash["panels"].as_array().unwrap() {
        if p["type"] == "row" {
            continue;
        }
        let targets = p["targets"].as_array().unwrap();
        assert!(!targets.is_empty(), "panel {} queries nothing", p["title"]);
        for t in targets {
            exprs.push(t["expr"].as_str().unwrap().to_string());
        }
    }
    let rules = yaml(&deploy().join("prometheus/alerts.yaml"));
    for g in rules["groups"].as_sequence().unwrap() {
        for r in g["rules"].as_sequence().unwrap() {
            exprs.push(r["expr"].as_str().unwrap().to_string());
        }
    }
    for e in &exprs {
        let names = metric_names(e);
        assert!(!names.is_empty(), "no metric found in {e}");
        for n in names {
            assert!(
                known.contains(&n),
                "{n} (in `{e}`) is exported by nothing Dash ships or documents"
            );
        }
    }
    // The check can fail: a name nothing exports is caught.
    let bogus = metric_names("sum by (route) (rate(dash_http_requestz_total{route=\"x\"}[5m]))");
    assert_eq!(
        bogus.into_iter().collect::<Vec<_>>(),
        ["dash_http_requestz_total"]
    );
}
