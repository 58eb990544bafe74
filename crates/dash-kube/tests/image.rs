//! Image hygiene: the Dockerfile and every container of deploy/kubernetes.
//! Every base image and every `image:` is pinned to an exact version (a
//! digest may follow: `tag@sha256:<64 hex>`), never to a moving tag; the
//! PostgreSQL major is set once, the Dockerfile's `ARG PG_MAJOR`, and the
//! server image and its bindir follow it; the image has a HEALTHCHECK on
//! `/livez`; every container runs on a read-only root filesystem, and each
//! that runs Dash has HOME and /tmp on writable volumes. The database image
//! (deploy/postgres/Dockerfile) is the server image plus pgBackRest, tagged
//! as its base wherever it is named.
//!
//! The checks are in image_checks/; the tests below also break a copy of
//! the real files, one slip at a time, and require each check to fail.

// Shared with manifests.rs; this file uses only the readers.
#[allow(dead_code)]
mod deploy_objects;
mod image_checks;

use std::path::Path;

use deploy_objects::{dir, objects, yaml};
use image_checks::database_image::database_image_problems;
use image_checks::dockerfile::{dockerfile_problems, Dockerfile};
use image_checks::pods::{kustomize_problems, manifest_problems};
use image_checks::reference::pinned;
use serde_json::Value;

fn dockerfile() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../Dockerfile");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

fn database_dockerfile() -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/postgres/Dockerfile");
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// The kustomization's objects and the hand-applied ops pod.
fn all_objects() -> Vec<(String, Value)> {
    let mut all = objects();
    let ops = "ops/dash-ops.yaml";
    all.extend(
        yaml(&dir().join(ops))
            .into_iter()
            .map(|d| (ops.to_owned(), d)),
    );
    all
}

#[test]
fn the_dockerfile_pins_its_bases_sets_the_pg_major_once_and_checks_livez() {
    let problems = dockerfile_problems(&dockerfile());
    assert!(problems.is_empty(), "Dockerfile:\n{}", problems.join("\n"));
    let file = Dockerfile::parse(&dockerfile());
    assert_eq!(file.base_images().len(), 2, "build and runtime");
    assert_eq!(file.env("HOME").as_deref(), Some("/home/dash"));
}

