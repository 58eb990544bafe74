//! The Kubernetes manifests (deploy/kubernetes) agree with the runbook's
//! names and with what RoleLabeler does: the Services select on the label it
//! writes, the pods' ServiceAccount may do what it sends (get, patch pods)
//! and nothing more, and the agents and etcd are laid out for a failover.
//! Every object is read into its k8s-openapi type, as the API server would.

mod deploy_objects;

use dash_kube::{PodRole, ROLE_LABEL};
use deploy_objects::{
    container, dir, env, first_difference, get, labels, objects, pod_labels, pod_spec,
    required_anti_affinity, selects, typed_round_trip, yaml,
};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

const DATABASE_SETS: [&str; 2] = ["postgres", "postgres-replica"];

#[test]
fn every_object_has_only_known_fields_and_lives_in_namespace_dash() {
    let mut objects = objects();
    assert!(objects.len() >= 20, "{} objects", objects.len());
    // Applied by hand, not through the kustomization.
    let ops = "ops/dash-ops.yaml";
    objects.extend(
        yaml(&dir().join(ops))
            .into_iter()
            .map(|d| (ops.to_owned(), d)),
    );
    for (file, doc) in &objects {
        let kind = doc["kind"].as_str().unwrap();
        if kind != "Namespace" {
            assert_eq!(doc["metadata"]["namespace"], "dash", "{file}: {kind}");
        }
        let text = doc.to_string();
        assert!(
            !text.contains("postgres-scripts"),
            "{file}: the old scripts"
        );
        let name = doc["metadata"]["name"].as_str().unwrap();
        if let Some(path) = first_difference(doc, &typed_round_trip(doc), String::new()) {
            panic!("{file}: {kind} {name}: {path} is not a field k8s-openapi knows");
        }
    }
}

#[test]
fn services_select_the_database_pods_by_the_label_the_agent_writes() {
    let sets: Vec<StatefulSet> = DATABASE_SETS
        .iter()
        .map(|n| get("StatefulSet", n))
        .collect();
    for (service, role) in [
        ("postgres", PodRole::Primary),
        ("postgres-replica", PodRole::Replica),
    ] {
        let svc: Service = get("Service", service);
        let spec = svc.spec.unwrap();
        let selector = spec.selector.unwrap();
        assert_eq!(
            selector,
            labels(&[
                ("app.kubernetes.io/name", "postgres"),
                (ROLE_LABEL, role.as_str())
            ]),
            "{service}"
        );
        let ports = spec.ports.unwrap();
        assert_eq!(ports[0].port, 5432, "{service}");
        for set in &sets {
            let mut labelled = pod_labels(set);
            assert!(!labelled.contains_key(ROLE_LABEL), "only the agent sets it");
            assert!(!selects(&selector, &labelled), "{service} before labelling");
            labelled.insert(ROLE_LABEL.into(), role.as_str().into());
            assert!(selects(&selector, &labelled), "{service} after labelling");
        }
    }

    let headless: Service = get("Service", "postgres-headless");
    let spec = headless.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    assert_eq!(spec.publish_not_ready_addresses, Some(true));
    for set in &sets {
        assert!(selects(spec.selector.as_ref().unwrap(), &pod_labels(set)));
        let set_spec = set.spec.as_ref().unwrap();
        assert_eq!(set_spec.service_name.as_deref(), Some("postgres-headless"));
    }
}

