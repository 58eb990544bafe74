//! deploy/kubernetes read as the API server would: every object of every
//! file the kustomization lists, into its k8s-openapi type; and the small
//! questions the manifest tests ask of them (what a selector selects, where
//! an env var comes from).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Container, PodSpec};
use k8s_openapi::serde::de::DeserializeOwned;
use k8s_openapi::serde::Deserialize;
use serde_json::Value;

pub fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/kubernetes")
}

/// Every object of every file `kustomization.yaml` lists, with its file.
pub fn objects() -> Vec<(String, Value)> {
    let kustomization: Value = yaml(&dir().join("kustomization.yaml")).remove(0);
    let files = kustomization["resources"].as_array().expect("resources");
    let mut out = Vec::new();
    for file in files {
        let file = file.as_str().unwrap();
        for doc in yaml(&dir().join(file)) {
            out.push((file.to_owned(), doc));
        }
    }
    out
}

pub fn yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_norway::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{path:?}: {e}")))
        .filter(|doc| !doc.is_null())
        .collect()
}

pub fn get<K: DeserializeOwned>(kind: &str, name: &str) -> K {
    let (file, doc) = objects()
        .into_iter()
        .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name} in deploy/kubernetes"));
    serde_json::from_value(doc).unwrap_or_else(|e| panic!("{file}: {kind} {name}: {e}"))
}

pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn pod_spec(set: &StatefulSet) -> &PodSpec {
    set.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

pub fn pod_labels(set: &StatefulSet) -> BTreeMap<String, String> {
    let spec = set.spec.as_ref().unwrap();
    spec.template
        .metadata
        .as_ref()
        .unwrap()
        .labels
        .clone()
        .unwrap()
}

pub fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers.iter().find(|c| c.name == name).unwrap()
}

/// True when `selector` selects a pod labelled `labels`.
pub fn selects(selector: &BTreeMap<String, String>, labels: &BTreeMap<String, String>) -> bool {
    selector.iter().all(|(k, v)| labels.get(k) == Some(v))
}

/// The pod-level env var `name`: its literal value, or its fieldRef path.
pub fn env(c: &Container, name: &str) -> String {
    let var = c.env.iter().flatten().find(|e| e.name == name);
    let var = var.unwrap_or_else(|| panic!("{}: no env {name}", c.name));
    if let Some(value) = &var.value {
        return value.clone();
    }
    let from = var.value_from.as_ref().unwrap();
    if let Some(field) = &from.field_ref {
        return format!("fieldRef:{}", field.field_path);
    }
    if let Some(cm) = &from.config_map_key_ref {
        return format!("configMap:{}/{}", cm.name, cm.key);
    }
    let secret = from.secret_key_ref.as_ref().unwrap();
    format!("secret:{}/{}", secret.name, secret.key)
}

/// The scheduling rule every database pod carries: never two on one node.
pub fn required_anti_affinity(pod: &PodSpec) -> (String, BTreeMap<String, String>) {
    let anti = pod
        .affinity
        .as_ref()
        .unwrap()
        .pod_anti_affinity
        .as_ref()
        .unwrap();
    let terms = anti
        .required_during_scheduling_ignored_during_execution
        .as_ref()
        .expect("required, not preferred");
    assert_eq!(terms.len(), 1);
    let selector = terms[0].label_selector.as_ref().unwrap();
    let labels = selector.match_labels.clone().unwrap();
    (terms[0].topology_key.clone(), labels)
}

/// Where `written` differs from `read`, as a path (`spec.template...`).
pub fn first_difference(written: &Value, read: &Value, path: String) -> Option<String> {
    match (written, read) {
        (Value::Object(w), Value::Object(r)) => w.iter().find_map(|(key, value)| {
            let path = format!("{path}.{key}");
            match r.get(key) {
                Some(back) => first_difference(value, back, path),
                None => Some(path),
            }
        }),
        (Value::Array(w), Value::Array(r)) if w.len() == r.len() => w
            .iter()
            .zip(r)
            .enumerate()
            .find_map(|(i, (w, r))| first_difference(w, r, format!("{path}[{i}]"))),
        (w, r) if w == r => None,
        _ => Some(path),
    }
}

/// The object read into its k8s-openapi type and written back: a field the
/// API does not know (a typo, a wrong level) is dropped on the way.
pub fn typed_round_trip(doc: &Value) -> Value {
    use k8s_openapi::api::{apps, batch, core, networking, policy, rbac};
    fn via<K: DeserializeOwned + k8s_openapi::serde::Serialize>(doc: &Value) -> Value {
        let typed: K = serde_json::from_value(doc.clone()).unwrap();
        serde_json::to_value(typed).unwrap()
    }
    match doc["kind"].as_str().unwrap() {
        "Namespace" => via::<core::v1::Namespace>(doc),
        "Pod" => via::<core::v1::Pod>(doc),
        "ConfigMap" => via::<core::v1::ConfigMap>(doc),
        "Secret" => via::<core::v1::Secret>(doc),
        "Service" => via::<core::v1::Service>(doc),
        "ServiceAccount" => via::<core::v1::ServiceAccount>(doc),
        "PersistentVolumeClaim" => via::<core::v1::PersistentVolumeClaim>(doc),
        "Deployment" => via::<apps::v1::Deployment>(doc),
        "StatefulSet" => via::<apps::v1::StatefulSet>(doc),
        "CronJob" => via::<batch::v1::CronJob>(doc),
        "Ingress" => via::<networking::v1::Ingress>(doc),
        "PodDisruptionBudget" => via::<policy::v1::PodDisruptionBudget>(doc),
        "Role" => via::<rbac::v1::Role>(doc),
        "RoleBinding" => via::<rbac::v1::RoleBinding>(doc),
        other => panic!("no k8s-openapi type listed for {other}"),
    }
}
