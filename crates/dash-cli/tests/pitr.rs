//! Point-in-time recovery as a user runs it beside `dashctl up`: the
//! platform keeps a pgBackRest repository (a first full backup, WAL from
//! every node), `db backup --type` copies from the standby, `db backups`
//! shows the window, `db verify-backup` restores into a throwaway instance
//! and records it (the agents export when), and `db restore` brings the
//! whole cluster back to just before an event and to an LSN, each time
//! keeping what came before and dropping what came after, with the
//! replica re-cloned and the API writing again. Bad points are refused
//! before anything changes. (`--to TIME` under write load, with a failover
//! between backup and incident, is `dashctl chaos pitr`: tests/chaos.rs.)

mod common;

use std::time::Duration;

use common::up::{eventually, temp_home, Up};
use dash_testkit::Runner;
use serde_json::json;

async fn create(http: &reqwest::Client, up: &Up, token: &str, name: &str) {
    let r = (http.post(up.api("/swarms")).bearer_auth(token))
        .json(&json!({"name": name, "strategy": "parallel"}))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status().as_u16(),
        201,
        "create {name}: {:?}",
        r.text().await
    );
}

/// One value from the primary (`dashctl psql -- -At -c SQL`).
async fn sql(cli: &Runner, q: &str) -> String {
    let o = cli.run(&["psql", "--", "-At", "-c", q]).await;
    o.expect_code(0);
    o.stdout.trim().to_string()
}