#[test]
fn database_pods_run_the_agent_with_its_flags_and_identity() {
    for name in DATABASE_SETS {
        let set: StatefulSet = get("StatefulSet", name);
        let spec = set.spec.as_ref().unwrap();
        assert_eq!(spec.replicas, Some(1), "{name}: pod {name}-0");
        let claim = &spec.volume_claim_templates.as_ref().unwrap()[0];
        assert_eq!(claim.metadata.name.as_deref(), Some("postgres-storage"));
        let pod = pod_spec(&set);
        assert_eq!(pod.service_account_name.as_deref(), Some("dash-node"));
        assert_ne!(pod.automount_service_account_token, Some(false));

        let agent = container(pod, "postgres");
        let command = agent.command.clone().unwrap().join(" ");
        assert!(command.ends_with("dashctl node"), "{name}: {command}");
        let ports: Vec<i32> = agent
            .ports
            .iter()
            .flatten()
            .map(|p| p.container_port)
            .collect();
        assert_eq!(ports, [5432, 8008], "{name}");
        let probe = agent.readiness_probe.as_ref().unwrap().http_get.as_ref();
        let probe = probe.expect("readiness is an HTTP GET");
        assert_eq!(probe.path.as_deref(), Some("/health"));
        assert_eq!(probe.port, IntOrString::String("node-api".into()));
        assert!(agent
            .ports
            .iter()
            .flatten()
            .any(|p| p.name.as_deref() == Some("node-api") && p.container_port == 8008));

        assert_eq!(env(agent, "POD_NAME"), "fieldRef:metadata.name");
        assert_eq!(env(agent, "POD_NAMESPACE"), "fieldRef:metadata.namespace");
        assert_eq!(env(agent, "DASH_NODE_NAME"), "fieldRef:metadata.name");
        assert_eq!(env(agent, "DASH_CLUSTER"), "dash");
        assert_eq!(
            env(agent, "DASH_ETCD_ENDPOINTS"),
            "configMap:dash-config/DASH_ETCD_ENDPOINTS"
        );
        assert_eq!(
            env(agent, "DASH_NODE_ADVERTISE"),
            "$(POD_NAME).postgres-headless.$(POD_NAMESPACE).svc.cluster.local"
        );
        assert_eq!(env(agent, "DASH_NODE_PORT"), "8008");
        assert_eq!(env(agent, "DASH_PG_PORT"), "5432");
        assert!(env(agent, "DASH_PG_DATA").starts_with("/var/lib/postgresql/data/"));
        assert_eq!(env(agent, "PGDATA"), env(agent, "DASH_PG_DATA"));
        // The runbook's `kubectl exec ... -- pg_restore -U dash_user -d dash`
        // reaches the server through its socket directory.
        let data = std::path::PathBuf::from(env(agent, "DASH_PG_DATA"));
        assert_eq!(
            std::path::PathBuf::from(env(agent, "PGHOST")),
            dash_pg::socket_dir_for(&data)
        );
        assert_eq!(
            env(agent, "DATABASE_PASSWORD"),
            "secret:dash-secrets/DATABASE_PASSWORD"
        );
        assert_eq!(
            env(agent, "DATABASE_USER"),
            "configMap:dash-config/DATABASE_USER"
        );
        assert_eq!(
            env(agent, "DATABASE_NAME"),
            "configMap:dash-config/DATABASE_NAME"
        );
        container(pod, "postgres-exporter");
    }
}

#[test]
fn database_pods_of_both_statefulsets_never_share_a_node_and_lose_one_at_a_time() {
    let sets: Vec<StatefulSet> = DATABASE_SETS
        .iter()
        .map(|n| get("StatefulSet", n))
        .collect();
    for set in &sets {
        let (topology, selector) = required_anti_affinity(pod_spec(set));
        assert_eq!(topology, "kubernetes.io/hostname");
        assert_eq!(
            selector,
            labels(&[("app.kubernetes.io/component", "database")])
        );
        for other in &sets {
            assert!(
                selects(&selector, &pod_labels(other)),
                "across both StatefulSets"
            );
        }
    }

    let pdb: PodDisruptionBudget = get("PodDisruptionBudget", "postgres");
    let spec = pdb.spec.unwrap();
    assert_eq!(spec.max_unavailable, Some(IntOrString::Int(1)));
    let selector = spec.selector.unwrap().match_labels.unwrap();
    for set in &sets {
        assert!(selects(&selector, &pod_labels(set)));
    }
    let etcd: StatefulSet = get("StatefulSet", "etcd");
    assert!(
        !selects(&selector, &pod_labels(&etcd)),
        "etcd is not a database pod"
    );
}

