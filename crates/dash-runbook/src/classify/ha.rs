//! Rules for the HA tier, when etcd is configured: what etcd and the node
//! agents say becomes evidence. Without a writable primary it joins the
//! no-primary finding (and its fix names what the agents do on their own,
//! or the operator's failover when they may not); with one, the HA problems (no
//! leader key, the leader's `/primary` not 200, no synchronous standby, a
//! member not streaming, etcd unreachable) are scenario 1.

use super::{RECHECK, RUNBOOK_WAIT};
use crate::ha::HaView;
use crate::situation::{Finding, Situation};

/// `--etcd URLS --cluster NAME`, for the fix commands.
fn flags(ha: &HaView) -> String {
    format!("--etcd {} --cluster {}", ha.endpoints.join(","), ha.cluster)
}

/// Adds the HA evidence to the finding made when no node answers as a
/// writable primary; a lost primary's fix is the agents' own failover.
pub(super) fn without_primary(f: &mut Finding, ha: &HaView) {
    f.evidence.extend(ha.problems());
    let flags = flags(ha);
    if ha.halt.is_some() {
        // A point-in-time restore is under way, or was interrupted: no
        // restart or failover can help, and none may be attempted.
        f.fix = vec![
            format!("dashctl db status {flags}   # a restore halted the cluster: is `dashctl db restore` still running (its progress lines)?"),
            format!("dashctl db restore --abort {flags}   # only when no restore runs any more: lifts the halt, the agents start the cluster again"),
            "dashctl verify".into(),
        ];
        return;
    }
    if f.situation != Situation::PrimaryLost || ha.etcd_error.is_some() {
        return;
    }
    // With the key free, the set the last leader recorded says who may take it.
    let (last, standbys) = match &ha.sync {
        Some(s) => (s.leader.as_str(), s.standbys.as_slice()),
        None => ("the last primary", &[][..]),
    };
    f.fix = match standbys {
        [] => {
            let mut fix = vec![format!("kubectl rollout restart statefulset/postgres -n dash   # no synchronous standby is recorded, so the agents promote nobody: only {last} holds every acknowledged write; bring it back")];
            let standby = (ha.members.iter()).find(|m| m.name != last && m.role == "replica");
            if let Some(m) = standby {
                fix.push(format!(
                    "dashctl db failover {flags} --target {} --accept-data-loss   # only if {last} cannot come back: writes it acknowledged may be lost",
                    m.name
                ));
            }
            fix.push("dashctl verify".into());
            fix
        }
        names => vec![
            format!(
                "sleep 10 && dashctl db diagnose {flags}   # the agents promote {} (recorded synchronous standby) on their own within one lease TTL",
                names.join(" or ")
            ),
            format!("dashctl db status {flags}   # if not: each agent's last action and the HA history say why"),
            "dashctl verify".into(),
        ],
    };
}

/// Gives every `dashctl db status` / `diagnose` in the fix the etcd flags,
/// so that the re-check sees what this one saw.
pub(super) fn name_etcd(f: &mut Finding, ha: &HaView) {
    let flags = flags(ha);
    for line in &mut f.fix {
        if line.contains("--etcd") {
            continue;
        }
        for verb in ["dashctl db status", "dashctl db diagnose"] {
            *line = line.replace(verb, &format!("{verb} {flags}"));
        }
    }
}

/// The HA problems while a writable primary answers: scenario 1.
pub(super) fn with_primary(ha: &HaView) -> Option<Finding> {
    let evidence = ha.problems();
    if evidence.is_empty() {
        return None;
    }
    let mut fix = Vec::new();
    if ha.etcd_error.is_some() {
        fix.push(format!(
            "etcdctl --endpoints {} endpoint health   # is etcd up, and reachable from here?",
            ha.endpoints.join(",")
        ));
    }
    let behind: Vec<&str> = (ha.members.iter())
        .filter(|m| !m.leader && (m.role != "replica" || !m.streaming))
        .map(|m| m.name.as_str())
        .chain(ha.absent.iter().map(|a| a.member.as_str()))
        .collect();
    if !behind.is_empty() {
        fix.push(format!(
            "kubectl rollout restart statefulset/postgres-replica -n dash   # {} not streaming: its agent rejoins it (pg_rewind or a fresh clone), then the leader records it as synchronous standby again",
            behind.join(", ")
        ));
    }
    fix.push(RUNBOOK_WAIT.into());
    fix.push(RECHECK.into());
    Some(Finding {
        situation: Situation::TransientConnection,
        evidence,
        fix,
    })
}