#[test]
fn every_container_is_pinned_read_only_and_on_the_dockerfiles_pg_major() {
    let problems = manifest_problems(&all_objects(), &dockerfile());
    assert!(
        problems.is_empty(),
        "deploy/kubernetes:\n{}",
        problems.join("\n")
    );
    let kustomization = yaml(&dir().join("kustomization.yaml")).remove(0);
    let problems = kustomize_problems(&kustomization);
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn the_pin_check_refuses_moving_tags_and_malformed_digests() {
    let digest = "0123456789abcdef".repeat(4);
    for exact in [
        "rust:1.95.0-bookworm".to_owned(),
        "debian:12.15-slim".into(),
        "debian:bookworm-20250908-slim".into(),
        "postgres:15.19-bookworm".into(),
        "postgres:15.19".into(),
        "dash-postgres:15.19-bookworm".into(),
        "quay.io/coreos/etcd:v3.5.27".into(),
        "quay.io/prometheuscommunity/postgres-exporter:v0.15.0".into(),
        "dash:0.1.0".into(),
        "registry.example:5000/team/dash:0.1.0".into(),
        format!("rust:1.95.0-bookworm@sha256:{digest}"),
    ] {
        assert!(pinned(&exact).is_ok(), "{exact}: {:?}", pinned(&exact));
    }
    for moving in [
        "rust".to_owned(),
        "rust:latest".into(),
        "rust:1".into(),
        "rust:1-bookworm".into(),
        "rust:1.95-bookworm".into(),
        "rust:bookworm".into(),
        "debian:bookworm-slim".into(),
        "debian:12-slim".into(),
        "debian:stable-slim".into(),
        "postgres:15".into(),
        "postgres:15-bookworm".into(),
        "dash-postgres:15-bookworm".into(),
        "quay.io/coreos/etcd:v3.5".into(),
        "registry.example:5000/dash".into(),
        format!("rust@sha256:{digest}"),
        "rust:1.95.0-bookworm@sha256:abc".into(),
        format!("rust:1.95.0-bookworm@sha256:{}", digest.to_uppercase()),
        format!("rust:1.95.0-bookworm@sha512:{digest}"),
    ] {
        assert!(pinned(&moving).is_err(), "{moving} passed");
    }
    let image = pinned("registry.example:5000/team/dash:0.1.0").unwrap();
    assert_eq!(
        (image.name, image.tag, image.repo(), image.digest),
        ("registry.example:5000/team/dash", "0.1.0", "dash", None)
    );
    let reference = format!("quay.io/coreos/etcd:v3.5.27@sha256:{digest}");
    let image = pinned(&reference).unwrap();
    assert_eq!(
        (image.tag, image.digest),
        ("v3.5.27", Some(&*format!("sha256:{digest}")))
    );
}

/// The real Dockerfile with one slip fails the check.
#[test]
fn the_dockerfile_check_fails_on_each_kind_of_slip() {
    let real = dockerfile();
    let runtime = Dockerfile::parse(&real).base_images()[1].to_owned();
    let replace = |from: &str, to: &str| {
        assert!(real.contains(from), "{from} is not in the Dockerfile");
        real.replacen(from, to, 1)
    };
    let healthcheck = real.find("\nHEALTHCHECK ").expect("HEALTHCHECK") + 1;
    let end = healthcheck + real[healthcheck..].find("exit 1\n").unwrap() + 7;
    let slips = [
        (
            "floating runtime",
            replace(&format!("FROM {runtime}\n"), "FROM debian:bookworm-slim\n"),
        ),
        (
            "floating build",
            replace("FROM rust:1.95.0-bookworm AS", "FROM rust:1-bookworm AS"),
        ),
        (
            "another Debian",
            replace(&format!("FROM {runtime}\n"), "FROM debian:13.2-slim\n"),
        ),
        (
            "major written out",
            replace("\"postgresql-client-${PG_MAJOR}\"", "postgresql-client-15"),
        ),
        (
            "no PG_MAJOR",
            replace("ARG PG_MAJOR=15", "ARG PG_VERSION=15"),
        ),
        (
            "no healthcheck",
            format!("{}{}", &real[..healthcheck], &real[end..]),
        ),
        ("other endpoint", replace("/livez\"", "/ready\"")),
        (
            "no HOME",
            replace("ENV HOME=/home/dash", "ENV LANG=C.UTF-8"),
        ),
        (
            "workdir off HOME",
            replace("WORKDIR /home/dash", "WORKDIR /srv"),
        ),
        ("root", replace("USER 10001:10001", "USER root")),
    ];
    for (slip, broken) in slips {
        assert!(!dockerfile_problems(&broken).is_empty(), "{slip} passed");
    }
}

/// `doc`'s first container (of a Deployment's or StatefulSet's pod).
fn first_container(doc: &mut Value) -> &mut Value {
    let pod = match doc["kind"].as_str() {
        Some("CronJob") => &mut doc["spec"]["jobTemplate"]["spec"]["template"]["spec"],
        _ => &mut doc["spec"]["template"]["spec"],
    };
    &mut pod["containers"][0]
}

fn set_env(container: &mut Value, name: &str, value: &str) {
    let env = container["env"].as_array_mut().unwrap();
    let var = env.iter_mut().find(|e| e["name"] == name).unwrap();
    var["value"] = value.into();
}

/// The real manifests with one slip fail the check.
#[test]
fn the_manifest_check_fails_on_each_kind_of_slip() {
    let real = all_objects();
    let file = dockerfile();
    type Slip = fn(&mut Value);
    let slips: [(&str, &str, &str, Slip); 11] = [
        ("floating server", "StatefulSet", "postgres", |c| {
            c["image"] = "postgres:15-bookworm".into()
        }),
        ("another major", "StatefulSet", "postgres-replica", |c| {
            c["image"] = "postgres:16.10-bookworm".into()
        }),
        ("another Debian", "StatefulSet", "postgres", |c| {
            c["image"] = "postgres:15.19-trixie".into()
        }),
        ("floating database image", "StatefulSet", "postgres", |c| {
            c["image"] = "dash-postgres:15-bookworm".into()
        }),
        (
            "database image of another major",
            "CronJob",
            "postgres-pgbackrest-diff",
            |c| c["image"] = "dash-postgres:16.10-bookworm".into(),
        ),
        ("untagged etcd", "StatefulSet", "etcd", |c| {
            c["image"] = "quay.io/coreos/etcd".into()
        }),
        ("writable root", "Deployment", "dash-api", |c| {
            c["securityContext"]["readOnlyRootFilesystem"] = false.into()
        }),
        ("no HOME volume", "Deployment", "dash-api", |c| {
            let mounts = c["volumeMounts"].as_array_mut().unwrap();
            mounts.retain(|m| m["mountPath"] != "/home/dash");
        }),
        ("HOME read-only", "CronJob", "postgres-backup", |c| {
            let mounts = c["volumeMounts"].as_array_mut().unwrap();
            let home = mounts.iter_mut().find(|m| m["mountPath"] == "/home/dash");
            home.unwrap()["readOnly"] = true.into();
        }),
        ("agent's HOME elsewhere", "StatefulSet", "postgres", |c| {
            set_env(c, "HOME", "/home/postgres")
        }),
        ("bindir of another major", "StatefulSet", "postgres", |c| {
            set_env(c, "DASH_PG_BINDIR", "/usr/lib/postgresql/16/bin")
        }),
    ];
    for (slip, kind, name, change) in slips {
        let mut objects = real.clone();
        let (_, doc) = objects
            .iter_mut()
            .find(|(_, d)| d["kind"] == kind && d["metadata"]["name"] == name)
            .unwrap();
        change(first_container(doc));
        assert!(
            !manifest_problems(&objects, &file).is_empty(),
            "{slip} passed"
        );
    }
    // The Dockerfile's major moving alone fails too: the server must follow.
    let other_major = file.replacen("ARG PG_MAJOR=15", "ARG PG_MAJOR=16", 1);
    assert_ne!(other_major, file);
    assert!(
        !manifest_problems(&real, &other_major).is_empty(),
        "PG_MAJOR moved alone"
    );

    let floating = serde_json::json!({"images": [{"name": "dash", "newTag": "latest"}]});
    assert!(!kustomize_problems(&floating).is_empty());
    let digest = format!("sha256:{}", "ab".repeat(32));
    let pinned = serde_json::json!({"images": [{"name": "dash", "newName": "r.example/dash",
        "newTag": "0.1.0", "digest": digest}]});
    assert!(kustomize_problems(&pinned).is_empty());
}

#[test]
fn the_database_image_is_the_server_image_plus_pgbackrest_under_its_tag() {
    let kustomization = yaml(&dir().join("kustomization.yaml")).remove(0);
    let (file, objects) = (database_dockerfile(), all_objects());
    let problems = database_image_problems(&file, &objects, &kustomization);
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    let replace = |from: &str, to: &str| {
        assert!(
            file.contains(from),
            "{from} is not in deploy/postgres/Dockerfile"
        );
        file.replacen(from, to, 1)
    };
    let slips = [
        (
            "a newer base alone",
            replace(
                "FROM postgres:15.19-bookworm",
                "FROM postgres:15.20-bookworm",
            ),
        ),
        (
            "a floating base",
            replace("FROM postgres:15.19-bookworm", "FROM postgres:15-bookworm"),
        ),
        ("no pgBackRest", replace(" pgbackrest \\", " \\")),
        (
            "dashctl off PATH",
            replace("ENV PATH=/dash/bin:", "ENV PATH="),
        ),
    ];
    for (slip, broken) in slips {
        let problems = database_image_problems(&broken, &objects, &kustomization);
        assert!(!problems.is_empty(), "{slip} passed");
    }
    // One manifest or the kustomization moving alone fails too.
    let mut moved = objects.clone();
    let (_, job) = moved
        .iter_mut()
        .find(|(_, d)| d["metadata"]["name"] == "postgres-pgbackrest-full")
        .unwrap();
    first_container(job)["image"] = "dash-postgres:15.20-bookworm".into();
    assert!(!database_image_problems(&file, &moved, &kustomization).is_empty());
    let mut retagged = kustomization.clone();
    let images = retagged["images"].as_array_mut().unwrap();
    let entry = images.iter_mut().find(|e| e["name"] == "dash-postgres");
    entry.unwrap()["newTag"] = "15.20-bookworm".into();
    assert!(!database_image_problems(&file, &objects, &retagged).is_empty());
}
