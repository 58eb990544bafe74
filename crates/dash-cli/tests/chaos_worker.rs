//! `dashctl chaos kill-worker` end to end: real `dashctl worker` processes
//! on a private PostgreSQL node, SIGKILLed while they run agents. The
//! correctness figures are asserted exactly; timings only loosely.

use dash_testkit::Runner;

#[test]
fn killed_workers_lose_no_agent_and_run_none_twice() {
    let r = Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_LOG", "error")
        .run_blocking(&[
            "chaos",
            "kill-worker",
            "--rounds",
            "2",
            "--agents",
            "12",
            "--lease",
            "3s",
            "--heartbeat",
            "1s",
            "--json",
        ])
        .expect_code(0)
        .json();
    assert_eq!(r["rounds"].as_array().unwrap().len(), 2, "{r}");
    assert_eq!(r["completed"], 12, "{r}");
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["completed_once"], 12, "{r}");
    assert_eq!(r["overlaps"], 0, "{r}");
    assert_eq!(r["journal_bad_lines"], 0, "{r}");
    assert!(
        r["max_running"].as_i64().unwrap() <= r["cap"].as_i64().unwrap(),
        "{r}"
    );
    assert!(r["running_samples"].as_u64().unwrap() > 0, "{r}");
    // Every round killed a worker that ran at least one agent, and each
    // killed agent was claimed again by another worker.
    assert!(r["killed_attempts"].as_u64().unwrap() >= 2, "{r}");
    assert_eq!(r["not_reclaimed"], 0, "{r}");
    let reclaim = &r["reclaim_ms"];
    assert!(reclaim["min"].as_f64().unwrap() > 0.0, "{r}");
    // Generous: lease 3 s, then a reap and a 1 s retry delay.
    assert!(reclaim["max"].as_f64().unwrap() < 30_000.0, "{r}");
    // Every agent's run ended normally at least once. A killed attempt may
    // have ended too: its runtime finished just before its worker died and
    // before the completion landed, so the agent ran again (work is at
    // least once; completions exactly once, asserted above).
    let journal = &r["journal"];
    assert_eq!(journal["agents"], 12, "{r}");
    let ended = journal["ended"].as_u64().unwrap();
    let killed = r["killed_attempts"].as_u64().unwrap();
    assert!((12..=12 + killed).contains(&ended), "{r}");
    let runs = journal["runs"].as_u64().unwrap();
    assert!(runs >= 12, "{r}");
    assert!(runs <= 12 + r["killed_attempts"].as_u64().unwrap(), "{r}");
}