async fn swarms(cli: &Runner) -> String {
    sql(
        cli,
        "SELECT coalesce(string_agg(name, ',' ORDER BY name), '') FROM swarms",
    )
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cluster_is_restored_to_a_point_with_pgbackrest_and_keeps_only_what_came_before() {
    let (_dir, home, cli) = temp_home();

    // Without a repository or etcd: usage errors that say what is missing.
    let none = cli
        .run(&["db", "restore", "--to", "2026-11-30T12:00:00Z", "--yes"])
        .await;
    none.expect_code(2);
    assert!(none.stderr.contains("pgBackRest"), "{}", none.show());
    cli.run(&["db", "restore", "--to", "yesterday"])
        .await
        .expect_code(2);

    let (api_port, metrics_port) = (dash_pg::free_port(), dash_pg::free_port());
    let mut up = Up::start(&home, Vec::new(), api_port, metrics_port);
    up.wait_up(Duration::from_secs(180));
    assert!(up.output().contains("first full backup"), "{}", up.output());
    let topo = up.topo();
    let token = topo.api_token.expose().to_string();
    let http = reqwest::Client::new();

    // The first full backup and a window.
    let listed = cli.run(&["db", "backups", "--json"]).await;
    listed.expect_code(0);
    let b = listed.json();
    assert_eq!(
        b["pgbackrest"]["backups"][0]["ty"],
        "full",
        "{}",
        listed.show()
    );
    assert!(
        b["pgbackrest"]["window"]["earliest"].is_string(),
        "{}",
        listed.show()
    );

    // A differential backup, copied from the streaming standby.
    let diff = cli.run(&["db", "backup", "--type", "diff", "--json"]).await;
    diff.expect_code(0);
    let d = diff.json();
    assert_eq!(d["type"], "diff", "{}", diff.show());
    assert!(
        d["standby"].is_string(),
        "not copied from the standby: {}",
        diff.show()
    );

    // Verified in a throwaway instance, recorded, exported by the agents.
    let verified = cli.run(&["db", "verify-backup", "--json"]).await;
    verified.expect_code(0);
    assert_eq!(verified.json()["ok"], true, "{}", verified.show());
    let listed = cli.run(&["db", "backups", "--json"]).await.json();
    assert_eq!(listed["pgbackrest"]["last_verification"]["ok"], true);
    let metrics = format!("http://127.0.0.1:{}/metrics", topo.nodes[0].node_port);
    eventually(
        Duration::from_secs(20),
        "the agent exports archiving and the verification",
        || async {
            let text = http.get(&metrics).send().await.ok()?.text().await.ok()?;
            let line = text
                .lines()
                .find(|l| l.starts_with("dash_node_backup_last_verified_timestamp_seconds "))?;
            let enabled = text.lines().any(|l| l == "dash_node_archive_enabled 1");
            (enabled && !line.ends_with(" 0.0")).then_some(())
        },
    )
    .await;

    // The node API's POST /backup: only the key-holding primary takes one.
    let leader = sql(&cli, "SELECT current_setting('cluster_name')").await;
    let port_of = |name: &str| {
        topo.nodes
            .iter()
            .find(|n| n.name == name)
            .unwrap()
            .node_port
    };
    let other = topo
        .nodes
        .iter()
        .find(|n| n.name != leader)
        .unwrap()
        .name
        .clone();
    let node_token = topo.node_token();
    let post = |name: &str, ty: &str, token: &str| {
        let url = format!("http://127.0.0.1:{}/backup?type={ty}", port_of(name));
        let http = http.clone();
        let token = token.to_string();
        async move {
            let r = http
                .post(url)
                .bearer_auth(token)
                .timeout(Duration::from_secs(120))
                .send()
                .await
                .unwrap();
            (
                r.status().as_u16(),
                r.json::<serde_json::Value>().await.unwrap_or_default(),
            )
        }
    };
    let (code, body) = post(&leader, "incr", "not-the-token").await;
    assert_eq!(code, 401, "a backup without the agents' token: {body}");
    let (code, body) = post(&leader, "incr", &node_token).await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body["type"], "incr", "{body}");
    assert!(
        body["label"].as_str().is_some_and(|l| l.ends_with('I')),
        "{body}"
    );
    let (code, body) = post(&other, "incr", &node_token).await;
    assert_eq!(code, 409, "a standby took a backup: {body}");
    let (code, body) = post(&leader, "everything", &node_token).await;
    assert_eq!(code, 400, "{body}");

    // `dashctl db backup` where no data directory is (the Kubernetes job):
    // the primary's agent takes it, given DASH_NODE_TOKEN.
    let remote = |token: &str| {
        dash_testkit::Runner::new(env!("CARGO_BIN_EXE_dashctl"))
            .env("DASH_HOME", home.with_file_name("no-platform-here"))
            .env("DASH_LOG", "error")
            .env(
                "DASH_PGBACKREST_CONFIG",
                dash_platform::backrest_config(&home),
            )
            .env("DASH_ETCD_ENDPOINTS", topo.etcd_endpoints().join(","))
            .env("DASH_CLUSTER", &topo.cluster)
            .env("DASH_NODE_TOKEN", token)
    };
    let args = ["db", "backup", "--type", "incr", "--json"];
    let missing = remote("").run(&args).await;
    missing.expect_code(2);
    assert!(
        missing.stderr.contains("DASH_NODE_TOKEN"),
        "{}",
        missing.show()
    );
    let wrong = remote("not-the-token").run(&args).await;
    assert_ne!(wrong.code, 0, "{}", wrong.show());
    assert!(wrong.stderr.contains("401"), "{}", wrong.show());
    let by_agent = remote(&node_token).run(&args).await;
    by_agent.expect_code(0);
    let b = by_agent.json();
    assert_eq!(b["primary"], leader.as_str(), "{}", by_agent.show());
    assert_eq!(b["type"], "incr", "{}", by_agent.show());
    assert!(
        (b["notes"].to_string()).contains("node agent"),
        "{}",
        by_agent.show()
    );

    // A new full backup keeping only itself: the older chain is expired,
    // and the window starts at it.
    let full = cli
        .run(&[
            "db",
            "backup",
            "--type",
            "full",
            "--keep-full",
            "1",
            "--json",
        ])
        .await;
    full.expect_code(0);
    let listed = cli.run(&["db", "backups", "--json"]).await.json();
    let labels: Vec<&str> = (listed["pgbackrest"]["backups"].as_array().unwrap().iter())
        .map(|b| b["label"].as_str().unwrap())
        .collect();
    assert_eq!(
        labels,
        [full.json()["label"].as_str().unwrap()],
        "{}",
        full.show()
    );
    cli.run(&["db", "backup", "--keep-full", "0"])
        .await
        .expect_code(2);

    // --before-event: "keep" stays, "doomed" (whose creation is the event) goes.
    create(&http, &up, &token, "keep").await;
    create(&http, &up, &token, "doomed").await;
    let event = sql(&cli, "SELECT e.id FROM events e JOIN swarms s ON s.id = e.swarm_id WHERE s.name = 'doomed' ORDER BY e.id LIMIT 1").await;
    create(&http, &up, &token, "later").await;
    // A point before every backup is refused, and nothing changes.
    let early = cli
        .run(&["db", "restore", "--to", "2000-01-01T00:00:00Z", "--yes"])
        .await;
    early.expect_code(4);
    assert!(
        early.stderr.contains("before the oldest backup"),
        "{}",
        early.show()
    );
    let dry = cli
        .run(&["db", "restore", "--before-event", &event, "--dry-run"])
        .await;
    dry.expect_code(0);
    assert!(
        dry.stdout.contains("DRY RUN") && dry.stdout.contains("halt"),
        "{}",
        dry.show()
    );
    assert_eq!(swarms(&cli).await, "doomed,keep,later");
    let restored = cli
        .run(&["db", "restore", "--before-event", &event, "--yes", "--json"])
        .await;
    restored.expect_code(0);
    let r = restored.json();
    assert_eq!(r["ok"], true, "{}", restored.show());
    assert_eq!(swarms(&cli).await, "keep", "{}", restored.show());

    // Both nodes run again on the new timeline, the replica streaming from
    // the primary, and the API writes.
    let tl: u32 = sql(&cli, "SELECT timeline_id FROM pg_control_checkpoint()")
        .await
        .parse()
        .unwrap_or(0);
    assert!(
        r["timeline"].as_u64().unwrap_or(0) >= 2,
        "{}",
        restored.show()
    );
    let streaming = sql(
        &cli,
        "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'",
    )
    .await;
    assert_eq!(streaming, "1", "timeline {tl}");
    create(&http, &up, &token, "after-restore").await;

    // --to-lsn: what was committed up to the LSN stays.
    let lsn = sql(&cli, "SELECT pg_current_wal_insert_lsn()").await;
    create(&http, &up, &token, "gone-too").await;
    let by_lsn = cli
        .run(&["db", "restore", "--to-lsn", &lsn, "--yes", "--json"])
        .await;
    by_lsn.expect_code(0);
    assert_eq!(
        swarms(&cli).await,
        "after-restore,keep",
        "{}",
        by_lsn.show()
    );

    // A member whose agent is down would miss the halt: refused, nothing
    // changed. The replica (`other`: each restore put the restored data on
    // the leader's node) has the next swarm, then it freezes, agent and
    // server (SIGSTOP), as a host that hangs.
    let replica = other.clone();
    let lsn = sql(&cli, "SELECT pg_current_wal_insert_lsn()").await;
    create(&http, &up, &token, "on-the-frozen-replica").await;
    let data_dir = &(topo.nodes.iter().find(|n| n.name == replica).unwrap()).data_dir;
    let mut frozen = dash_pg::data_dir_pids(data_dir);
    frozen.push(up.agent_pid(&replica).expect("the replica's agent runs"));
    let frozen = Frozen(frozen);
    frozen.signal(nix::sys::signal::Signal::SIGSTOP);
    let dcs = dash_dcs::Dcs::connect(
        &topo.etcd_endpoints(),
        &topo.cluster,
        Duration::from_secs(2),
    )
    .await
    .unwrap();
    eventually(
        Duration::from_secs(30),
        "the replica's member record expires",
        || async {
            let view = dcs.view().await.ok()?;
            view.member(&replica).is_none().then_some(())
        },
    )
    .await;
    let refused = cli.run(&["db", "restore", "--to-lsn", &lsn, "--yes"]).await;
    refused.expect_code(4);
    assert!(
        refused.stderr.contains("--allow-missing"),
        "{}",
        refused.show()
    );
    assert_eq!(
        swarms(&cli).await,
        "after-restore,keep,on-the-frozen-replica"
    );

    // --allow-missing: the restore goes on without it. Thawed, its server
    // holds WAL past the point, so it cannot follow the restored primary;
    // its agent sees it stuck behind the leader's timeline and rewinds it.
    let restored = cli
        .run(&[
            "db",
            "restore",
            "--to-lsn",
            &lsn,
            "--allow-missing",
            "--yes",
            "--json",
        ])
        .await;
    restored.expect_code(0);
    assert_eq!(
        swarms(&cli).await,
        "after-restore,keep",
        "{}",
        restored.show()
    );
    let timeline = restored.json()["timeline"]
        .as_u64()
        .expect("the new timeline");
    drop(frozen);
    let api = format!("http://127.0.0.1:{}/status", port_of(&replica));
    eventually(
        Duration::from_secs(120),
        "the thawed replica streams from the restored primary",
        || async {
            let st: dash_node::Status = http.get(&api).send().await.ok()?.json().await.ok()?;
            (st.streaming && st.timeline == Some(timeline as u32)).then_some(())
        },
    )
    .await;
    // A synchronous commit: the healed replica acknowledges it.
    create(&http, &up, &token, "after-the-thaw").await;
    let (code, _) = up.interrupt();
    assert_eq!(code, 0, "{}", up.output());
}

/// Processes stopped with SIGSTOP; continued when dropped (a failed test
/// too, so that they can be stopped by the platform's teardown).
struct Frozen(Vec<i32>);

impl Frozen {
    fn signal(&self, sig: nix::sys::signal::Signal) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(*pid), sig);
        }
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        self.signal(nix::sys::signal::Signal::SIGCONT);
    }
}
