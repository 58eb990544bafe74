//! The Dockerfile: instructions, stages, and what is wrong with them.

use super::reference::{debian_release, pinned};

/// One instruction, continuation lines joined, comment lines dropped.
#[derive(Debug)]
pub struct Instruction {
    pub keyword: String,
    pub args: String,
}

pub fn instructions(text: &str) -> Vec<Instruction> {
    let mut out = Vec::new();
    let mut current = String::new();
    for line in text.lines() {
        let trimmed = line.trim();
        // As Docker: comment and empty lines are dropped, inside a
        // continuation too.
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (body, continues) = match trimmed.strip_suffix('\\') {
            Some(body) => (body.trim_end(), true),
            None => (trimmed, false),
        };
        if !current.is_empty() && !body.is_empty() {
            current.push(' ');
        }
        current.push_str(body);
        if !continues && !current.is_empty() {
            let (keyword, args) = current.split_once(' ').unwrap_or((&current, ""));
            out.push(Instruction {
                keyword: keyword.to_ascii_uppercase(),
                args: args.trim().to_owned(),
            });
            current.clear();
        }
    }
    out
}

/// `K=V K2="V 2"` (or the legacy `K V`) into pairs.
pub fn env_pairs(args: &str) -> Vec<(String, String)> {
    let first = args.split_whitespace().next().unwrap_or("");
    if !first.contains('=') {
        let (key, value) = args.split_once(' ').unwrap_or((args, ""));
        return vec![(key.to_owned(), value.trim().to_owned())];
    }
    let mut pairs = Vec::new();
    let mut token = String::new();
    let mut quoted = false;
    for c in args.chars().chain([' ']) {
        match c {
            '"' => quoted = !quoted,
            c if c.is_whitespace() && !quoted => {
                if let Some((k, v)) = token.split_once('=') {
                    pairs.push((k.to_owned(), v.to_owned()));
                }
                token.clear();
            }
            c => token.push(c),
        }
    }
    pairs
}

pub struct Dockerfile {
    /// Instructions before the first FROM (global ARGs).
    globals: Vec<Instruction>,
    /// Each stage: its base image, alias and instructions after FROM.
    stages: Vec<(String, Option<String>, Vec<Instruction>)>,
}

impl Dockerfile {
    pub fn parse(text: &str) -> Dockerfile {
        let mut globals = Vec::new();
        let mut stages: Vec<(String, Option<String>, Vec<Instruction>)> = Vec::new();
        for i in instructions(text) {
            if i.keyword == "FROM" {
                let mut words = i.args.split_whitespace().filter(|w| !w.starts_with("--"));
                let image = words.next().unwrap_or("").to_owned();
                let alias = match (words.next(), words.next()) {
                    (Some(as_), Some(alias)) if as_.eq_ignore_ascii_case("as") => {
                        Some(alias.to_owned())
                    }
                    _ => None,
                };
                stages.push((image, alias, Vec::new()));
            } else if let Some(stage) = stages.last_mut() {
                stage.2.push(i);
            } else {
                globals.push(i);
            }
        }
        Dockerfile { globals, stages }
    }

    /// Every FROM that names an image, not an earlier stage or `scratch`.
    pub fn base_images(&self) -> Vec<&str> {
        let mut aliases: Vec<&str> = vec!["scratch"];
        let mut out = Vec::new();
        for (image, alias, _) in &self.stages {
            if !aliases.contains(&image.as_str()) {
                out.push(image.as_str());
            }
            aliases.extend(alias.as_deref());
        }
        out
    }

    pub fn runtime(&self) -> &[Instruction] {
        self.stages.last().map_or(&[], |s| &s.2)
    }

    pub fn global_arg(&self, name: &str) -> Option<String> {
        let found = self.globals.iter().filter(|i| i.keyword == "ARG");
        found
            .filter_map(|i| i.args.split_once('='))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.trim_matches('"').to_owned())
    }

    /// The runtime stage's last value of ENV `name`.
    pub fn env(&self, name: &str) -> Option<String> {
        let envs = self.runtime().iter().filter(|i| i.keyword == "ENV");
        let pairs = envs.flat_map(|i| env_pairs(&i.args));
        pairs.filter(|(k, _)| k == name).map(|(_, v)| v).next_back()
    }

    pub fn last(&self, keyword: &str) -> Option<&Instruction> {
        self.runtime().iter().rev().find(|i| i.keyword == keyword)
    }
}

/// Seconds of a Dockerfile duration (`30s`, `1m`, `1m30s`).
pub fn seconds(duration: &str) -> Option<u64> {
    let (mut total, mut number) = (0, String::new());
    for c in duration.chars() {
        match c {
            '0'..='9' => number.push(c),
            's' | 'm' | 'h' => {
                let unit = match c {
                    's' => 1,
                    'm' => 60,
                    _ => 3600,
                };
                total += number.parse::<u64>().ok()? * unit;
                number.clear();
            }
            _ => return None,
        }
    }
    number.is_empty().then_some(total)
}

