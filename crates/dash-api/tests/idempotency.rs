//! Retried creates never create twice: `Idempotency-Key` replays the first
//! response (also under concurrency), a reused key with another body is
//! refused, and a client-supplied id makes spawn safe to repeat.

mod common;

use common::{assert_error, TestApp};
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_key_replays_the_first_response() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "once", "strategy": "parallel"});
    let key = [("Idempotency-Key", "create-once-1")];
    let (s1, h1, b1) = app.post_with("/swarms", body.clone(), &key).await;
    assert_eq!(s1, 201, "{b1}");
    assert!(h1.get("idempotent-replayed").is_none());
    let (s2, h2, b2) = app.post_with("/swarms", body.clone(), &key).await;
    assert_eq!(s2, 201, "{b2}");
    assert_eq!(b2, b1, "the replay is the original response");
    assert_eq!(h2["idempotent-replayed"], "true");
    assert_eq!(app.count("swarms").await, 1);
    assert_eq!(
        app.event_kinds().await,
        ["swarm.created"],
        "a replay writes no event"
    );

    // The same key on another route is a different key.
    let sid = b1["id"].as_str().unwrap();
    let (s, h, a1) = app
        .post_with("/agents", json!({"swarm_id": sid, "task": "t"}), &key)
        .await;
    assert_eq!(s, 201, "{a1}");
    assert!(h.get("idempotent-replayed").is_none());
    let (s, h, a2) = app
        .post_with("/agents", json!({"swarm_id": sid, "task": "t"}), &key)
        .await;
    assert_eq!((s, &a2), (201, &a1));
    assert_eq!(h["idempotent-replayed"], "true");
    assert_eq!(app.count("agents").await, 1);

    // Reusing a key for a different request is refused and changes nothing.
    let (s, _, e) = app
        .post_with(
            "/swarms",
            json!({"name": "other", "strategy": "tree"}),
            &key,
        )
        .await;
    let msg = assert_error(s, &e, 409, "conflict");
    assert!(msg.contains("Idempotency-Key"), "{msg}");
    assert_eq!(app.count("swarms").await, 1);

    // A replay still answers after the object changed: it is the original response.
    app.act(&format!("/swarms/{sid}/pause")).await;
    let (s, _, b3) = app.post_with("/swarms", body.clone(), &key).await;
    assert_eq!((s, &b3), (201, &b1));
    assert_eq!(b3["status"], "active");

    // A failed request does not burn its key: the retry does the work.
    let k2 = [("Idempotency-Key", "after-a-fix")];
    let (s, _, _) = app
        .post_with(
            "/agents",
            json!({"swarm_id": "0190a0a0-0000-7000-8000-000000000000", "task": "t"}),
            &k2,
        )
        .await;
    assert_eq!(s, 404);
    let (s, _, e) = app
        .post_with(
            "/agents",
            json!({"swarm_id": "0190a0a0-0000-7000-8000-000000000000", "task": "t"}),
            &k2,
        )
        .await;
    assert_error(s, &e, 404, "not_found");

    // Keys must be sane.
    let (s, _, e) = app
        .post_with("/swarms", body.clone(), &[("Idempotency-Key", "")])
        .await;
    assert_error(s, &e, 400, "invalid_header");
    let long = "k".repeat(300);
    let (s, _, e) = app
        .post_with("/swarms", body, &[("Idempotency-Key", &long)])
        .await;
    assert_error(s, &e, 400, "invalid_header");
    assert_eq!(app.count("swarms").await, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_duplicates_create_exactly_one() {
    let app = TestApp::spawn().await;
    let body = json!({"task": "exactly once", "metadata": {"n": 1}});
    let calls = (0..12).map(|_| {
        let (app, body) = (&app, body.clone());
        async move {
            app.post_with("/agents", body, &[("Idempotency-Key", "race-1")])
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let first = &results[0].2;
    for (s, _, b) in &results {
        assert_eq!(*s, 201, "{b}");
        assert_eq!(b, first, "every duplicate gets the one response");
    }
    let replayed = results
        .iter()
        .filter(|(_, h, _)| h.get("idempotent-replayed").is_some())
        .count();
    assert_eq!(replayed, 11);
    assert_eq!(app.count("agents").await, 1);
    assert_eq!(app.count("idempotency_keys").await, 1);

    // The same with a client-supplied id and no key.
    let id = "0190a0a0-1111-7000-8000-000000000001";
    let calls = (0..12).map(|_| {
        let app = &app;
        async move {
            app.post("/agents", json!({"id": id, "task": "by id"}))
                .await
        }
    });
    let results = futures::future::join_all(calls).await;
    let mut statuses: Vec<u16> = results.iter().map(|r| r.0).collect();
    statuses.sort();
    assert_eq!(statuses[0], 200);
    assert_eq!(
        statuses.iter().filter(|s| **s == 201).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|s| *s == 200 || *s == 201),
        "{statuses:?}"
    );
    assert!(results.iter().all(|r| r.1["id"] == id));
    assert_eq!(app.count("agents").await, 2);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_supplied_ids_make_creates_repeatable() {
    let app = TestApp::spawn().await;
    let sid = "0190a0a0-2222-7000-8000-000000000001";
    let swarm = json!({"id": sid, "name": "mine", "strategy": "pipeline"});
    let (s, first) = app.post("/swarms", swarm.clone()).await;
    assert_eq!(s, 201, "{first}");
    assert_eq!(first["id"], sid);
    let (s, again) = app.post("/swarms", swarm).await;
    assert_eq!(s, 200, "{again}");
    assert_eq!(again, first);
    let (s, e) = app
        .post(
            "/swarms",
            json!({"id": sid, "name": "not mine", "strategy": "pipeline"}),
        )
        .await;
    let msg = assert_error(s, &e, 409, "conflict");
    assert!(msg.contains(sid), "{msg}");
    assert_eq!(app.count("swarms").await, 1);

    let aid = "0190a0a0-3333-7000-8000-000000000001";
    let agent = json!({"id": aid, "swarm_id": sid, "task": "spawn me once"});
    let (s, a1) = app.post("/agents", agent.clone()).await;
    assert_eq!(s, 201, "{a1}");
    let (s, a2) = app.post("/agents", agent.clone()).await;
    assert_eq!(s, 200, "{a2}");
    assert_eq!(a2["id"], aid);
    assert_eq!(a2["spawned_at"], a1["spawned_at"]);
    assert_eq!(app.count("agents").await, 1);
    let kinds = app.event_kinds().await;
    assert_eq!(kinds.iter().filter(|k| *k == "agent.spawned").count(), 1);
    // The same id for a different agent is refused.
    let (s, e) = app
        .post(
            "/agents",
            json!({"id": aid, "swarm_id": sid, "task": "someone else"}),
        )
        .await;
    assert_error(s, &e, 409, "conflict");
    // The retry still answers 200 after the agent moved on.
    let (s, _) = app.act(&format!("/agents/{aid}/start")).await;
    assert_eq!(s, 200);
    let (s, a3) = app.post("/agents", agent).await;
    assert_eq!(s, 200, "{a3}");
    assert_eq!(a3["status"], "running");
    assert_eq!(app.count("agents").await, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_spawn_succeeds_even_when_the_swarm_is_full_or_finished() {
    let app = TestApp::spawn().await;
    let s = app
        .swarm(json!({"name": "one", "strategy": "parallel", "config": {"max_agents": 1}}))
        .await;
    let sid = s["id"].as_str().unwrap();
    let aid = "0190a0a0-4444-7000-8000-000000000001";
    let agent = json!({"id": aid, "swarm_id": sid, "task": "the only one"});
    let (st, a1) = app.post("/agents", agent.clone()).await;
    assert_eq!(st, 201, "{a1}");
    // The swarm is now full, but the retry is the same agent, not a new one.
    let (st, a2) = app.post("/agents", agent.clone()).await;
    assert_eq!(st, 200, "{a2}");
    assert_eq!(a2["id"], aid);
    // A genuinely new agent is still refused.
    let (st, e) = app
        .post("/agents", json!({"swarm_id": sid, "task": "two"}))
        .await;
    assert_error(st, &e, 409, "conflict");
    // After the swarm finished, the retry still answers with the agent.
    let (st, _) = app.act(&format!("/swarms/{sid}/complete")).await;
    assert_eq!(st, 200);
    let (st, a3) = app.post("/agents", agent).await;
    assert_eq!(st, 200, "{a3}");
    assert_eq!(a3["id"], aid);
    assert_eq!(app.count("agents").await, 1);
    app.shutdown().await;
}

/// The token's old fingerprint: the first 8 bytes of its unsalted SHA-256.
fn legacy_fingerprint(token: &str) -> String {
    use sha2::{Digest, Sha256};
    hex::encode(&Sha256::digest(token.as_bytes())[..8])
}

async fn scopes(app: &TestApp) -> Vec<String> {
    let rows = app.pg().await;
    let rows = rows
        .query(
            "SELECT scope FROM idempotency_keys ORDER BY created_at",
            &[],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scopes_are_keyed_hashes_and_keys_stored_before_still_replay() {
    let app = TestApp::spawn().await;
    let body = json!({"name": "scoped", "strategy": "tree"});
    let (st, _, b) = app
        .post_with("/swarms", body.clone(), &[("Idempotency-Key", "k-new")])
        .await;
    assert_eq!(st, 201, "{b}");
    let stored = scopes(&app).await;
    assert_eq!(stored.len(), 1);
    let (route, who) = stored[0].rsplit_once(' ').unwrap();
    assert_eq!(route, "POST /swarms");
    assert_ne!(
        who,
        legacy_fingerprint(common::TOKEN),
        "an unsalted token hash"
    );
    assert_eq!(who.len(), 64, "a full HMAC-SHA256: {who}");
    assert!(who.bytes().all(|b| b.is_ascii_hexdigit()), "{who}");

    // A key stored under the old scope (before an upgrade) still replays.
    let old = json!({"name": "old", "strategy": "tree"});
    let raw = serde_json::to_vec(&old).unwrap();
    let hash = {
        use sha2::{Digest, Sha256};
        hex::encode(Sha256::digest(&raw))
    };
    let stored_body = json!({"id": "stored-before-the-upgrade"});
    let scope = format!("POST /swarms {}", legacy_fingerprint(common::TOKEN));
    app.pg()
        .await
        .execute(
            "INSERT INTO idempotency_keys (scope, key, request_hash, status, body)
             VALUES ($1, 'k-old', $2, 201, $3)",
            &[&scope, &hash, &stored_body],
        )
        .await
        .unwrap();
    let r = app.req(reqwest::Method::POST, "/swarms");
    let r = r.header("content-type", "application/json");
    let r = r.header("idempotency-key", "k-old").body(raw).send().await;
    let r = r.unwrap();
    assert_eq!(r.headers()["idempotent-replayed"], "true");
    let (st, b) = common::split(r).await;
    assert_eq!((st, b), (201, stored_body));
    assert_eq!(app.count("swarms").await, 1);
    app.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_idempotency_secret_keys_the_stored_scope() {
    let secret = dash_store::Secret::new("idempotency-secret-1");
    let key = secret.clone();
    let app = TestApp::spawn_with(move |s| s.idempotency_secret = Some(key)).await;
    let (st, _, b) = app
        .post_with(
            "/swarms",
            json!({"name": "s", "strategy": "tree"}),
            &[("Idempotency-Key", "k")],
        )
        .await;
    assert_eq!(st, 201, "{b}");
    let with_secret = dash_api::ApiSettings {
        idempotency_secret: Some(secret),
        ..Default::default()
    };
    let expected = dash_api::auth::scope_of(&with_secret, common::TOKEN);
    assert_eq!(scopes(&app).await, [format!("POST /swarms {expected}")]);
    let without = dash_api::auth::scope_of(&Default::default(), common::TOKEN);
    assert_ne!(expected, without, "the secret changes the scope");
    assert!(!expected.contains(&legacy_fingerprint(common::TOKEN)));
    app.shutdown().await;
}
