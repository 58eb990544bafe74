//! deploy/postgres/Dockerfile, the database image: the upstream server image
//! plus pgBackRest, tagged as its base, with the dashctl the pods copy in on
//! its PATH; and every `dash-postgres` reference (manifests, kustomization)
//! naming that tag.

use serde_json::Value;

use super::dockerfile::Dockerfile;
use super::pods::pod_specs;
use super::reference::pinned;

/// The database image's repository name.
pub const DATABASE_IMAGE: &str = "dash-postgres";

/// What is wrong with the database image's Dockerfile and its references.
pub fn database_image_problems(
    dockerfile: &str,
    objects: &[(String, Value)],
    kustomization: &Value,
) -> Vec<String> {
    let file = Dockerfile::parse(dockerfile);
    let mut problems = Vec::new();
    let base = match file.base_images()[..] {
        [base] => pinned(base).map_err(|e| problems.push(e)).ok(),
        ref bases => {
            problems.push(format!("one FROM, the postgres image, not {bases:?}"));
            None
        }
    };
    let tag = base.and_then(|image| match image.name {
        "postgres" => Some(image.tag),
        name => {
            problems.push(format!("built FROM {name}, not the postgres image"));
            None
        }
    });

    let installs = file.runtime().iter().any(|i| {
        i.keyword == "RUN"
            && i.args.contains("apt-get install")
            && i.args.split_whitespace().any(|w| w == "pgbackrest")
    });
    if !installs {
        problems.push("no `apt-get install ... pgbackrest`".into());
    }
    let path = file.env("PATH").unwrap_or_default();
    if !path.starts_with("/dash/bin:") || !path.ends_with("$PATH") {
        problems.push(format!("PATH {path:?} is not /dash/bin before the base's"));
    }

    // Every pod that runs it, and the kustomization, name the base's tag.
    let mut uses = 0;
    for (at, pod) in pod_specs(objects) {
        let containers = pod.init_containers.iter().flatten().chain(&pod.containers);
        for c in containers {
            let reference = c.image.clone().unwrap_or_default();
            let Ok(image) = pinned(&reference) else {
                continue;
            };
            if image.repo() == DATABASE_IMAGE {
                uses += 1;
                if Some(image.tag) != tag {
                    problems.push(format!("{at}: {reference} is not the tag of {tag:?}"));
                }
            }
        }
    }
    if uses < 3 {
        problems.push(format!("{uses} containers run {DATABASE_IMAGE}"));
    }
    let entries = kustomization["images"].as_array().into_iter().flatten();
    let set = entries.filter(|e| e["name"] == DATABASE_IMAGE);
    let tags: Vec<&str> = set.filter_map(|e| e["newTag"].as_str()).collect();
    if tags.len() != 1 || Some(tags[0]) != tag {
        problems.push(format!(
            "kustomization.yaml sets {DATABASE_IMAGE} to {tags:?}"
        ));
    }
    problems
}