/// What is wrong with the Dockerfile `text`.
pub fn dockerfile_problems(text: &str) -> Vec<String> {
    let file = Dockerfile::parse(text);
    let mut problems = Vec::new();
    let mut images = Vec::new();
    for image in file.base_images() {
        match pinned(image) {
            Ok(image) => images.push(image),
            Err(e) => problems.push(format!("FROM {e}")),
        }
    }
    if file.stages.iter().any(|(image, ..)| image.contains('$')) {
        problems.push("a FROM names its image through an ARG: write it out".into());
    }
    // One Debian release for the build, the runtime and (see the manifests)
    // the database pods' image, which runs the binary built here.
    let releases: Vec<Option<String>> = images.iter().map(debian_release).collect();
    if releases.iter().any(Option::is_none) || releases.windows(2).any(|w| w[0] != w[1]) {
        problems.push(format!(
            "FROMs on different (or unknown) Debian releases: {releases:?}"
        ));
    }

    match file.global_arg("PG_MAJOR") {
        Some(major) if major.parse::<u32>().is_ok() => {}
        other => problems.push(format!("no numeric global `ARG PG_MAJOR=<n>`: {other:?}")),
    }
    let runtime = file.runtime();
    let declares = runtime
        .iter()
        .any(|i| i.keyword == "ARG" && i.args == "PG_MAJOR");
    let installs = runtime
        .iter()
        .any(|i| i.keyword == "RUN" && i.args.contains("postgresql-client-${PG_MAJOR}"));
    if !declares || !installs {
        problems.push(
            "the runtime stage must declare `ARG PG_MAJOR` and install \
             postgresql-client-${PG_MAJOR}"
                .into(),
        );
    }
    let all = file
        .globals
        .iter()
        .chain(file.stages.iter().flat_map(|s| &s.2));
    for i in all {
        let fixed = i
            .args
            .match_indices("postgresql-client-")
            .any(|(at, m)| i.args[at + m.len()..].starts_with(|c: char| c.is_ascii_digit()));
        if fixed {
            problems.push(format!(
                "{} {}: a PostgreSQL major written out, not PG_MAJOR",
                i.keyword, i.args
            ));
        }
    }

    match file.last("HEALTHCHECK") {
        None => problems.push("no HEALTHCHECK in the runtime stage".into()),
        Some(check) => problems.extend(healthcheck_problems(&check.args)),
    }

    let home = file.env("HOME");
    match &home {
        Some(home) if home.starts_with('/') && home != "/" => {}
        other => problems.push(format!(
            "ENV HOME is {other:?}: set it to the directory mounted writable"
        )),
    }
    let workdir = file.last("WORKDIR").map(|i| i.args.clone());
    if workdir != home {
        problems.push(format!(
            "WORKDIR {workdir:?} is not HOME {home:?}: `./.dash` (DASH_HOME's default) must be writable"
        ));
    }
    match file
        .last("USER")
        .map(|i| i.args.split(':').next().unwrap_or("").to_owned())
    {
        Some(user) if user != "root" && user != "0" && !user.is_empty() => {}
        other => problems.push(format!("USER {other:?}: run as a non-root user")),
    }
    problems
}

/// `HEALTHCHECK [options] CMD ...` on `/livez` at `DASH_API_PORT`, failing
/// on an HTTP error, with every timing stated and a timeout under the
/// interval.
pub fn healthcheck_problems(args: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let Some((options, command)) = args.split_once("CMD ") else {
        return vec![format!("HEALTHCHECK {args}: no CMD")];
    };
    let option = |name: &str| {
        options
            .split_whitespace()
            .find_map(|o| o.strip_prefix(&format!("--{name}=")))
            .and_then(seconds)
    };
    for name in ["interval", "timeout", "start-period", "retries"] {
        let given = options.contains(&format!("--{name}="));
        if !given {
            problems.push(format!("HEALTHCHECK without --{name}"));
        }
    }
    if let (Some(interval), Some(timeout)) = (option("interval"), option("timeout")) {
        if timeout >= interval {
            problems.push(format!(
                "HEALTHCHECK timeout {timeout}s not under its interval {interval}s"
            ));
        }
    }
    let curl_fails = command.contains("curl")
        && command.split_whitespace().any(|w| {
            w == "--fail" || (w.starts_with('-') && !w.starts_with("--") && w.contains('f'))
        });
    // Shell form: only a shell expands the port variable.
    let shell = !command.trim_start().starts_with('[');
    let port = command.contains("${DASH_API_PORT}") || command.contains("$DASH_API_PORT");
    if !curl_fails || !shell || !port || !command.contains("/livez") {
        problems.push(format!(
            "HEALTHCHECK CMD {command}: want shell-form curl -f http://127.0.0.1:${{DASH_API_PORT}}/livez"
        ));
    }
    problems
}
