//! Real network namespaces: hosts reach each other, partitions cut exactly
//! what they say, freeze/kill act on every process of a host, and nothing is
//! left behind. Every test needs root and is skipped, saying so, without it.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use dash_netns::{is_root, sweep_leftovers, Host, Net, NetError};
use nix::sys::signal::Signal;

/// Bound for a connection that should succeed (it returns as soon as it does).
const REACH: Duration = Duration::from_secs(5);
/// How long a connection that should be cut is given.
const CUT: Duration = Duration::from_millis(300);

fn root(test: &str) -> bool {
    if !is_root() {
        eprintln!("skipped {test}: network namespaces need root (run the tests as root)");
    }
    is_root()
}

/// A listener inside `host` on its address and a free port.
fn listen(host: &Host) -> (TcpListener, SocketAddr) {
    let ip = host.addr();
    let listener = host
        .run_in(move || TcpListener::bind((ip, 0)))
        .unwrap()
        .unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// Polls `done` every 5 ms for up to 5 s.
fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A process's state letter from /proc (`S`, `T`, `Z`, ...), `None` if gone.
fn state(pid: i32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    stat[stat.rfind(')')? + 1..].trim_start().chars().next()
}

fn ip_stdout(args: &[&str]) -> String {
    let out = Command::new("ip").args(args).output().unwrap();
    assert!(out.status.success(), "ip {args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

/// Names in `ip netns list` and `ip -br link` (without `@peer`).
fn namespaces_and_links() -> Vec<String> {
    let netns = ip_stdout(&["netns", "list"]);
    let links = ip_stdout(&["-br", "link"]);
    netns
        .lines()
        .chain(links.lines())
        .filter_map(|l| l.split_whitespace().next()?.split('@').next())
        .map(String::from)
        .collect()
}

/// Every namespace, veth and bridge name of `net`.
fn names_of(net: &Net) -> Vec<String> {
    let mut names = vec![net.bridge().to_string()];
    for h in net.hosts() {
        names.extend([h.name().to_string(), h.veth().to_string()]);
    }
    names
}

fn assert_gone(names: &[String]) {
    let present = namespaces_and_links();
    for name in names {
        assert!(!present.contains(name), "{name} is still there");
    }
}

#[test]
fn three_hosts_reach_each_other_and_the_root_namespace_has_no_address_on_the_net() {
    if !root("three_hosts_reach_each_other") {
        return;
    }
    let net = Net::create("reach", 3).unwrap();
    for target in net.hosts() {
        let (listener, addr) = listen(target);
        for from in net.hosts().iter().filter(|h| h.addr() != target.addr()) {
            assert!(
                from.can_connect(addr, REACH).unwrap(),
                "{} -> {addr}",
                from.name()
            );
            let (_, peer) = listener.accept().unwrap();
            assert_eq!(
                peer.ip(),
                from.addr(),
                "the connection comes from the host's own address"
            );
        }
    }
    for link in std::iter::once(net.bridge()).chain(net.hosts().iter().map(|h| h.veth())) {
        let addrs = ip_stdout(&["-o", "addr", "show", "dev", link]);
        assert_eq!(
            addrs, "",
            "{link} must have no address in the root namespace"
        );
    }
    // A host's address exists only inside it, also for threads spawned there.
    let ip = net.host(0).addr();
    let err = TcpListener::bind((ip, 0)).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::AddrNotAvailable);
    let inherited = net.host(0).run_in(move || {
        std::thread::spawn(move || TcpListener::bind((ip, 0)).map(drop))
            .join()
            .unwrap()
    });
    inherited.unwrap().unwrap();
}

#[test]
fn isolate_cuts_a_host_off_both_ways_but_not_from_itself_and_heal_restores() {
    if !root("isolate_cuts_a_host_off") {
        return;
    }
    let net = Net::create("isolate", 3).unwrap();
    let (a, b, c) = (net.host(0), net.host(1), net.host(2));
    let (_la, at_a) = listen(a);
    let (_lb, at_b) = listen(b);
    let (_lc, at_c) = listen(c);
    assert!(a.can_connect(at_b, REACH).unwrap());

    a.isolate().unwrap();
    assert!(!a.can_connect(at_b, CUT).unwrap(), "a -> b");
    assert!(!a.can_connect(at_c, CUT).unwrap(), "a -> c");
    assert!(!b.can_connect(at_a, CUT).unwrap(), "b -> a");
    // Silence, as on a cut wire: not refused, not unreachable.
    let err = b
        .run_in(move || TcpStream::connect_timeout(&at_a, CUT))
        .unwrap();
    assert_eq!(err.unwrap_err().kind(), ErrorKind::TimedOut);
    assert!(
        a.can_connect(at_a, REACH).unwrap(),
        "a still reaches its own address"
    );
    assert!(
        b.can_connect(at_c, REACH).unwrap(),
        "b and c are unaffected"
    );

    a.heal().unwrap();
    assert!(a.can_connect(at_b, REACH).unwrap(), "a -> b after heal");
    assert!(b.can_connect(at_a, REACH).unwrap(), "b -> a after heal");
    a.heal().unwrap(); // healing a healthy host is a no-op
}

#[test]
fn block_without_ports_cuts_one_peer_only() {
    if !root("block_without_ports_cuts_one_peer_only") {
        return;
    }
    let net = Net::create("block-peer", 3).unwrap();
    let (a, b, c) = (net.host(0), net.host(1), net.host(2));
    let (_la, at_a) = listen(a);
    let (_lb, at_b) = listen(b);
    let (_lc, at_c) = listen(c);

    a.block(b.addr(), None).unwrap();
    assert!(!a.can_connect(at_b, CUT).unwrap(), "a -> b");
    assert!(!b.can_connect(at_a, CUT).unwrap(), "b -> a");
    assert!(a.can_connect(at_c, REACH).unwrap(), "a -> c");
    assert!(c.can_connect(at_a, REACH).unwrap(), "c -> a");
    a.heal().unwrap();
    assert!(a.can_connect(at_b, REACH).unwrap());
}

#[test]
fn block_with_ports_cuts_only_those_ports_of_the_peer() {
    if !root("block_with_ports_cuts_only_those_ports") {
        return;
    }
    let net = Net::create("block-port", 2).unwrap();
    let (a, b) = (net.host(0), net.host(1));
    let (_etcd, etcd_on_b) = listen(b);
    let (_pg, pg_on_b) = listen(b);
    let (_pg_a, pg_on_a) = listen(a);

    a.block(b.addr(), Some(&[etcd_on_b.port()])).unwrap();
    assert!(
        !a.can_connect(etcd_on_b, CUT).unwrap(),
        "a -> b's blocked port"
    );
    assert!(
        a.can_connect(pg_on_b, REACH).unwrap(),
        "a -> b's other port"
    );
    assert!(b.can_connect(pg_on_a, REACH).unwrap(), "b -> a");
    a.heal().unwrap();
    assert!(a.can_connect(etcd_on_b, REACH).unwrap(), "after heal");

    let empty = a.block(b.addr(), Some(&[]));
    assert!(matches!(empty, Err(NetError::Invalid(_))), "{empty:?}");
}

#[test]
fn freeze_stops_thaw_continues_and_kill_all_kills_every_process_of_a_host() {
    if !root("freeze_and_kill_all") {
        return;
    }
    let net = Net::create("kill", 2).unwrap();
    let (h, other) = (net.host(0), net.host(1));
    // A shell with two children: freeze must catch forked processes too.
    let mut shell = h
        .command("sh")
        .args(["-c", "sleep 600 & sleep 600 & wait"])
        .spawn()
        .unwrap();
    let mut bystander = other.command("sleep").arg("600").spawn().unwrap();
    wait_until("the shell and its two sleeps run in the host", || {
        h.pids().len() == 3
    });
    let shell_pid = shell.id() as i32;
    assert!(h.pids().contains(&shell_pid));

    h.freeze().unwrap();
    for pid in h.pids() {
        assert_eq!(state(pid), Some('T'), "pid {pid} after freeze");
    }
    h.thaw();
    wait_until("every process runs again", || {
        h.pids().iter().all(|&p| state(p) != Some('T'))
    });

    h.kill_all().unwrap();
    assert_eq!(h.pids(), Vec::<i32>::new());
    assert_eq!(shell.wait().unwrap().signal(), Some(Signal::SIGKILL as i32));
    assert_eq!(
        bystander.try_wait().unwrap(),
        None,
        "another host's process lives on"
    );
    assert_eq!(other.pids(), vec![bystander.id() as i32]);
    net.destroy().unwrap();
    assert_eq!(
        bystander.wait().unwrap().signal(),
        Some(Signal::SIGKILL as i32)
    );
}

#[test]
fn drop_removes_everything_even_when_the_test_body_panics() {
    if !root("drop_removes_everything") {
        return;
    }
    let made = std::sync::Mutex::new(None);
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let net = Net::create("panics", 2).unwrap();
        let sleep = net.host(1).command("sleep").arg("600").spawn().unwrap();
        let pid = sleep.id() as i32;
        wait_until("sleep runs in the host", || net.host(1).pids() == [pid]);
        *made.lock().unwrap() = Some((names_of(&net), sleep));
        panic!("the test body fails with the net up");
    }));
    assert!(outcome.is_err());
    let (names, mut sleep) = made.into_inner().unwrap().unwrap();
    assert_eq!(names.len(), 5);
    assert_gone(&names);
    assert_eq!(sleep.wait().unwrap().signal(), Some(Signal::SIGKILL as i32));
}

