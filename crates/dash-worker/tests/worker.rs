//! The worker against a real PostgreSQL and the real API: runtimes run to
//! completion with their output and usage recorded, a kill reaches a
//! running runtime, a budget stops the swarm within one step, a failed
//! attempt is retried, the caps hold across two workers, and a dead
//! worker's agent is reclaimed and run again. Runtimes are small `sh`
//! scripts written by the test (the task reaches them on stdin only).

use std::sync::Arc;
use std::time::{Duration, Instant};

use dash_store::repo::agents::lease::Caps;
use dash_testkit::TestApp;
use dash_worker::{RunEnd, Worker, WorkerReport, WorkerSettings};
use serde_json::{json, Value};
use tokio::sync::oneshot;

fn settings(app: &TestApp, name: &str, script: &str) -> WorkerSettings {
    WorkerSettings {
        name: name.into(),
        runtime: vec!["/bin/sh".into(), "-c".into(), script.into()],
        guard: None,
        slots: 4,
        lease: Duration::from_secs(3),
        heartbeat: Duration::from_millis(500),
        poll: Duration::from_millis(200),
        caps: Caps {
            global: 100,
            per_swarm: 100,
        },
        drain: Duration::from_secs(5),
        metrics_port: 0,
        database: app.db_settings(),
    }
}

/// A worker on its own task; stopping it returns its report.
struct Running {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<WorkerReport>,
}

