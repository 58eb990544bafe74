//! The real `dashctl` binary against real PostgreSQL and the real API: exit
//! codes and output of `dashctl db ...` and `dashctl verify`, including the
//! refusal to change anything without a terminal unless `--yes`.

mod common;

use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_and_diagnose_exit_codes() {
    let env = Env::new().await;
    let o = env.dash(&["db", "status"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("primary") && o.stdout.contains("Verdict: healthy"),
        "{}",
        o.show()
    );
    let o = env.dash(&["db", "status", "--json"]).await;
    let v: serde_json::Value = serde_json::from_str(&o.stdout).expect("JSON");
    assert_eq!(v["verdict"], "healthy");
    assert_eq!(v["nodes"][0]["role"], "primary");

    let o = env.dash(&["db", "diagnose", "--window", "200ms"]).await;
    o.expect_code(0);
    assert!(o.stdout.contains("Diagnosis: HEALTHY"), "{}", o.show());

    // Scenario 4: a session idle in transaction, named with exit 40 and the fix.
    let held = env.client().await;
    held.batch_execute("BEGIN; SELECT txid_current();")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let o = env
        .dash(&["db", "diagnose", "--idle-threshold", "1s", "--json"])
        .await;
    o.expect_code(40);
    let d: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(d["situation"], "pool_exhaustion");
    assert!(
        d["fix"]
            .to_string()
            .contains("dashctl db terminate --idle-in-transaction --older-than 1s"),
        "{d}"
    );

    let o = env.dash(&["db", "connections"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("cli-test") && o.stdout.contains("idle in transaction"),
        "{}",
        o.show()
    );
    assert!(
        !o.stdout.contains("txid_current"),
        "queries hidden by default: {}",
        o.show()
    );
    let o = env.dash(&["db", "connections", "--show-queries"]).await;
    assert!(o.stdout.contains("txid_current"), "{}", o.show());

    // No terminal, no --yes: refused with exit 4, and the session lives.
    let args = [
        "db",
        "terminate",
        "--idle-in-transaction",
        "--older-than",
        "1s",
    ];
    let o = env.dash(&args).await;
    o.expect_code(4);
    assert!(o.stderr.contains("pass --yes"), "{}", o.show());
    assert!(
        !held.is_closed(),
        "the session lives (a query would reset its age)"
    );
    let o = env.dash(&[&args[..], &["--dry-run"]].concat()).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("would end") && o.stdout.contains("nothing was ended"),
        "{}",
        o.show()
    );
    let o = env.dash(&[&args[..], &["--yes"]].concat()).await;
    o.expect_code(0);
    assert!(o.stdout.contains("ended 1 of 1"), "{}", o.show());
    assert!(
        held.simple_query("SELECT 1").await.is_err(),
        "the session was ended"
    );
    let o = env.dash(&["db", "terminate", "--older-than", "1s"]).await;
    assert_eq!(o.code, 2, "--idle-in-transaction is required: {}", o.show());

    // The database stops: status 5, diagnose 10 (no replica to promote).
    let node = env.node.node.clone();
    tokio::task::spawn_blocking(move || node.stop(dash_pg::StopMode::Fast).unwrap())
        .await
        .unwrap();
    let o = env.dash(&["db", "status"]).await;
    o.expect_code(5);
    assert!(o.stdout.contains("refused"), "{}", o.show());
    let o = env.dash(&["db", "diagnose", "--window", "300ms"]).await;
    o.expect_code(10);
    assert!(o.stdout.contains("dashctl db status"), "{}", o.show());
    let o = env.dash(&["db", "connections"]).await;
    o.expect_code(1);
    assert!(o.stderr.contains("no writable primary"), "{}", o.show());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_restore_pool_and_verify_through_the_binary() {
    let mut env = Env::new().await;
    let _app = with_app(&mut env).await;

    let o = env.dash(&["verify"]).await;
    o.expect_code(0);
    assert!(o.stdout.contains("all 7 checks passed"), "{}", o.show());

    let o = env.dash(&["db", "backup", "--keep", "3"]).await;
    o.expect_code(0);
    assert!(o.stdout.contains("public.swarms"), "{}", o.show());
    assert!(
        o.stderr.contains("pg_dump"),
        "progress on stderr: {}",
        o.show()
    );
    let latest = env.backups.path().join("latest.dump");
    assert!(latest.exists());
    let o = env.dash(&["db", "backups", "--json"]).await;
    o.expect_code(0);
    let list: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(list["backups"][0]["checksum"], "ok");
    assert_eq!(list["backups"][0]["verified"], "never");

    let o = env.dash(&["db", "verify-backup"]).await;
    o.expect_code(0);
    assert!(o.stdout.contains("VERIFIED"), "{}", o.show());

    // Restore: the API is connected, so without --stop-writes it is refused (4).
    let o = env.dash(&["db", "restore", "--yes"]).await;
    o.expect_code(4);
    assert!(o.stderr.contains("--stop-writes"), "{}", o.show());
    // With --stop-writes but no terminal and no --yes: refused (4).
    let o = env.dash(&["db", "restore", "--stop-writes"]).await;
    o.expect_code(4);
    assert!(o.stderr.contains("pass --yes"), "{}", o.show());
    let o = env.dash(&["db", "restore", "--stop-writes", "--yes"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("RESTORED AND VERIFIED") && o.stdout.contains("now lifted"),
        "{}",
        o.show()
    );
    let o = env.dash(&["db", "maintenance", "--json"]).await;
    let m: serde_json::Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(m["enabled"], false, "{}", o.show());

    // Pool: refused without --yes, changed and read back with it.
    let o = env.dash(&["db", "pool", "--size", "9"]).await;
    o.expect_code(4);
    let o = env.dash(&["db", "pool", "--size", "9", "--yes"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("pg_pool_max_size now reads 9: confirmed"),
        "{}",
        o.show()
    );

    // A corrupted dump fails verification (3) and is refused by restore (4).
    let file = std::fs::canonicalize(&latest).unwrap();
    flip_bytes(&file);
    let o = env
        .dash(&["db", "verify-backup", file.to_str().unwrap()])
        .await;
    o.expect_code(3);
    assert!(
        o.stdout.contains("mismatch") && o.stdout.contains("VERIFICATION FAILED"),
        "{}",
        o.show()
    );
    let o = env.dash(&["db", "backups"]).await;
    o.expect_code(3);
    let o = env.dash(&["db", "restore", "--stop-writes", "--yes"]).await;
    o.expect_code(4);
    assert!(o.stderr.contains("sha256"), "{}", o.show());

    // The API gone: dashctl verify fails with 3 and names each failed check.
    env.api = CLOSED.into();
    env.metrics = format!("{CLOSED}/metrics");
    let o = env.dash(&["verify"]).await;
    o.expect_code(3);
    assert!(o.stdout.contains("FAIL"), "{}", o.show());
}

#[test]
fn help_documents_exit_codes() {
    let dashctl = Runner::new(env!("CARGO_BIN_EXE_dashctl"));
    for cmd in [
        &["db", "status", "--help"][..],
        &["db", "diagnose", "--help"],
        &["db", "terminate", "--help"],
        &["db", "restore", "--help"],
        &["verify", "--help"],
    ] {
        let o = dashctl.run_blocking(cmd);
        o.expect_code(0);
        assert!(o.stdout.contains("Exit codes:"), "{}", o.show());
    }
    let o = dashctl.run_blocking(&["db", "diagnose", "--help"]);
    for code in ["10", "20", "30", "40", "dashctl db failover"] {
        assert!(o.stdout.contains(code), "{code}: {}", o.show());
    }
}
