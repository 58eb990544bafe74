//! Operator requests in a real etcd member: one at a time, and ended by
//! etcd when their lifetime runs out though nobody cleared them.

use std::time::{Duration, Instant};

use dash_dcs::{Dcs, EtcdConfig, EtcdMember, Request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_is_one_at_a_time_and_ends_with_its_lifetime() {
    let dir = tempfile::tempdir().unwrap();
    let (client, peer) = (dash_pg::free_port(), dash_pg::free_port());
    let cfg = EtcdConfig::single("solo", dir.path().join("solo"), client, peer);
    let mut member = EtcdMember::start(cfg).unwrap();
    let dcs = Dcs::connect(&[member.client_url()], "t", Duration::from_secs(2))
        .await
        .unwrap();
    let failover = Request::Failover {
        from: None,
        to: Some("a3".into()),
        accept_data_loss: true,
    };
    let lifetime = Duration::from_secs(2);
    assert!(dcs.file_request(&failover, lifetime).await.unwrap());
    let switchover = Request::Switchover {
        from: "a1".into(),
        to: None,
    };
    assert!(
        !dcs.file_request(&switchover, lifetime).await.unwrap(),
        "a second request while one is pending"
    );
    let filed = dcs.view().await.unwrap().request.expect("the request");
    assert_eq!(filed.value, failover);

    // Nobody clears it (its command was killed): etcd ends it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while dcs.view().await.unwrap().request.is_some() {
        assert!(Instant::now() < deadline, "the request outlived its lease");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(dcs.file_request(&switchover, lifetime).await.unwrap());
    let rev = dcs.view().await.unwrap().request.unwrap().mod_revision;
    assert!(dcs.clear_request(rev).await.unwrap());
    assert!(dcs.view().await.unwrap().request.is_none());
    member.stop();
}
