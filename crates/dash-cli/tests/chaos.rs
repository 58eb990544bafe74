//! `dashctl chaos` end to end: a private cluster with synchronous replication,
//! real faults, and the correctness figures asserted exactly. Timings are
//! checked only against generous bounds.

use dash_testkit::Runner;

fn chaos(scenario: &str, rounds: u32) -> serde_json::Value {
    Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_LOG", "error")
        .run_blocking(&[
            "chaos",
            scenario,
            "--rounds",
            &rounds.to_string(),
            "--concurrency",
            "4",
            "--json",
        ])
        .expect_code(0)
        .json()
}

fn assert_clean(r: &serde_json::Value, rounds: usize) {
    assert_eq!(r["rounds"].as_array().unwrap().len(), rounds, "{r}");
    assert!(
        r["acked_writes"].as_u64().unwrap() > 0,
        "no write was acknowledged: {r}"
    );
    assert_eq!(r["lost"], 0, "acknowledged writes were lost: {r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    assert_eq!(r["fenced_writes"], 0, "a fenced node accepted writes: {r}");
    for round in r["rounds"].as_array().unwrap() {
        assert!(
            round["ha_restored_ms"].is_number(),
            "HA was not restored: {round}"
        );
        // Generous: the target is about a second; this only catches a stuck failover.
        assert!(
            round["write_gap_ms"].as_f64().unwrap() < 20_000.0,
            "{round}"
        );
    }
}

#[test]
fn kill_primary_fails_over_with_nothing_lost_and_heals() {
    let r = chaos("kill-primary", 2);
    assert_clean(&r, 2);
    let rounds = r["rounds"].as_array().unwrap();
    assert_ne!(
        rounds[0]["old_primary"], rounds[0]["new_primary"],
        "no failover happened: {r}"
    );
}

#[test]
fn a_frozen_primary_is_fenced_and_never_writes_again() {
    let r = chaos("hang-primary", 1);
    assert_clean(&r, 1);
}

#[test]
fn a_restarted_primary_never_splits_the_brain() {
    let r = chaos("restart-primary", 1);
    assert_clean(&r, 1);
}

#[test]
fn sessions_held_idle_in_transaction_outside_the_api_do_not_starve_it() {
    let r = chaos("exhaust-pool", 1);
    assert_eq!(r["lost"], 0, "{r}");
    assert_eq!(r["duplicates"], 0, "{r}");
    let round = &r["rounds"][0];
    assert!(
        round["held_sessions"].as_u64().unwrap() > 50,
        "the fault held too few sessions: {round}"
    );
    assert!(round["acked_writes"].as_u64().unwrap() > 0, "{round}");
}

#[test]
fn a_restore_to_a_point_keeps_every_earlier_write_and_none_after_across_a_failover() {
    let r = Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_LOG", "error")
        .run_blocking(&[
            "chaos",
            "pitr",
            "--rounds",
            "2",
            "--failover-every",
            "2",
            "--concurrency",
            "4",
            "--json",
        ])
        .expect_code(0)
        .json();
    let rounds = r["rounds"].as_array().unwrap();
    assert_eq!(rounds.len(), 2, "{r}");
    assert!(
        r["acked_before"].as_u64().unwrap() > 0,
        "no write before the point: {r}"
    );
    assert!(
        r["sent_after"].as_u64().unwrap() > 0,
        "no write after the point: {r}"
    );
    assert_eq!(
        r["missing"], 0,
        "writes acknowledged before the point are missing: {r}"
    );
    assert_eq!(
        r["present_after"], 0,
        "writes sent after the point came back: {r}"
    );
    assert!(rounds[0]["failover"].is_null(), "{r}");
    assert!(
        rounds[1]["failover"].is_string(),
        "round 2 did not fail over: {r}"
    );
    for round in rounds {
        assert!(
            round["deleted"].as_u64().unwrap() > 0,
            "the incident deleted nothing: {round}"
        );
        assert!(round["timeline"].as_u64().unwrap() >= 2, "{round}");
    }
}