#[cfg(test)]
mod tests {
    use super::super::classify;
    use super::super::tests::{node, steady};
    use crate::ha::{HaMember, HaView, NodeApi};
    use crate::probe::NodeRole;
    use crate::situation::Situation;
    use dash_dcs::SyncState;

    fn member(name: &str, role: &str, streaming: bool) -> HaMember {
        HaMember {
            name: name.into(),
            pg: "127.0.0.1:5432".into(),
            api: format!("http://{name}:8008"),
            role: role.into(),
            streaming,
            node_api: NodeApi {
                reachable: true,
                ..NodeApi::default()
            },
            ..HaMember::default()
        }
    }

    /// a1 leads with a2 as its synchronous standby, a3 streams too.
    fn sound() -> HaView {
        let mut leader = member("a1", "primary", false);
        leader.leader = true;
        leader.node_api.primary_http = Some(200);
        let mut standby = member("a2", "replica", true);
        standby.sync_standby = true;
        HaView {
            cluster: "dash".into(),
            endpoints: vec!["http://e1:2379".into()],
            leader: Some("a1".into()),
            sync: Some(SyncState {
                leader: "a1".into(),
                standbys: vec!["a2".into()],
            }),
            members: vec![leader, standby, member("a3", "replica", true)],
            ..HaView::default()
        }
    }

    fn healthy_nodes() -> Vec<crate::probe::NodeProbe> {
        vec![
            node(0, Some(NodeRole::Primary)),
            node(1, Some(NodeRole::Replica)),
        ]
    }

    #[test]
    fn a_sound_ha_tier_adds_nothing() {
        let mut s = steady(healthy_nodes());
        s.ha = Some(sound());
        assert!(classify(&s).is_empty(), "{:?}", classify(&s));
    }

