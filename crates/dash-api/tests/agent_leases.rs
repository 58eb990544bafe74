//! Agents that workers run, at the store: claims under the caps (never one
//! over, with many claimers at once), leases fenced by attempt, the stop
//! order in heartbeats and reports, usage charged once per message id, the
//! reaper, retries with a fallback model, and resume of a worker's agent.

use std::sync::Arc;
use std::time::Duration;

use dash_store::pool::NoopObserver;
use dash_store::repo::agents::lease::{Caps, Claim, Directive, Finish};
use dash_store::Db;
use dash_testkit::TestApp;
use serde_json::{json, Value};
use uuid::Uuid;

const LEASE: Duration = Duration::from_secs(10);
const OPEN: Caps = Caps {
    global: 1000,
    per_swarm: 1000,
};

fn db(app: &TestApp) -> Db {
    Db::new(app.db_settings(), Arc::new(NoopObserver))
}

async fn swarm(app: &TestApp, max_agents: i64, budget: f64) -> String {
    let s = app
        .swarm(json!({"name": "s", "strategy": "parallel",
                      "config": {"max_agents": max_agents}, "budget": {"allocated": budget}}))
        .await;
    s["id"].as_str().unwrap().to_string()
}

async fn spawn(app: &TestApp, swarm: &str, extra: Value) -> Uuid {
    let mut body = json!({"swarm_id": swarm, "task": "t", "max_retries": 1});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    let a = app.agent(body).await;
    a["id"].as_str().unwrap().parse().unwrap()
}

async fn claim(db: &Db) -> Option<Claim> {
    db.claim_agent("w1", LEASE, OPEN).await.unwrap()
}

