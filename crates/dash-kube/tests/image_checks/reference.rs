//! Image references: split up, and whether they name one release.

/// An image reference split up: `name:tag` and, if pinned, its digest.
#[derive(Debug, PartialEq)]
pub struct ImageRef<'a> {
    pub name: &'a str,
    pub tag: &'a str,
    pub digest: Option<&'a str>,
}

impl ImageRef<'_> {
    /// The repository's last path segment: `etcd` for `quay.io/coreos/etcd`.
    pub fn repo(&self) -> &str {
        self.name.rsplit('/').next().unwrap()
    }
}

/// Parses `reference` and requires an exact version: a tag (kept even with a
/// digest, so a reader sees what it is) that no later release moves, and, if
/// present, a well-formed sha256 digest.
pub fn pinned(reference: &str) -> Result<ImageRef<'_>, String> {
    let err = |why: &str| Err(format!("{reference}: {why}"));
    let (named, digest) = match reference.split_once('@') {
        Some((named, digest)) => (named, Some(digest)),
        None => (reference, None),
    };
    if let Some(digest) = digest {
        let hex = digest.strip_prefix("sha256:").unwrap_or("");
        let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
        if hex.len() != 64 || !hex.chars().all(lower_hex) {
            return err("a digest is sha256: and 64 lower-case hex digits");
        }
    }
    // A ':' before the last '/' is a registry's port, not a tag.
    let last_slash = named.rfind('/').map_or(0, |i| i + 1);
    let Some((name, tag)) = named[last_slash..]
        .split_once(':')
        .map(|(n, t)| (&named[..last_slash + n.len()], t))
    else {
        return err("no tag (means `latest`)");
    };
    let image = ImageRef { name, tag, digest };
    exact_version(image.repo(), tag).map_err(|why| format!("{reference}: {why}"))?;
    Ok(image)
}

/// The leading version of a tag (`v3.5.27` → [3, 5, 27]) and what follows
/// it (`-bookworm`); `None` when the tag does not start with a version.
pub fn version(tag: &str) -> Option<(Vec<u32>, &str)> {
    let digits = tag.strip_prefix('v').unwrap_or(tag);
    let end = digits
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(digits.len());
    let numbers = digits[..end]
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<Vec<u32>>>()?;
    let rest = &digits[end..];
    (rest.is_empty() || rest.starts_with('-')).then_some((numbers, rest))
}

/// The PostgreSQL server images: upstream's, and Dash's with pgBackRest
/// added (deploy/postgres/Dockerfile), which carries its base's tag.
pub const SERVER_IMAGES: [&str; 2] = ["postgres", "dash-postgres"];

/// Whether `tag` names one release of `repo`. PostgreSQL (since 10, and the
/// server images built on it) and Debian number a release major.minor;
/// everything else, semver major.minor.patch. A shorter version (`1`, `1.95`, `15`, `12`) is a
/// series that moves with each release, as is a bare name (`latest`,
/// `bookworm-slim`); Debian's dated tags (`bookworm-20250908-slim`) are exact.
pub fn exact_version(repo: &str, tag: &str) -> Result<(), String> {
    let parts = match repo {
        "debian" => 2,
        repo if SERVER_IMAGES.contains(&repo) => 2,
        _ => 3,
    };
    if repo == "debian" {
        let dated = tag
            .split('-')
            .nth(1)
            .is_some_and(|d| d.len() == 8 && d.chars().all(|c| c.is_ascii_digit()));
        if dated {
            return Ok(());
        }
    }
    match version(tag) {
        Some((numbers, _)) if numbers.len() >= parts => Ok(()),
        Some((numbers, _)) => Err(format!(
            "tag `{tag}` is a {}-part version, a series that moves; \
             pin the {parts}-part release",
            numbers.len()
        )),
        None => Err(format!("tag `{tag}` is not a version, it moves")),
    }
}

/// The Debian release an image tag is built on (`...-bookworm`), the
/// runtime's from its `debian:` tag (`12.15-slim`, `bookworm-20250908-slim`).
pub fn debian_release(image: &ImageRef) -> Option<String> {
    const CODENAMES: [(u32, &str); 3] = [(11, "bullseye"), (12, "bookworm"), (13, "trixie")];
    if image.repo() == "debian" {
        if let Some((numbers, _)) = version(image.tag) {
            let name = CODENAMES.iter().find(|(n, _)| *n == numbers[0])?.1;
            return Some(name.into());
        }
        return image.tag.split('-').next().map(Into::into);
    }
    let names = CODENAMES.iter().map(|(_, name)| *name);
    names
        .into_iter()
        .find(|name| image.tag.split('-').any(|part| part == *name))
        .map(Into::into)
}
