//! The pod templates of deploy/kubernetes, checked against the Dockerfile.

use k8s_openapi::api::core::v1::{Container, PodSpec};
use serde_json::Value;

use super::dockerfile::Dockerfile;
use super::reference::{debian_release, pinned, version, SERVER_IMAGES};

/// Every pod template: (where, its spec).
pub fn pod_specs(objects: &[(String, Value)]) -> Vec<(String, PodSpec)> {
    let mut out = Vec::new();
    for (file, doc) in objects {
        let spec = match doc["kind"].as_str().unwrap_or("") {
            "Pod" => &doc["spec"],
            "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" | "Job" => {
                &doc["spec"]["template"]["spec"]
            }
            "CronJob" => &doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
            _ => continue,
        };
        let name = doc["metadata"]["name"].as_str().unwrap_or("");
        let name = format!("{file}: {} {name}", doc["kind"].as_str().unwrap_or(""));
        let spec = serde_json::from_value(spec.clone()).unwrap_or_else(|e| panic!("{name}: {e}"));
        out.push((name, spec));
    }
    out
}

pub fn env_value(c: &Container, name: &str) -> Option<String> {
    let var = c.env.iter().flatten().find(|e| e.name == name)?;
    var.value.clone()
}

/// Whether `path` is a mount of a volume the container may write.
pub fn writable(pod: &PodSpec, c: &Container, path: &str) -> bool {
    let Some(mount) = c
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.mount_path == path)
    else {
        return false;
    };
    let volume = pod.volumes.iter().flatten().find(|v| v.name == mount.name);
    let writable_kind = volume.is_some_and(|v| {
        v.empty_dir.is_some() || v.persistent_volume_claim.is_some() || v.ephemeral.is_some()
    });
    mount.read_only != Some(true) && writable_kind
}

/// What is wrong with the pods of `objects`, given the Dockerfile's text.
pub fn manifest_problems(objects: &[(String, Value)], dockerfile: &str) -> Vec<String> {
    let file = Dockerfile::parse(dockerfile);
    let pg_major = file.global_arg("PG_MAJOR").unwrap_or_default();
    let runtime_release = file
        .base_images()
        .last()
        .and_then(|i| pinned(i).ok())
        .and_then(|i| debian_release(&i));
    let image_home = file.env("HOME");
    let mut problems = Vec::new();
    let (mut dash, mut servers) = (0, 0);

    for (where_, pod) in pod_specs(objects) {
        let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
        for c in containers {
            let at = format!("{where_}: container {}", c.name);
            let reference = c.image.clone().unwrap_or_default();
            let image = match pinned(&reference) {
                Ok(image) => image,
                Err(e) => {
                    problems.push(format!("{at}: {e}"));
                    continue;
                }
            };
            let read_only = c
                .security_context
                .as_ref()
                .and_then(|s| s.read_only_root_filesystem);
            if read_only != Some(true) {
                problems.push(format!("{at}: no readOnlyRootFilesystem: true"));
            }

            let command = c.command.clone().unwrap_or_default();
            let runs_dashctl = command.first().is_some_and(|c| c.ends_with("/dashctl"));
            // The init container that only copies dashctl out writes nothing
            // but its target volume.
            let copies = command.first().is_some_and(|c| c == "cp");
            if (image.repo() == "dash" || runs_dashctl) && !copies {
                dash += 1;
                let home = env_value(c, "HOME").or_else(|| {
                    (image.repo() == "dash")
                        .then(|| image_home.clone())
                        .flatten()
                });
                match home {
                    Some(home) if writable(&pod, c, &home) => {}
                    home => problems.push(format!("{at}: HOME {home:?} is not a writable volume")),
                }
                if !writable(&pod, c, "/tmp") {
                    problems.push(format!("{at}: /tmp is not a writable volume"));
                }
            }

            if SERVER_IMAGES.contains(&image.repo()) {
                servers += 1;
                let major = version(image.tag).map(|(n, _)| n[0].to_string());
                if major.as_deref() != Some(pg_major.as_str()) {
                    problems.push(format!(
                        "{at}: server {reference} is not the Dockerfile's PG_MAJOR {pg_major}"
                    ));
                }
                let bindir = format!("/usr/lib/postgresql/{pg_major}/bin");
                if env_value(c, "DASH_PG_BINDIR").is_some_and(|b| b != bindir) {
                    problems.push(format!("{at}: DASH_PG_BINDIR is not {bindir}"));
                }
                // It runs the dashctl built on the Dockerfile's release.
                if runs_dashctl && debian_release(&image) != runtime_release {
                    problems.push(format!("{at}: {reference} is not on {runtime_release:?}"));
                }
            }
        }
    }
    if dash < 4 || servers < 2 {
        problems.push(format!(
            "found {dash} Dash containers and {servers} PostgreSQL servers"
        ));
    }
    problems
}

/// kustomization.yaml's `images:`: the tag it sets, and a digest if any.
pub fn kustomize_problems(kustomization: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    for entry in kustomization["images"].as_array().into_iter().flatten() {
        let name = entry["newName"]
            .as_str()
            .or(entry["name"].as_str())
            .unwrap_or("");
        let mut reference = format!("{name}:{}", entry["newTag"].as_str().unwrap_or(""));
        if let Some(digest) = entry["digest"].as_str() {
            reference = format!("{reference}@{digest}");
        }
        if let Err(e) = pinned(&reference) {
            problems.push(format!("kustomization.yaml images: {e}"));
        }
    }
    problems
}
