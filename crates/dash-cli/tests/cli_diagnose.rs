//! `dashctl db diagnose`'s pool review through the real binary: a pool size
//! from the API's metrics and the server's slots, with the arithmetic.

mod common;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diagnose_advises_a_pool_size_with_its_arithmetic() {
    let mut env = Env::new().await;
    let _app = with_app(&mut env).await;
    let max: i64 = (env.client().await)
        .query_one("SELECT current_setting('max_connections')::bigint", &[])
        .await
        .unwrap()
        .get(0);

    let o = env
        .dash(&["db", "diagnose", "--window", "200ms", "--json"])
        .await;
    o.expect_code(0);
    let a = &o.json()["pool_advice"];
    assert_eq!(a["current"], 20, "{}", o.show());
    let arithmetic = a["arithmetic"].to_string();
    assert!(
        arithmetic.contains(&format!("max_connections {max}"))
            && arithmetic.contains("no caller waited"),
        "{}",
        o.show()
    );
    assert!(
        a["assumptions"].to_string().contains("--api-replicas"),
        "the process count is an assumption: {}",
        o.show()
    );

    // Told the process count, it divides the server's budget by it.
    let o = env
        .dash(&["db", "diagnose", "--window", "200ms", "--api-replicas", "3"])
        .await;
    o.expect_code(0);
    assert!(
        o.stdout.contains("Pool size advice") && o.stdout.contains(" / 3) = "),
        "{}",
        o.show()
    );
    assert!(!o.stdout.contains("--api-replicas N"), "{}", o.show());
}
