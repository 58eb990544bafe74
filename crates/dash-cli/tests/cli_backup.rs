//! Scenario 2 through the real `dashctl` binary as a user meets it: where
//! backups go without configuration, and restore verdicts that say what was
//! and was not checked.

mod common;

use std::path::Path;

use common::*;

/// Backs up `env` and returns the dump `latest.dump` points at.
async fn backup(env: &Env) -> std::path::PathBuf {
    let o = env.dash(&["db", "backup"]).await;
    o.expect_code(0);
    std::fs::canonicalize(env.backups.path().join("latest.dump")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn backups_go_beside_dash_home_and_the_error_says_how_to_choose() {
    let mut env = Env::new().await;
    env.backup_dir_env = false;
    assert!(
        !Path::new("/backups/dash/postgres").exists(),
        "this test needs a machine without the Kubernetes backup mount"
    );
    // Neither a platform nor the mounted default: exit 2, naming the choices.
    let o = env.dash(&["db", "backups"]).await;
    o.expect_code(2);
    assert!(
        o.stderr.contains("--dir") && o.stderr.contains("DASH_BACKUP_DIR"),
        "{}",
        o.show()
    );
    let o = env.dash(&["db", "backup"]).await;
    o.expect_code(2);

    // Beside `dashctl up` (its cluster.json exists): $DASH_HOME/backups.
    std::fs::write(env.home.path().join("cluster.json"), "{}").unwrap();
    let o = env.dash(&["db", "backup"]).await;
    o.expect_code(0);
    let dir = env.home.path().join("backups");
    assert!(dir.join("latest.dump").exists(), "{}", o.show());
    let o = env.dash(&["db", "backups"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains(&dir.display().to_string()),
        "{}",
        o.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_without_manifest_or_checksum_says_what_it_could_not_check() {
    let env = Env::new().await;
    (env.client().await)
        .batch_execute(
            "CREATE TABLE notes (id serial PRIMARY KEY, body text);
             INSERT INTO notes (body) SELECT 'n' || i FROM generate_series(1, 5) i;",
        )
        .await
        .unwrap();
    let dump = backup(&env).await;
    std::fs::remove_file(dash_runbook::manifest::manifest_path(&dump)).unwrap();

    let o = env.dash(&["db", "restore", "--yes"]).await;
    o.expect_code(3);
    assert!(
        !o.stdout.contains("MISMATCH") && !o.stdout.contains("RESTORED AND VERIFIED"),
        "{}",
        o.show()
    );
    assert!(
        o.stdout.contains("no manifest") && o.stdout.contains("row counts: not checked"),
        "{}",
        o.show()
    );
    assert!(o.stdout.contains("RESTORED, NOT VERIFIED"), "{}", o.show());
    let o = env.dash(&["db", "restore", "--yes", "--json"]).await;
    o.expect_code(3);
    assert_eq!(o.json()["verdict"], "not_verified", "{}", o.show());

    // The checksum file gone too: that is said as well.
    std::fs::remove_file(dash_runbook::manifest::checksum_path(&dump)).unwrap();
    let o = env.dash(&["db", "restore", "--yes"]).await;
    o.expect_code(3);
    assert!(
        o.stdout.contains("checksum: not checked") && o.stdout.contains(".sha256"),
        "{}",
        o.show()
    );

    // verify-backup records the counts, so the next restore can check them.
    let o = env.dash(&["db", "verify-backup"]).await;
    o.expect_code(0);
    assert!(!o.stdout.contains("MISMATCH"), "{}", o.show());

    // A dump Dash made, with both files: verified, exit 0.
    let dump = backup(&env).await;
    let o = env
        .dash(&["db", "restore", "--yes", dump.to_str().unwrap()])
        .await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("RESTORED AND VERIFIED") && o.stdout.contains("public.notes"),
        "{}",
        o.show()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_backup_needs_no_privilege_on_the_server() {
    let mut env = Env::new().await;
    let su = env.client().await;
    su.batch_execute(&format!(
        "CREATE ROLE app_user LOGIN PASSWORD 'app-pw' NOCREATEDB;
         GRANT ALL ON DATABASE \"{db}\" TO app_user;
         GRANT ALL ON SCHEMA public TO app_user;",
        db = env.db
    ))
    .await
    .unwrap();
    env.url = Some(format!(
        "postgresql://app_user:app-pw@{}:{}/{}",
        env.node.host(),
        env.node.port(),
        env.db
    ));
    let (app, conn) = tokio_postgres::connect(env.url.as_deref().unwrap(), tokio_postgres::NoTls)
        .await
        .unwrap();
    tokio::spawn(conn);
    app.batch_execute(
        "CREATE TABLE notes (id serial PRIMARY KEY, body text);
         INSERT INTO notes (body) SELECT 'n' || i FROM generate_series(1, 7) i;",
    )
    .await
    .unwrap();

    let dump = backup(&env).await;
    let o = env.dash(&["db", "verify-backup"]).await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("VERIFIED") && o.stdout.contains("throwaway PostgreSQL"),
        "{}",
        o.show()
    );
    let m = dash_runbook::manifest::Manifest::load(&dump)
        .unwrap()
        .unwrap();
    let v = m.verification.expect("recorded");
    assert!(
        v.ok && v
            .tables
            .iter()
            .any(|t| t.table == "public.notes" && t.found == Some(7))
    );

    // On the server only when asked, and then CREATEDB is named.
    let o = env.dash(&["db", "verify-backup", "--on-server"]).await;
    o.expect_code(1);
    assert!(o.stderr.contains("CREATEDB"), "{}", o.show());
    let left: i64 = su
        .query_one(
            "SELECT count(*) FROM pg_database WHERE datname LIKE 'dash_verify%'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0);
    su.batch_execute(&format!(
        "DROP OWNED BY app_user CASCADE; REVOKE ALL ON DATABASE \"{}\" FROM app_user;",
        env.db
    ))
    .await
    .unwrap();
}
