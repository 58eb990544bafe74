//! Point-in-time recovery in deploy/kubernetes: every database member
//! archives into one pgBackRest repository that all of them and the backup
//! jobs mount (so it must be ReadWriteMany), with the config the agent is
//! told about; the physical backups run on any node, through the primary's
//! agent, and are verified after each backup; the logical dumps the
//! runbook's `pg_restore` line needs keep coming.

// Shared with manifests.rs; this file uses only some of its helpers.
#[allow(dead_code)]
mod deploy_objects;

use std::collections::BTreeMap;

use deploy_objects::{container, env, get, objects, pod_spec};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, PersistentVolumeClaim, PodSpec, Service, Volume,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const REPO: &str = "/backups/dash/pgbackrest";
const CONFIG: &str = "/etc/pgbackrest/pgbackrest.conf";
const PHYSICAL_JOBS: [(&str, &str); 2] = [
    ("postgres-pgbackrest-diff", "diff"),
    ("postgres-pgbackrest-full", "full"),
];

/// `[section]` → `key=value` of an INI text (comments and blanks dropped).
fn ini(text: &str) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut section = String::new();
    for line in text.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            out.entry(section.clone()).or_default();
        } else if let Some((k, v)) = line.split_once('=').filter(|_| !line.starts_with('#')) {
            let keys = out.entry(section.clone()).or_default();
            keys.insert(k.trim().to_owned(), v.trim().to_owned());
        }
    }
    out
}

fn config() -> BTreeMap<String, BTreeMap<String, String>> {
    let map: ConfigMap = get("ConfigMap", "dash-pgbackrest");
    let data = map.data.expect("data");
    ini(data.get("pgbackrest.conf").expect("pgbackrest.conf"))
}

fn volume<'a>(pod: &'a PodSpec, c: &Container, path: &str) -> Option<&'a Volume> {
    let mounts = c.volume_mounts.iter().flatten();
    let mount = mounts.into_iter().find(|m| m.mount_path == path)?;
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
    volume.filter(|_| mount.read_only != Some(true))
}

fn job_pod(name: &str) -> PodSpec {
    let job: CronJob = get("CronJob", name);
    let template = job.spec.unwrap().job_template.spec.unwrap().template;
    template.spec.unwrap()
}

/// The containers that run pgBackRest: each database member's agent, and
/// the backup and verify steps of both physical backup jobs.
fn pgbackrest_containers() -> Vec<(String, PodSpec, Container)> {
    let mut out = Vec::new();
    for name in ["postgres", "postgres-replica"] {
        let set: StatefulSet = get("StatefulSet", name);
        let pod = pod_spec(&set).clone();
        out.push((
            name.to_owned(),
            pod.clone(),
            container(&pod, "postgres").clone(),
        ));
    }
    for (name, _) in PHYSICAL_JOBS {
        let pod = job_pod(name);
        let steps = pod.init_containers.iter().flatten().chain(&pod.containers);
        for c in steps.filter(|c| c.name != "dashctl") {
            out.push((format!("{name}/{}", c.name), pod.clone(), c.clone()));
        }
    }
    out
}

#[test]
fn the_repository_is_one_read_write_many_claim_every_pgbackrest_container_writes() {
    let claim: PersistentVolumeClaim = get("PersistentVolumeClaim", "postgres-pgbackrest");
    let modes = claim.spec.unwrap().access_modes.unwrap();
    assert_eq!(
        modes,
        ["ReadWriteMany"],
        "two nodes archive into it at once"
    );

    let containers = pgbackrest_containers();
    assert_eq!(containers.len(), 6, "2 agents, 2 jobs x (backup, verify)");
    for (at, pod, c) in &containers {
        let repo = volume(pod, c, REPO).unwrap_or_else(|| panic!("{at}: {REPO} writable"));
        let claim = repo
            .persistent_volume_claim
            .as_ref()
            .map(|p| &*p.claim_name);
        assert_eq!(claim, Some("postgres-pgbackrest"), "{at}");

        let mounts = c.volume_mounts.iter().flatten();
        let conf = mounts
            .into_iter()
            .find(|m| m.mount_path == "/etc/pgbackrest");
        let conf = conf.unwrap_or_else(|| panic!("{at}: config mounted"));
        let conf = pod.volumes.iter().flatten().find(|v| v.name == conf.name);
        let map = conf.and_then(|v| v.config_map.as_ref()).map(|m| &*m.name);
        assert_eq!(map, Some("dash-pgbackrest"), "{at}");

        assert_eq!(env(c, "DASH_PGBACKREST_CONFIG"), CONFIG, "{at}");
        assert_eq!(env(c, "DASH_PGBACKREST_STANZA"), "dash", "{at}");
    }
    assert!(config().contains_key("dash"), "the stanza's section");
}

#[test]
fn pgbackrest_writes_its_logs_locks_and_spool_to_an_empty_dir_not_the_root() {
    let config = config();
    let global = &config["global"];
    assert_eq!(global["repo1-path"], REPO);
    assert_eq!(global["repo1-retention-full"], "2");
    assert_eq!(global["compress-type"], "zst");
    assert_eq!(global["compress-level"], "1");
    assert_eq!(global["start-fast"], "y");
    // Standbys archive too: the default check refuses archive_mode=always.
    assert_eq!(global["archive-mode-check"], "n");
    for (at, pod, c) in pgbackrest_containers() {
        for key in ["log-path", "lock-path", "spool-path"] {
            let path = &global[key];
            let volume = volume(&pod, &c, path);
            let volume = volume.unwrap_or_else(|| panic!("{at}: {key} {path} is not a mount"));
            assert!(volume.empty_dir.is_some(), "{at}: {key} on {}", volume.name);
        }
        let root = c
            .security_context
            .as_ref()
            .unwrap()
            .read_only_root_filesystem;
        assert_eq!(root, Some(true), "{at}");
    }
}

