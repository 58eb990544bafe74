//! The real `dashctl` binary against the real API and PostgreSQL: `dashctl
//! swarm ...` and `dashctl agent ...`, their tables and JSON, `agent logs`
//! (and `--follow` ending when the agent is killed), and their exit codes.

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `dashctl` pointed at `env`'s API with the test token.
fn runner(env: &Env) -> Runner {
    Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_HOME", env.home.path())
        .env("DASH_API_URL", &env.api)
        .env("DASH_API_TOKEN", TOKEN)
}

fn ids(v: &Value) -> Vec<String> {
    let items = v.as_array().expect("a JSON array");
    items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarms_and_agents_through_the_cli() {
    let mut env = Env::new().await;
    let _app = with_app(&mut env).await;
    let dash = runner(&env);

    let o = dash
        .run(&[
            "swarm",
            "create",
            "--name",
            "alpha",
            "--task",
            "index the docs",
            "--strategy",
            "map-reduce",
            "--budget",
            "10.00",
            "--max-agents",
            "5",
            "--model",
            "m1",
            "--json",
        ])
        .await;
    let alpha = o.expect_code(0).json();
    let id = alpha["id"].as_str().unwrap().to_string();
    assert_eq!(alpha["strategy"], "map-reduce", "{}", o.show());
    assert_eq!(alpha["budget"]["allocated"], 10.0);
    assert_eq!(alpha["config"]["max_agents"], 5);
    let o = dash.run(&["swarm", "create", "--name", "beta"]).await;
    assert!(o.expect_code(0).stdout.contains("beta"), "{}", o.show());

    let o = dash.run(&["swarm", "list"]).await;
    let lines: Vec<&str> = o.expect_code(0).stdout.lines().collect();
    assert!(
        lines[0].starts_with("ID") && lines[0].contains("STATUS"),
        "{}",
        o.show()
    );
    assert!(
        lines[1].starts_with(&id) && lines[1].contains("alpha"),
        "{}",
        o.show()
    );
    assert_eq!(lines.len(), 3, "{}", o.show());
    let o = dash.run(&["swarm", "list", "--json"]).await;
    assert_eq!(ids(&o.expect_code(0).json()).len(), 2);
    let o = dash.run(&["swarm", "list", "--json", "--limit", "1"]).await;
    assert_eq!(ids(&o.expect_code(0).json()), [id.as_str()]);
    let o = dash.run(&["swarm", "list", "--status", "paused"]).await;
    assert_eq!(o.expect_code(0).stdout, "no swarms\n");

    let o = dash.run(&["swarm", "show", &id]).await;
    let shown = &o.expect_code(0).stdout;
    assert!(
        shown.contains("0.00 / 10.00 USD (0%, normal)"),
        "{}",
        o.show()
    );
    assert!(
        shown.contains("index the docs") && shown.contains("agents:"),
        "{}",
        o.show()
    );

    // Two agents: one from --task, one from a task file.
    let o = dash
        .run(&[
            "agent", "spawn", "--swarm", &id, "--task", "first", "--json",
        ])
        .await;
    let first = o.expect_code(0).json()["id"].as_str().unwrap().to_string();
    let file = env.home.path().join("task.txt");
    std::fs::write(&file, "second, a long task\nover two lines").unwrap();
    let o = dash
        .run(&[
            "agent",
            "spawn",
            "--swarm",
            &id,
            "--task-file",
            file.to_str().unwrap(),
            "--max-retries",
            "1",
        ])
        .await;
    assert!(o.expect_code(0).stdout.contains("pending"), "{}", o.show());
    let o = dash.run(&["agent", "list", "--swarm", &id, "--json"]).await;
    let both = ids(&o.expect_code(0).json());
    assert_eq!(both.len(), 2, "{}", o.show());
    let second = both[1].clone();
    assert_eq!(both[0], first);

    let o = dash.run(&["agent", "kill", &first]).await;
    assert_eq!(o.expect_code(0).stdout, format!("agent {first}: killed\n"));
    let o = dash
        .run(&[
            "agent", "list", "--swarm", &id, "--status", "killed", "--json",
        ])
        .await;
    assert_eq!(ids(&o.expect_code(0).json()), [first.as_str()]);
    let o = dash.run(&["agent", "list", "--status", "pending"]).await;
    let table = &o.expect_code(0).stdout;
    assert!(
        table.contains(&second) && !table.contains(&first),
        "{}",
        o.show()
    );
    assert!(
        table.contains("second, a long task\\nover"),
        "a newline shows escaped: {}",
        o.show()
    );
    let o = dash.run(&["agent", "show", &second]).await;
    assert!(o.expect_code(0).stdout.contains("0 of 1"), "{}", o.show());
    let o = dash.run(&["swarm", "show", &id]).await;
    let shown = &o.expect_code(0).stdout;
    assert!(
        shown.contains("2 (") && shown.contains("1 killed") && shown.contains("1 pending"),
        "{}",
        o.show()
    );

    // The killed agent's log: spawned, then killed; --json is JSON lines.
    let o = dash.run(&["agent", "logs", &first]).await;
    let log: Vec<&str> = o.expect_code(0).stdout.lines().collect();
    assert_eq!(log.len(), 2, "{}", o.show());
    assert!(
        log[0].ends_with(" agent.spawned") && log[1].ends_with(" agent.killed"),
        "{}",
        o.show()
    );
    let o = dash
        .run(&["agent", "logs", &first, "--follow", "--json"])
        .await;
    let kinds: Vec<String> = (o.expect_code(0).stdout.lines())
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["kind"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        kinds,
        ["agent.spawned", "agent.killed"],
        "a finished agent's --follow ends at once"
    );

    // A second kill is refused by the state machine: exit 4, the API's code.
    let o = dash.run(&["agent", "kill", &first]).await;
    assert!(
        o.expect_code(4)
            .stderr
            .starts_with("dashctl: invalid_transition: "),
        "{}",
        o.show()
    );

    // The swarm's lifecycle; destroy asks, so without a terminal it needs --yes.
    let o = dash.run(&["swarm", "pause", &id]).await;
    assert_eq!(o.expect_code(0).stdout, format!("swarm {id}: paused\n"));
    dash.run(&["swarm", "pause", &id]).await.expect_code(4);
    let o = dash.run(&["swarm", "resume", &id, "--json"]).await;
    assert_eq!(o.expect_code(0).json()["status"], "active");
    let o = dash.run(&["swarm", "destroy", &id]).await;
    assert!(o.expect_code(4).stderr.contains("--yes"), "{}", o.show());
    let o = dash.run(&["swarm", "destroy", &id, "--yes"]).await;
    assert_eq!(o.expect_code(0).stdout, format!("swarm {id}: destroyed\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_follow_until_the_agent_is_killed_and_print_output_as_data() {
    let mut env = Env::new().await;
    let app = with_app(&mut env).await;
    let dash = runner(&env);
    let swarm = app
        .swarm(json!({"name": "s", "strategy": "parallel"}))
        .await;
    let agent = app
        .agent(json!({"swarm_id": swarm["id"], "task": "t"}))
        .await;
    let id = agent["id"].as_str().unwrap().to_string();

    let follow = {
        let (dash, id) = (dash.clone(), id.clone());
        tokio::spawn(async move { dash.run(&["agent", "logs", &id, "--follow"]).await })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !follow.is_finished(),
        "--follow waits while the agent is pending"
    );

    // Output lines as the worker writes them, one hostile.
    let db = env.client().await;
    let insert = "INSERT INTO events (kind, swarm_id, agent_id, data)
                  VALUES ('agent.output', $1::text::uuid, $2::text::uuid, $3::text::jsonb)";
    let swarm_id = swarm["id"].as_str().unwrap();
    for data in [
        json!({"stream": "stdout", "lines": ["\u{1b}[31mred", "plain"]}),
        json!({"stream": "stderr", "lines": ["a warning"]}),
    ] {
        db.execute(insert, &[&swarm_id, &id, &data.to_string()])
            .await
            .unwrap();
    }
    let (status, _) = app.act(&format!("/agents/{id}/kill")).await;
    assert_eq!(status, 200);

    let o = tokio::time::timeout(Duration::from_secs(30), follow)
        .await
        .expect("--follow ends once the agent is killed")
        .unwrap();
    let lines: Vec<&str> = o.expect_code(0).stdout.lines().collect();
    assert!(lines[0].ends_with(" agent.spawned"), "{}", o.show());
    assert_eq!(lines[1..3], ["\\x1b[31mred", "plain"], "{}", o.show());
    assert!(lines[3].ends_with(" agent.killed"), "{}", o.show());
    assert_eq!(lines.len(), 4, "{}", o.show());
    assert!(
        !o.stdout.contains('\u{1b}'),
        "no raw escape reaches the terminal"
    );
    assert_eq!(o.stderr, "a warning\n", "{}", o.show());

    // Ctrl-C while following a pending agent: exit 130, no error printed.
    let pending = app
        .agent(json!({"swarm_id": swarm["id"], "task": "waits"}))
        .await;
    let child = std::process::Command::new(env!("CARGO_BIN_EXE_dashctl"))
        .args(["agent", "logs", pending["id"].as_str().unwrap(), "--follow"])
        .env_clear()
        .env("DASH_HOME", env.home.path())
        .env("DASH_API_URL", &env.api)
        .env("DASH_API_TOKEN", TOKEN)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGINT).unwrap();
    let done = tokio::task::spawn_blocking(move || child.wait_with_output());
    let done = tokio::time::timeout(Duration::from_secs(30), done).await;
    let done = done.expect("Ctrl-C ends --follow").unwrap().unwrap();
    assert_eq!(done.status.code(), Some(130), "{done:?}");
    assert!(done.stderr.is_empty(), "{done:?}");

    // --json keeps the API's values as they are (JSON-escaped).
    let o = dash.run(&["agent", "logs", &id, "--json"]).await;
    let output: Vec<Value> = (o.expect_code(0).stdout.lines())
        .map(|l| serde_json::from_str(l).unwrap())
        .filter(|e: &Value| e["kind"] == "agent.output")
        .collect();
    assert_eq!(output[0]["data"]["lines"][0], "\u{1b}[31mred");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_name_the_cause_and_exit_codes_follow_it() {
    let mut env = Env::new().await;
    let _app = with_app(&mut env).await;
    let dash = runner(&env);
    let nobody = "00000000-0000-4000-8000-000000000000";

    let o = dash.run(&["swarm", "show", nobody]).await;
    assert!(
        o.expect_code(3).stderr.starts_with("dashctl: not_found: "),
        "{}",
        o.show()
    );
    dash.run(&["agent", "logs", nobody]).await.expect_code(3);
    dash.run(&["agent", "kill", nobody]).await.expect_code(3);

    // Usage: a bad strategy (clap), an invalid request (the API), a bad id.
    dash.run(&["swarm", "create", "--name", "x", "--strategy", "star"])
        .await
        .expect_code(2);
    let o = dash
        .run(&["swarm", "create", "--name", "x", "--max-agents", "0"])
        .await;
    assert!(
        o.expect_code(2).stderr.contains("max_agents"),
        "{}",
        o.show()
    );
    dash.run(&["agent", "show", "not-a-uuid"])
        .await
        .expect_code(2);

    // No token: says how to pass one. A wrong one: says it was refused.
    let bare = Runner::new(env!("CARGO_BIN_EXE_dashctl"))
        .env("DASH_HOME", env.home.path())
        .env("DASH_API_URL", &env.api);
    let o = bare.run(&["swarm", "create", "--name", "x"]).await;
    assert!(
        o.expect_code(2).stderr.contains("DASH_API_TOKEN"),
        "{}",
        o.show()
    );
    let o = bare
        .run(&["swarm", "create", "--name", "x", "--token", "wrong"])
        .await;
    assert!(
        o.expect_code(2).stderr.contains("did not accept"),
        "{}",
        o.show()
    );

    // Nothing listening: where it looked, and how to point it elsewhere.
    let o = dash
        .env("DASH_API_URL", CLOSED)
        .run(&["agent", "list"])
        .await;
    let err = &o.expect_code(1).stderr;
    assert!(
        err.contains("127.0.0.1:9") && err.contains("DASH_API_URL") && err.contains("DASH_HOME"),
        "{}",
        o.show()
    );
}