#[test]
fn two_nets_at_once_do_not_clash() {
    if !root("two_nets_at_once_do_not_clash") {
        return;
    }
    let (one, two) = std::thread::scope(|s| {
        let one = s.spawn(|| Net::create("two", 2).unwrap());
        let two = s.spawn(|| Net::create("two", 2).unwrap());
        (one.join().unwrap(), two.join().unwrap())
    });
    assert_ne!(one.bridge(), two.bridge());
    assert_ne!(one.host(0).addr(), two.host(0).addr(), "distinct subnets");
    let (_l1, in_one) = listen(one.host(1));
    let (_l2, in_two) = listen(two.host(1));
    assert!(one.host(0).can_connect(in_one, REACH).unwrap());
    assert!(two.host(0).can_connect(in_two, REACH).unwrap());
    assert!(
        !one.host(0).can_connect(in_two, CUT).unwrap(),
        "separate networks"
    );

    let names = names_of(&one);
    one.destroy().unwrap();
    assert_gone(&names);
    assert!(
        two.host(0).can_connect(in_two, REACH).unwrap(),
        "the other net lives on"
    );
}

#[test]
fn a_net_has_at_least_one_host() {
    if !root("a_net_has_at_least_one_host") {
        return;
    }
    assert!(matches!(Net::create("none", 0), Err(NetError::Invalid(_))));
    assert!(matches!(
        Net::create("many", 255),
        Err(NetError::Invalid(_))
    ));
}

