//! The kit's etcd: serves clients, and leaves no process or file behind.

use std::path::Path;

use dash_testkit::TempEtcd;

#[tokio::test]
async fn a_temp_etcd_serves_clients_and_vanishes_on_drop() {
    let etcd = tokio::task::spawn_blocking(TempEtcd::start)
        .await
        .unwrap()
        .unwrap();
    let [endpoint] = etcd.endpoints().try_into().unwrap();
    let health: serde_json::Value = reqwest::get(format!("{endpoint}/health"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["health"], "true", "{health}");

    let pid = etcd.pid().expect("running");
    let dir = etcd.dir().to_path_buf();
    drop(etcd);
    assert!(
        !Path::new(&format!("/proc/{pid}")).exists(),
        "etcd {pid} survived"
    );
    assert!(!dir.exists(), "{} survived", dir.display());
}