#[test]
fn physical_backups_go_through_the_primarys_agent_from_any_node_then_verify() {
    let dash_config: ConfigMap = get("ConfigMap", "dash-config");
    let keys = dash_config.data.unwrap();
    assert!(keys.contains_key("DASH_ETCD_ENDPOINTS"));
    // Else dash-api and the logical job would see a repository too.
    assert!(!keys.contains_key("DASH_PGBACKREST_CONFIG"));

    let mut schedules = Vec::new();
    for (name, kind) in PHYSICAL_JOBS {
        let job: CronJob = get("CronJob", name);
        let spec = job.spec.as_ref().unwrap();
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"), "{name}");
        schedules.push(spec.schedule.clone());
        let pod = job_pod(name);
        // No pod pinning: this pod has no data directory to be near.
        assert!(pod.affinity.is_none(), "{name}: affinity");
        assert!(
            pod.node_selector.is_none() && pod.node_name.is_none(),
            "{name}"
        );

        // The backup finishes (an init container) before verify starts.
        let inits = pod.init_containers.as_ref().unwrap();
        let backup = inits.last().unwrap();
        let command = backup.command.clone().unwrap().join(" ");
        assert_eq!(backup.name, "backup", "{name}");
        assert!(
            command.ends_with(&format!("dashctl db backup --type {kind}")),
            "{name}: {command}"
        );
        assert_eq!(pod.containers.len(), 1, "{name}");
        let verify = &pod.containers[0];
        let command = verify.command.clone().unwrap().join(" ");
        assert!(
            command.ends_with("dashctl db verify-backup"),
            "{name}: {command}"
        );

        for c in [backup, verify] {
            // The primary's agent through etcd: dash-config's endpoints.
            let from = c.env_from.iter().flatten();
            let maps: Vec<_> = from.filter_map(|e| e.config_map_ref.as_ref()).collect();
            assert!(maps.iter().any(|m| m.name == "dash-config"), "{name}");
            // verify-backup starts a server: the binaries and room for it.
            assert_eq!(env(c, "DASH_PG_BINDIR"), "/usr/lib/postgresql/15/bin");
            let scratch = env(c, "DASH_PG_TEST_TMPDIR");
            let volume = volume(&pod, c, &scratch);
            let volume = volume.unwrap_or_else(|| panic!("{name}: {scratch} writable"));
            assert!(volume.ephemeral.is_some(), "{name}: a claim, not node disk");
            let image = c.image.as_deref().unwrap();
            assert!(image.starts_with("dash-postgres:"), "{name}: {image}");
        }
    }
    assert_ne!(schedules[0], schedules[1]);
}

#[test]
fn the_agents_and_the_physical_backup_jobs_share_the_node_token() {
    use k8s_openapi::api::core::v1::Secret;
    let secret: Secret = get("Secret", "dash-secrets");
    let keys = secret.string_data.unwrap();
    assert!(keys.contains_key("DASH_NODE_TOKEN"), "dash-secrets");
    for name in ["postgres", "postgres-replica"] {
        let set: StatefulSet = get("StatefulSet", name);
        let agent = container(pod_spec(&set), "postgres");
        assert_eq!(
            env(agent, "DASH_NODE_TOKEN"),
            "secret:dash-secrets/DASH_NODE_TOKEN",
            "{name}: POST /backup refuses everyone without it"
        );
    }
    for (name, _) in PHYSICAL_JOBS {
        let pod = job_pod(name);
        let backup = pod.init_containers.iter().flatten().last().unwrap();
        let from = backup.env_from.iter().flatten();
        let secrets: Vec<_> = from.filter_map(|e| e.secret_ref.as_ref()).collect();
        assert!(
            secrets.iter().any(|s| s.name == "dash-secrets"),
            "{name}: the backup step sends DASH_NODE_TOKEN"
        );
    }
}

#[test]
fn the_logical_dumps_for_the_runbooks_pg_restore_line_keep_coming() {
    let pod = job_pod("postgres-backup");
    let c = &pod.containers[0];
    let args = c.args.clone().unwrap().join(" ");
    assert!(args.starts_with("db backup --logical"), "{args}");
    assert!(args.contains("--dir /backups/dash/postgres"), "{args}");
    let dumps = volume(&pod, c, "/backups/dash/postgres").expect("dumps writable");
    let claim = dumps.persistent_volume_claim.as_ref().unwrap();
    assert_eq!(claim.claim_name, "postgres-backups");
    let set: StatefulSet = get("StatefulSet", "postgres");
    let agent = container(pod_spec(&set), "postgres");
    let mounts = agent.volume_mounts.iter().flatten();
    let paths: Vec<&str> = mounts.map(|m| &*m.mount_path).collect();
    assert!(
        paths.contains(&"/backups/dash/postgres"),
        "postgres-0 reads them"
    );
}

#[test]
fn the_backup_jobs_reach_every_agents_node_api() {
    let headless: Service = get("Service", "postgres-headless");
    let ports = headless.spec.unwrap().ports.unwrap();
    let api = ports
        .iter()
        .find(|p| p.port == 8008)
        .expect("8008 published");
    assert_eq!(
        api.target_port,
        Some(IntOrString::String("node-api".into()))
    );
    // No policy in the way; one added must let the backup pods reach 8008.
    let policies = objects();
    let policies: Vec<_> = policies
        .iter()
        .filter(|(_, d)| d["kind"] == "NetworkPolicy")
        .collect();
    assert!(
        policies.is_empty(),
        "a NetworkPolicy: allow app.kubernetes.io/name=postgres-pgbackrest-backup \
         to the database pods' 8008 and etcd's 2379, then change this test"
    );
}