/// Env var that makes [`helper_dies_holding_a_net`] do its work.
const DIE_HOLDING_A_NET: &str = "DASH_NETNS_TEST_DIE_HOLDING_A_NET";

/// Not a test: run by `sweep_removes_what_a_dead_process_left` in a child
/// process, it creates a Net with a process in it, prints the names, and
/// aborts so that no destructor runs.
#[test]
#[ignore = "helper: run in a child process by sweep_removes_what_a_dead_process_left"]
fn helper_dies_holding_a_net() {
    if std::env::var_os(DIE_HOLDING_A_NET).is_none() {
        return;
    }
    let net = Net::create("orphan", 2).unwrap();
    // Not on our stdout: the parent reads it to the end, and sleep outlives us.
    let sleep = net
        .host(0)
        .command("sleep")
        .arg("600")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = sleep.id() as i32;
    wait_until("sleep runs in the host", || net.host(0).pids() == [pid]);
    println!("LEFT {pid} {}", names_of(&net).join(" "));
    std::process::abort();
}

#[test]
fn sweep_removes_what_a_dead_process_left() {
    if !root("sweep_removes_what_a_dead_process_left") {
        return;
    }
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "helper_dies_holding_a_net",
            "--nocapture",
        ])
        .env(DIE_HOLDING_A_NET, "1")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(Signal::SIGABRT as i32), "{out:?}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    let left = stdout
        .lines()
        .find_map(|l| l.strip_prefix("LEFT "))
        .expect(&stdout);
    let mut fields = left.split(' ');
    let sleep_pid: i32 = fields.next().unwrap().parse().unwrap();
    let names: Vec<String> = fields.map(String::from).collect();
    let present = namespaces_and_links();
    assert!(
        names.iter().all(|n| present.contains(n)),
        "the dead process left {names:?}"
    );
    assert_eq!(
        state(sleep_pid),
        Some('S'),
        "its process still sleeps in the host"
    );

    assert!(sweep_leftovers().unwrap() >= 1);
    assert_gone(&names);
    // Reparented to PID 1, which may not have reaped it (yet).
    assert!(
        matches!(state(sleep_pid), None | Some('Z')),
        "sleep was killed"
    );
}