#[test]
fn the_agents_service_account_may_only_get_and_patch_pods() {
    let role: Role = get("Role", "dash-node");
    let rules = role.rules.unwrap();
    assert_eq!(rules.len(), 1, "{rules:?}");
    let rule = &rules[0];
    assert_eq!(rule.api_groups.as_deref(), Some(&[String::new()][..]));
    assert_eq!(rule.resources.as_deref(), Some(&["pods".to_string()][..]));
    let mut verbs = rule.verbs.clone();
    verbs.sort();
    assert_eq!(verbs, ["get", "patch"]);

    let binding: RoleBinding = get("RoleBinding", "dash-node");
    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "dash-node")
    );
    let subjects = binding.subjects.unwrap();
    assert_eq!(subjects.len(), 1);
    assert_eq!(subjects[0].kind, "ServiceAccount");
    assert_eq!(subjects[0].name, "dash-node");
    assert_eq!(subjects[0].namespace.as_deref(), Some("dash"));
    let _: k8s_openapi::api::core::v1::ServiceAccount = get("ServiceAccount", "dash-node");
}

#[test]
fn etcd_has_three_members_on_three_nodes_and_keeps_its_quorum_through_a_drain() {
    let etcd: StatefulSet = get("StatefulSet", "etcd");
    let spec = etcd.spec.as_ref().unwrap();
    assert_eq!(spec.replicas, Some(3));
    assert_eq!(spec.service_name.as_deref(), Some("etcd"));
    assert_eq!(spec.pod_management_policy.as_deref(), Some("Parallel"));
    assert!(
        !spec.volume_claim_templates.as_ref().unwrap().is_empty(),
        "PVCs"
    );
    let pod = pod_spec(&etcd);
    let (topology, selector) = required_anti_affinity(pod);
    assert_eq!(topology, "kubernetes.io/hostname");
    assert!(selects(&selector, &pod_labels(&etcd)));
    let image = container(pod, "etcd").image.clone().unwrap();
    assert!(
        image.starts_with("quay.io/coreos/etcd:v3.5."),
        "pinned: {image}"
    );

    let svc: Service = get("Service", "etcd");
    let svc = svc.spec.unwrap();
    assert_eq!(svc.cluster_ip.as_deref(), Some("None"));
    assert_eq!(svc.publish_not_ready_addresses, Some(true));
    let ports: Vec<i32> = svc.ports.unwrap().iter().map(|p| p.port).collect();
    assert_eq!(ports, [2379, 2380]);

    let pdb: PodDisruptionBudget = get("PodDisruptionBudget", "etcd");
    let pdb = pdb.spec.unwrap();
    assert_eq!(pdb.min_available, Some(IntOrString::Int(2)));
    assert!(selects(
        &pdb.selector.unwrap().match_labels.unwrap(),
        &pod_labels(&etcd)
    ));
}

#[test]
fn dash_config_names_every_member_and_every_etcd_endpoint() {
    let config: ConfigMap = get("ConfigMap", "dash-config");
    let data = config.data.unwrap();
    let hosts: Vec<&str> = data["DATABASE_HOST"].split(',').collect();
    assert_eq!(
        hosts,
        [
            "postgres-0.postgres-headless.dash.svc.cluster.local",
            "postgres-replica-0.postgres-headless.dash.svc.cluster.local",
        ]
    );
    let endpoints: Vec<String> = (0..3)
        .map(|i| format!("http://etcd-{i}.etcd.dash.svc.cluster.local:2379"))
        .collect();
    assert_eq!(data["DASH_ETCD_ENDPOINTS"], endpoints.join(","));
    for key in ["DATABASE_USER", "DATABASE_NAME", "DATABASE_POOL_SIZE"] {
        assert!(data.contains_key(key), "{key}");
    }
}

#[test]
fn the_api_pods_roll_when_dash_config_changes_in_git() {
    use k8s_openapi::api::apps::v1::Deployment;
    use sha2::{Digest, Sha256};
    let config = std::fs::read(dir().join("configmap.yaml")).unwrap();
    let sum = format!("sha256:{}", hex::encode(Sha256::digest(&config)));
    let api: Deployment = get("Deployment", "dash-api");
    let template = api.spec.unwrap().template.metadata.unwrap();
    let annotations = template.annotations.unwrap();
    assert_eq!(
        annotations["checksum/config"], sum,
        "update checksum/config in dash-api-deployment.yaml"
    );
}
