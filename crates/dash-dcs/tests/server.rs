//! Real etcd members on free loopback ports: start, serve, stop, restart,
//! form a cluster, lose a member, and report a taken port.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::time::{Duration, Instant};

use dash_dcs::{EtcdConfig, EtcdError, EtcdMember, READY_TIMEOUT};
use etcd_client::{Client, ConnectOptions};

/// `n` distinct free loopback addresses.
fn free_addrs(n: usize) -> Vec<SocketAddr> {
    let mut addrs: Vec<SocketAddr> = Vec::new();
    while addrs.len() < n {
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, dash_pg::free_port()));
        if !addrs.contains(&addr) {
            addrs.push(addr);
        }
    }
    addrs
}

/// A one-member cluster named `name` in `dir`, on free ports.
fn single(dir: &Path, name: &str) -> EtcdConfig {
    let [client, peer] = free_addrs(2).try_into().unwrap();
    EtcdConfig::single(name, dir.join(name), client.port(), peer.port())
}

fn block_on<F: Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}

async fn client(url: &str) -> Result<Client, etcd_client::Error> {
    let options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(2))
        .with_timeout(Duration::from_secs(2));
    Client::connect([url], Some(options)).await
}

fn put(url: &str, key: &str, value: &str) -> Result<(), etcd_client::Error> {
    block_on(async { client(url).await?.put(key, value, None).await.map(drop) })
}

fn get(url: &str, key: &str) -> Option<String> {
    block_on(async {
        let response = client(url).await.unwrap().get(key, None).await.unwrap();
        let kv = response.kvs().first()?;
        Some(kv.value_str().unwrap().to_string())
    })
}

/// Whether `pid` names no process at all (not even a zombie).
fn gone(pid: i32) -> bool {
    !Path::new(&format!("/proc/{pid}")).exists()
}

#[test]
fn a_member_serves_clients_and_stops_without_a_trace() {
    let dir = tempfile::tempdir().unwrap();
    let mut member = EtcdMember::start(single(dir.path(), "solo")).unwrap();
    let pid = member.pid().expect("running");
    assert!(member.is_running());

    put(&member.client_url(), "greeting", "hello").unwrap();
    assert_eq!(
        get(&member.client_url(), "greeting").as_deref(),
        Some("hello")
    );

    member.stop();
    assert!(!member.is_running());
    assert_eq!(member.pid(), None);
    assert!(gone(pid), "etcd pid {pid} still exists after stop");
    assert!(dir.path().join("solo.log").is_file());
}

#[test]
fn a_restart_on_the_same_data_dir_keeps_keys() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = single(dir.path(), "kept");
    let mut first = EtcdMember::start(cfg.clone()).unwrap();
    put(&first.client_url(), "leader", "node1").unwrap();
    first.stop();

    let second = EtcdMember::start(cfg).unwrap();
    assert_eq!(
        get(&second.client_url(), "leader").as_deref(),
        Some("node1")
    );
}

#[test]
fn a_three_member_cluster_forms_and_survives_losing_its_leader() {
    let dir = tempfile::tempdir().unwrap();
    let names = ["m0", "m1", "m2"];
    let addrs = free_addrs(2 * names.len());
    let (clients, peer_addrs) = addrs.split_at(names.len());
    let peers: Vec<(String, SocketAddr)> = (names.iter().zip(peer_addrs))
        .map(|(name, peer)| (name.to_string(), *peer))
        .collect();
    let mut members: Vec<EtcdMember> = (peers.iter().zip(clients))
        .map(|((name, peer), client)| {
            let cfg = EtcdConfig {
                peer: *peer,
                client: *client,
                initial_cluster: peers.clone(),
                cluster_token: "dash-test-trio".to_string(),
                ..EtcdConfig::single(name, dir.path().join(name), 0, 0)
            };
            EtcdMember::spawn(cfg).unwrap()
        })
        .collect();
    for member in &members {
        member.wait_ready(READY_TIMEOUT).unwrap();
    }
    let urls: Vec<String> = members.iter().map(EtcdMember::client_url).collect();
    put(&urls[0], "before", "3 members").unwrap();

    let leader = block_on(async {
        let status = client(&urls[0]).await?.status().await?;
        let leader = status.leader();
        let mut index = None;
        for (i, url) in urls.iter().enumerate() {
            let status = client(url).await?.status().await?;
            if status.header().map(|h| h.member_id()) == Some(leader) {
                index = Some(i);
            }
        }
        Ok::<_, etcd_client::Error>(index)
    })
    .unwrap()
    .expect("one member is the leader");
    members[leader].kill();
    assert!(!members[leader].is_running());

    let survivors: Vec<&String> = (urls.iter().enumerate())
        .filter(|&(i, _)| i != leader)
        .map(|(_, url)| url)
        .collect();
    // A new leader is elected within a few election timeouts (1 s each).
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = put(survivors[0], "after", "2 members") {
        assert!(
            Instant::now() < deadline,
            "no write with 2 of 3 members: {e}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get(survivors[1], "after").as_deref(), Some("2 members"));
    assert_eq!(get(survivors[1], "before").as_deref(), Some("3 members"));
}

#[test]
fn a_member_of_a_new_cluster_is_not_ready_without_a_quorum() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = single(dir.path(), "lonely");
    let absent = free_addrs(3)
        .into_iter()
        .find(|a| *a != cfg.client && *a != cfg.peer);
    cfg.initial_cluster
        .push(("absent".to_string(), absent.unwrap()));
    let member = EtcdMember::spawn(cfg).unwrap();
    match member.wait_ready(Duration::from_secs(2)) {
        Err(EtcdError::NotReady { log_tail, .. }) => assert!(!log_tail.is_empty()),
        other => panic!("expected NotReady, got {other:?}"),
    }
    assert!(
        member.is_running(),
        "wait_ready leaves a slow member running"
    );
}

#[test]
fn a_taken_client_or_peer_port_is_port_in_use() {
    let dir = tempfile::tempdir().unwrap();
    let taken = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
    let taken_addr = taken.local_addr().unwrap();

    let mut on_client = single(dir.path(), "client-clash");
    on_client.client = taken_addr;
    let mut on_peer = single(dir.path(), "peer-clash");
    on_peer.peer = taken_addr;
    on_peer.initial_cluster[0].1 = taken_addr;

    for cfg in [on_client, on_peer] {
        let name = cfg.name.clone();
        match EtcdMember::start(cfg) {
            Err(EtcdError::PortInUse { addr, log_tail, .. }) => {
                assert_eq!(addr, taken_addr, "{name}");
                assert!(log_tail.contains("address already in use"), "{log_tail}");
            }
            other => panic!("{name}: expected PortInUse, got {other:?}"),
        }
    }
}