async fn running(app: &TestApp) -> i64 {
    let pg = app.pg().await;
    let r = pg
        .query_one("SELECT count(*) FROM agents WHERE status = 'running'", &[])
        .await
        .unwrap();
    r.get(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_claims_never_pass_a_cap() {
    let app = TestApp::spawn().await;
    let db = db(&app);
    // Four swarms of 8 agents; a swarm lets 3 run, all together 5.
    for _ in 0..4 {
        let s = swarm(&app, 8, 0.0).await;
        for _ in 0..8 {
            spawn(&app, &s, json!({})).await;
        }
    }
    let caps = Caps {
        global: 5,
        per_swarm: 3,
    };
    let claimers = (0..16).map(|i| {
        let db = db.clone();
        tokio::spawn(async move {
            let mut got = 0;
            for _ in 0..6 {
                // Batches of up to 3: a batch must keep the caps by itself.
                let worker = format!("w{i}");
                got += db
                    .claim_agents(&worker, LEASE, caps, 3)
                    .await
                    .unwrap()
                    .len();
            }
            got as i32
        })
    });
    let claimed: i32 = futures::future::join_all(claimers)
        .await
        .into_iter()
        .map(|r| r.unwrap())
        .sum();
    assert_eq!(claimed, 5, "claims past the global cap of 5");
    assert_eq!(running(&app).await, 5);
    let pg = app.pg().await;
    let most: i64 = pg
        .query_one(
            "SELECT max(n) FROM (SELECT count(*) AS n FROM agents WHERE status = 'running' GROUP BY swarm_id) c",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(most <= 3, "a swarm runs {most}, past its cap of 3");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heartbeats_and_reports_carry_the_stop_and_usage_is_charged_once() {
    let app = TestApp::spawn().await;
    let db = db(&app);
    let s = swarm(&app, 5, 1.0).await;
    let id = spawn(&app, &s, json!({})).await;
    let c = claim(&db).await.expect("a claim");
    assert_eq!((c.id, c.attempt), (id, 1));
    assert_eq!(c.budget_remaining, Some(1.0));
    assert_eq!(
        db.heartbeat(id, 1, LEASE, None).await.unwrap(),
        Directive::Continue
    );

    // One message reported twice (a retry across a failover): charged once.
    for _ in 0..2 {
        let d = db
            .report_usage(id, 1, "m1", 100, 0.4, Some(0.5))
            .await
            .unwrap();
        assert_eq!(d, Directive::Continue);
    }
    let (_, a) = app.get(&format!("/agents/{id}")).await;
    assert_eq!(a["cost"], 0.4, "{a}");
    assert_eq!(a["progress"], 0.5, "{a}");

    // The budget spent: recorded, the swarm paused, the worker told to stop.
    let d = db.report_usage(id, 1, "m2", 100, 0.7, None).await.unwrap();
    assert!(
        matches!(d, Directive::Stop(ref why) if why.contains("budget")),
        "{d:?}"
    );
    let (_, sw) = app.get(&format!("/swarms/{s}")).await;
    assert_eq!(sw["status"], "paused", "{sw}");
    assert!(
        (sw["budget"]["consumed"].as_f64().unwrap() - 1.1).abs() < 1e-9,
        "{sw}"
    );
    assert!(matches!(
        db.heartbeat(id, 1, LEASE, None).await.unwrap(),
        Directive::Stop(_)
    ));

    // Yielded: pending again, and no claim while the swarm is paused.
    assert!(db
        .yield_attempt(id, 1, "the swarm's budget is spent")
        .await
        .unwrap());
    assert!(claim(&db).await.is_none(), "claimed from a paused swarm");
    let (_, a) = app.get(&format!("/agents/{id}")).await;
    assert_eq!(a["status"], "pending");

    // Killed while running: the next heartbeat says the lease is lost.
    let s2 = swarm(&app, 5, 0.0).await;
    let id2 = spawn(&app, &s2, json!({})).await;
    let c2 = claim(&db).await.expect("a claim");
    assert_eq!(c2.id, id2);
    let (st, _) = app.act(&format!("/agents/{id2}/kill")).await;
    assert_eq!(st, 200);
    let d = db.heartbeat(id2, 1, LEASE, None).await.unwrap();
    assert!(
        matches!(d, Directive::Lost(ref why) if why.contains("killed")),
        "{d:?}"
    );
    let f = db.finish_attempt(id2, 1, true, None, None).await.unwrap();
    assert!(matches!(f, Finish::Fenced(_)), "{f:?}");
    let (_, a2) = app.get(&format!("/agents/{id2}")).await;
    assert_eq!(
        a2["status"], "killed",
        "a fenced completion was applied: {a2}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_leases_are_reclaimed_and_the_old_attempt_is_fenced_out() {
    let app = TestApp::spawn().await;
    let db = db(&app);
    let s = swarm(&app, 5, 0.0).await;
    let id = spawn(&app, &s, json!({"metadata": {"fallback_model": "bigger"}})).await;
    let c = db
        .claim_agent("w-dead", Duration::from_millis(200), OPEN)
        .await
        .unwrap()
        .expect("a claim");
    assert_eq!(c.attempt, 1);
    tokio::time::sleep(Duration::from_millis(400)).await;
    assert_eq!(db.reap_expired().await.unwrap(), 1);
    let (_, a) = app.get(&format!("/agents/{id}")).await;
    assert_eq!(
        (a["status"].as_str(), a["retry_count"].as_i64()),
        (Some("pending"), Some(1))
    );
    assert!(a["last_error"].as_str().unwrap().contains("w-dead"), "{a}");
    // Reclaimed: claimable at once (the lease already made it wait).
    let c2 = claim(&db).await.expect("the retry");
    assert_eq!(c2.attempt, 2);

    // The dead worker's late completion is rejected and recorded.
    let late = db.finish_attempt(id, 1, true, None, None).await.unwrap();
    assert!(
        matches!(late, Finish::Fenced(ref w) if w.contains("superseded")),
        "{late:?}"
    );
    assert!(app
        .event_kinds()
        .await
        .contains(&"agent.fenced".to_string()));

    // The live attempt fails for good (max_retries 1), then nothing is left.
    let done = db
        .finish_attempt(id, 2, false, Some("boom"), None)
        .await
        .unwrap();
    let Finish::Applied(a) = done else {
        panic!("{done:?}")
    };
    assert_eq!(a.status.as_str(), "failed");
    assert_eq!(a.last_error.as_deref(), Some("boom"));

    // A failure with retries left swaps in the fallback model.
    let id3 = spawn(&app, &s, json!({"metadata": {"fallback_model": "bigger"}})).await;
    let c3 = claim(&db).await.expect("a claim");
    assert_eq!(c3.id, id3);
    let f = db
        .finish_attempt(id3, 1, false, Some("flaky"), None)
        .await
        .unwrap();
    let Finish::Applied(a3) = f else {
        panic!("{f:?}")
    };
    assert_eq!(
        (a3.status.as_str(), a3.model.as_str()),
        ("pending", "bigger")
    );
    // A runtime that failed waits out its retry delay (1 s) first.
    assert!(claim(&db).await.is_none(), "claimed before the retry delay");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(claim(&db).await.expect("the retry").attempt, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_worker_agent_resumes_to_pending_for_a_new_claim() {
    let app = TestApp::spawn().await;
    let db = db(&app);
    let s = swarm(&app, 5, 0.0).await;
    let id = spawn(&app, &s, json!({})).await;
    claim(&db).await.expect("a claim");
    let (st, _) = app.act(&format!("/agents/{id}/pause")).await;
    assert_eq!(st, 200);
    let d = db.heartbeat(id, 1, LEASE, None).await.unwrap();
    assert!(
        matches!(d, Directive::Lost(ref w) if w.contains("paused")),
        "{d:?}"
    );
    let (st, a) = app.act(&format!("/agents/{id}/resume")).await;
    assert_eq!((st, a["status"].as_str()), (200, Some("pending")), "{a}");
    let c = claim(&db).await.expect("claimed again");
    assert_eq!((c.id, c.attempt), (id, 2));
}