    #[test]
    fn running_asynchronously_is_scenario_1_and_says_writes_are_exposed() {
        let mut ha = sound();
        ha.sync = Some(SyncState {
            leader: "a1".into(),
            standbys: vec![],
        });
        ha.members[1].sync_standby = false;
        let mut s = steady(healthy_nodes());
        s.ha = Some(ha);
        let f = classify(&s);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].situation, Situation::TransientConnection);
        assert!(
            f[0].evidence
                .iter()
                .any(|e| e.contains("no synchronous standby") && e.contains("exposed")),
            "{:?}",
            f[0].evidence
        );
    }

    #[test]
    fn a_member_not_streaming_and_a_leader_not_answering_primary_are_evidence() {
        let mut ha = sound();
        ha.members[0].node_api.primary_http = Some(503);
        ha.members[2].streaming = false;
        let mut s = steady(healthy_nodes());
        s.ha = Some(ha);
        let f = classify(&s);
        assert_eq!(f[0].situation, Situation::TransientConnection);
        let ev = f[0].evidence.join("\n");
        assert!(ev.contains("answers /primary with 503"), "{ev}");
        assert!(ev.contains("a3 is a replica that is not streaming"), "{ev}");
        assert!(
            f[0].fix
                .iter()
                .any(|c| c.contains("postgres-replica") && c.contains("a3")),
            "{:?}",
            f[0].fix
        );
        assert_eq!(
            f[0].fix[1..],
            [
                "sleep 30 && dashctl db status --etcd http://e1:2379 --cluster dash",
                "dashctl db diagnose --etcd http://e1:2379 --cluster dash   # re-check; restart the database if it recurs",
            ],
            "the re-checks read etcd too"
        );
    }

    #[test]
    fn a_halted_cluster_names_the_halt_and_its_fix_is_the_restore_not_a_failover() {
        let mut ha = sound();
        ha.leader = None;
        for m in &mut ha.members {
            m.leader = false;
            m.role = "halted".into();
        }
        ha.halt = Some(dash_dcs::Halt {
            by: "dashctl db restore on host1".into(),
            reason: "restore to 2026-11-30 12:00:00 UTC".into(),
            restored: None,
        });
        let mut s = steady(vec![node(0, None), node(1, None)]);
        s.ha = Some(ha);
        let f = classify(&s);
        let ev = f[0].evidence.join("\n");
        assert!(
            ev.contains("HALTED") && ev.contains("dashctl db restore on host1"),
            "{ev}"
        );
        assert!(
            f[0].fix
                .iter()
                .any(|c| c.contains("dashctl db restore --abort")),
            "{:?}",
            f[0].fix
        );
        assert!(
            !f[0].fix.iter().any(|c| c.contains("failover")),
            "{:?}",
            f[0].fix
        );
    }

    #[test]
    fn no_leader_key_joins_the_lost_primary_finding_with_the_agents_fix() {
        let mut ha = sound();
        ha.leader = None;
        for m in &mut ha.members {
            m.leader = false;
        }
        let mut s = steady(vec![node(0, None), node(1, Some(NodeRole::Replica))]);
        s.ha = Some(ha);
        let f = classify(&s);
        assert_eq!(f.len(), 1, "{f:?}");
        assert_eq!(f[0].situation, Situation::PrimaryLost);
        assert!(
            f[0].evidence
                .iter()
                .any(|e| e.contains("no member holds the leader key")),
            "{:?}",
            f[0].evidence
        );
        assert!(
            !f[0]
                .fix
                .iter()
                .any(|c| c.starts_with("dashctl db failover")),
            "the agents promote the recorded standby themselves: {:?}",
            f[0].fix
        );
        assert!(f[0].fix[0].contains("a2"), "{:?}", f[0].fix);
    }

    #[test]
    fn with_no_recorded_standby_the_fix_names_the_operators_failover_accepting_loss() {
        let mut ha = sound();
        ha.leader = None;
        ha.sync = Some(SyncState {
            leader: "a1".into(),
            standbys: vec![],
        });
        ha.members.remove(0);
        for m in &mut ha.members {
            m.sync_standby = false;
        }
        let mut s = steady(vec![node(0, None), node(1, Some(NodeRole::Replica))]);
        s.ha = Some(ha);
        let f = classify(&s);
        assert_eq!(f[0].situation, Situation::PrimaryLost, "{f:?}");
        assert!(f[0].fix[0].contains("bring it back"), "{:?}", f[0].fix);
        assert!(
            f[0].fix[1].starts_with("dashctl db failover --etcd http://e1:2379 --cluster dash --target a2 --accept-data-loss"),
            "{:?}",
            f[0].fix
        );
    }

    #[test]
    fn a_vanished_member_is_named_and_a_restart_is_given_once() {
        let mut ha = sound();
        let gone = ha.members.remove(2);
        ha.absent = vec![crate::ha::HistoryLine {
            at_ms: 0,
            at: "1970-01-01T00:00:00.000Z".into(),
            member: gone.name,
            decision: "rejoin".into(),
            detail: "start as a standby of a1".into(),
        }];
        let mut s = steady(vec![node(0, Some(NodeRole::Primary)), node(1, None)]);
        s.ha = Some(ha);
        let f = classify(&s);
        assert_eq!(f.len(), 1, "{f:?}");
        assert!(
            f[0].evidence
                .iter()
                .any(|e| e.starts_with("a3 has no member record")),
            "{:?}",
            f[0].evidence
        );
        let restarts = (f[0].fix.iter())
            .filter(|c| c.starts_with("kubectl rollout restart statefulset/postgres-replica"))
            .count();
        assert_eq!(restarts, 1, "{:?}", f[0].fix);
    }

    #[test]
    fn etcd_unreachable_is_scenario_1_with_an_etcd_check() {
        let mut s = steady(healthy_nodes());
        s.ha = Some(HaView {
            cluster: "dash".into(),
            endpoints: vec!["http://e1:2379".into()],
            etcd_error: Some("etcd did not answer within 2s".into()),
            ..HaView::default()
        });
        let f = classify(&s);
        assert_eq!(f[0].situation, Situation::TransientConnection);
        assert!(f[0].evidence[0].contains("did not answer"));
        assert!(f[0].fix[0].starts_with("etcdctl --endpoints http://e1:2379"));
    }
}
