//! The runbook's raw restore line run into the live database rewinds the
//! events sequence: `dashctl verify` catches it, `dashctl db diagnose` names
//! it with the SQL that fixes it, and `dashctl db restore` of a dump that
//! carries the rewound value leaves every sequence past its column.

mod common;

use common::*;

async fn create_swarm(app: &TestApi, name: &str) -> u16 {
    let body = serde_json::json!({ "name": name, "strategy": "parallel" });
    app.post("/swarms", body).await.0
}

/// `pg_restore -d DB latest.dump`, as the runbook writes it, into the live
/// database: it fails on the CREATEs and still runs the dump's setvals.
async fn raw_pg_restore(env: &Env) {
    let dump = env.backups.path().join("latest.dump");
    let out = tokio::process::Command::new(dash_runbook::tools::tool("pg_restore"))
        .arg("--dbname")
        .arg(env.node.url(&env.db))
        .arg(dump)
        .output()
        .await
        .expect("run pg_restore");
    assert!(!out.status.success(), "the CREATEs fail on a live database");
}

async fn diagnose(env: &Env) -> (i32, serde_json::Value) {
    let o = env
        .dash(&["db", "diagnose", "--window", "200ms", "--json"])
        .await;
    (o.code, serde_json::from_str(&o.stdout).expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewound_sequence_is_named_fixed_and_never_restored() {
    let mut env = Env::new().await;
    let app = with_app(&mut env).await;
    for i in 0..3 {
        assert_eq!(create_swarm(&app, &format!("a{i}")).await, 201);
    }
    env.dash(&["db", "backup"]).await.expect_code(0);
    for i in 0..3 {
        assert_eq!(create_swarm(&app, &format!("b{i}")).await, 201);
    }
    raw_pg_restore(&env).await;
    assert_eq!(create_swarm(&app, "dup").await, 500, "the sequence rewound");

    // dashctl verify catches it; diagnose names it and the SQL that fixes it.
    let o = env.dash(&["verify"]).await;
    o.expect_code(3);
    let (code, d) = diagnose(&env).await;
    assert_eq!(code, 20, "{d:#}");
    let evidence = d["evidence"].to_string();
    assert!(evidence.contains("public.events_id_seq"), "{d:#}");
    let fix = d["fix"][0].as_str().unwrap().to_string();
    assert!(
        fix.starts_with("dashctl psql -- -c \"SELECT setval("),
        "{fix}"
    );

    // A backup now carries the rewound value.
    env.dash(&["db", "backup"]).await.expect_code(0);

    // The printed fix, run as printed (through dashctl psql).
    let sql = fix
        .trim_start_matches("dashctl psql -- -c \"")
        .trim_end_matches('"');
    env.dash(&["psql", "--", "-c", sql]).await.expect_code(0);
    assert_eq!(diagnose(&env).await.0, 0);
    assert_eq!(create_swarm(&app, "after-fix").await, 201);
    env.dash(&["verify"]).await.expect_code(0);

    // Restoring the dump with the rewound value: the sequence is moved past
    // its column, and the check says so.
    let o = env.dash(&["db", "restore", "--stop-writes", "--yes"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("sequences: ok")
            && o.stdout.contains("public.events_id_seq was at")
            && o.stdout.contains("RESTORED AND VERIFIED"),
        "{}",
        o.show()
    );
    assert_eq!(create_swarm(&app, "after-restore").await, 201);
    assert_eq!(diagnose(&env).await.0, 0);
}