impl Running {
    async fn start(s: WorkerSettings) -> Running {
        let w = Worker::new(s).unwrap();
        w.migrate(Duration::from_secs(10)).await.unwrap();
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(w.run_until_stopped(async {
            let _ = rx.await;
        }));
        Running {
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) -> WorkerReport {
        let _ = self.stop.take().unwrap().send(());
        (&mut self.task).await.unwrap()
    }
}

async fn swarm(app: &TestApp, budget: f64) -> String {
    let s = app
        .swarm(
            json!({"name": "s", "strategy": "parallel", "config": {"max_agents": 50},
                      "budget": {"allocated": budget}}),
        )
        .await;
    s["id"].as_str().unwrap().to_string()
}

async fn spawn(app: &TestApp, swarm: &str, task: &str) -> String {
    let a = app
        .agent(json!({"swarm_id": swarm, "task": task, "max_retries": 2}))
        .await;
    a["id"].as_str().unwrap().to_string()
}

/// Polls the agent until `ok`, or panics after `limit`.
async fn wait_agent(
    app: &TestApp,
    id: &str,
    limit: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + limit;
    loop {
        let (_, a) = app.get(&format!("/agents/{id}")).await;
        if ok(&a) {
            return a;
        }
        assert!(
            Instant::now() < deadline,
            "agent not as expected within {limit:?}: {a}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn agent_events(app: &TestApp, id: &str) -> Vec<Value> {
    let (_, page) = app.get(&format!("/events?agent_id={id}&limit=500")).await;
    page["items"].as_array().cloned().unwrap_or_default()
}

const STEPS: &str = r#"
read -r task
echo "working on: $task"
echo "attempt $DASH_AGENT_ATTEMPT budget $DASH_BUDGET_REMAINING" >&2
i=1
while [ $i -le 3 ]; do
  echo "{\"dash\":\"usage\",\"message_id\":\"a$DASH_AGENT_ATTEMPT-$i\",\"tokens\":10,\"cost\":0.5,\"progress\":0.$i}"
  i=$((i+1))
done
echo '{"dash":"result","result":{"answer":42}}'
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_runtime_runs_to_completion_with_its_output_usage_and_result() {
    let app = TestApp::spawn().await;
    let s = swarm(&app, 0.0).await;
    let id = spawn(&app, &s, "say $(hostname) `id` ; rm -rf /").await;
    let w = Running::start(settings(&app, "w1", STEPS)).await;
    let done = wait_agent(&app, &id, Duration::from_secs(30), |a| {
        a["status"] == "completed"
    })
    .await;
    let report = w.stop().await;
    assert_eq!(report.claimed, 1);
    assert_eq!(report.ends, [RunEnd::Completed]);
    assert!(
        (done["cost"].as_f64().unwrap() - 1.5).abs() < 1e-9,
        "{done}"
    );
    assert_eq!(done["metadata"]["result"]["answer"], 42, "{done}");
    let events = agent_events(&app, &id).await;
    let out: Vec<String> = (events.iter())
        .filter(|e| e["kind"] == "agent.output")
        .flat_map(|e| e["data"]["lines"].as_array().cloned().unwrap_or_default())
        .map(|l| l.as_str().unwrap_or_default().to_string())
        .collect();
    // The task arrived as data, never as shell text.
    assert!(
        out.contains(&"working on: say $(hostname) `id` ; rm -rf /".to_string()),
        "{out:?}"
    );
    assert!(
        out.iter().any(|l| l == "attempt 1 budget unlimited"),
        "{out:?}"
    );
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    assert_eq!(
        kinds.iter().filter(|k| **k == "agent.completed").count(),
        1,
        "{kinds:?}"
    );
    assert_eq!(
        kinds.iter().filter(|k| **k == "agent.cost").count(),
        3,
        "{kinds:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kill_stops_the_runtime_and_a_failed_attempt_is_retried() {
    let app = TestApp::spawn().await;
    let s = swarm(&app, 0.0).await;
    let sleeper = spawn(&app, &s, "sleep").await;
    let w = Running::start(settings(
        &app,
        "w1",
        r#"read -r t; if [ "$t" = sleep ]; then exec sleep 60; fi
           if [ "$DASH_AGENT_ATTEMPT" = 1 ]; then echo "flaky" >&2; exit 3; fi; echo fine"#,
    ))
    .await;
    wait_agent(&app, &sleeper, Duration::from_secs(30), |a| {
        a["status"] == "running"
    })
    .await;
    let killed_at = Instant::now();
    let (st, _) = app.act(&format!("/agents/{sleeper}/kill")).await;
    assert_eq!(st, 200);
    let flaky = spawn(&app, &s, "flaky").await;
    let done = wait_agent(&app, &flaky, Duration::from_secs(30), |a| {
        a["status"] == "completed"
    })
    .await;
    assert_eq!(done["retry_count"], 1, "{done}");
    assert!(
        done["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("flaky"),
        "{done}"
    );
    let report = w.stop().await;
    let lost = report
        .ends
        .iter()
        .filter(|e| matches!(e, RunEnd::Lost(w) if w.contains("killed")))
        .count();
    assert_eq!(lost, 1, "{:?}", report.ends);
    eprintln!(
        "kill reached the runtime within {:?} (heartbeat 500 ms)",
        killed_at.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spent_budget_stops_the_swarm_within_one_step_per_agent() {
    let app = TestApp::spawn().await;
    let s = swarm(&app, 1.0).await;
    let script = r#"read -r t; i=1
        while [ $i -le 50 ]; do sleep 0.1
          echo "{\"dash\":\"usage\",\"message_id\":\"a$DASH_AGENT_ATTEMPT-$i\",\"cost\":0.1}"
          i=$((i+1)); done"#;
    let ids = [spawn(&app, &s, "a").await, spawn(&app, &s, "b").await];
    let w = Running::start(settings(&app, "w1", script)).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let sw = loop {
        let (_, sw) = app.get(&format!("/swarms/{s}")).await;
        let settled = sw["status"] == "paused" && {
            let (_, list) = app
                .get(&format!("/agents?swarm_id={s}&status=running"))
                .await;
            list["items"].as_array().is_some_and(|a| a.is_empty())
        };
        if settled {
            break sw;
        }
        assert!(Instant::now() < deadline, "not stopped: {sw}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let report = w.stop().await;
    let consumed = sw["budget"]["consumed"].as_f64().unwrap();
    // Two agents ran: each may overshoot by at most one step (0.1).
    assert!(
        (1.0..=1.0 + 2.0 * 0.1 + 1e-9).contains(&consumed),
        "consumed {consumed}"
    );
    for id in ids {
        let (_, a) = app.get(&format!("/agents/{id}")).await;
        assert_eq!(a["status"], "pending", "handed back, not failed: {a}");
    }
    assert!(
        report.ends.iter().all(|e| matches!(e, RunEnd::Yielded(_))),
        "{:?}",
        report.ends
    );
    eprintln!("budget 1.00, consumed {consumed:.2} with two agents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_keep_the_cap_and_a_dead_workers_agent_is_reclaimed() {
    let app = TestApp::spawn().await;
    let s = swarm(&app, 0.0).await;
    let mut ids = Vec::new();
    for i in 0..10 {
        ids.push(spawn(&app, &s, &format!("job{i}")).await);
    }
    let script = "read -r t; sleep 0.3; echo done $t";
    let mut a = settings(&app, "wa", script);
    let mut b = settings(&app, "wb", script);
    a.caps.global = 4;
    b.caps.global = 4;
    let (wa, wb) = (Running::start(a).await, Running::start(b).await);
    let pg = Arc::new(app.pg().await);
    let mut most = 0i64;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let row = pg
            .query_one(
                "SELECT count(*) FILTER (WHERE status = 'running'), count(*) FILTER (WHERE status = 'completed') FROM agents",
                &[],
            )
            .await
            .unwrap();
        let (running, done): (i64, i64) = (row.get(0), row.get(1));
        most = most.max(running);
        if done == 10 {
            break;
        }
        assert!(Instant::now() < deadline, "only {done} of 10 completed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ra, rb) = (wa.stop().await, wb.stop().await);
    assert!(most <= 4, "{most} running at once, past the cap of 4");
    assert_eq!(ra.claimed + rb.claimed, 10, "each agent claimed once");
    eprintln!(
        "two workers: at most {most} running (cap 4); claims {} + {}",
        ra.claimed, rb.claimed
    );

    // A worker that dies mid-run: its runtime dies with it, its lease
    // expires, and another worker runs the agent again (attempt 2).
    let job = spawn(&app, &s, "long").await;
    let dead = Running::start(settings(&app, "dying", "read -r t; exec sleep 60")).await;
    wait_agent(&app, &job, Duration::from_secs(30), |a| {
        a["status"] == "running"
    })
    .await;
    dead.task.abort(); // the worker process dying, as far as the database can tell
    let rescuer = Running::start(settings(&app, "rescuer", "read -r t; echo rescued")).await;
    let started = Instant::now();
    let done = wait_agent(&app, &job, Duration::from_secs(40), |a| {
        a["status"] == "completed"
    })
    .await;
    let _ = rescuer.stop().await;
    assert_eq!(done["retry_count"], 1, "{done}");
    assert!(
        done["last_error"]
            .as_str()
            .unwrap_or_default()
            .contains("dying"),
        "{done}"
    );
    eprintln!(
        "reclaimed and completed {:?} after the worker died (lease 3 s)",
        started.elapsed()
    );
}
