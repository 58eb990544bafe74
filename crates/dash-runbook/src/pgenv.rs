//! `dashctl env` and `dashctl psql`: libpq's own environment (`PGHOST`,
//! `PGPORT`, `PGUSER`, `PGDATABASE`, `PGPASSFILE`) for the current primary,
//! or a streaming replica, so the runbook's `psql` and `pg_isready` lines
//! work exactly as written after `eval "$(dashctl env)"`. The password is
//! never printed: it goes to a pgpass file only its owner can read.

use std::io::Write;
use std::path::{Path, PathBuf};

use dash_store::{DbSettings, HostPort};
use serde::Serialize;

use crate::session::{self, within, QUERY_DEADLINE};
use crate::{RunbookError, Target};

/// Where a session should go, as libpq's environment describes it.
#[derive(Debug, Clone, Serialize)]
pub struct PgEnv {
    /// The node's name (from `cluster.json`), else its address.
    pub node: String,
    /// `primary` or `replica`.
    pub role: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub dbname: String,
    pub passfile: PathBuf,
}

impl PgEnv {
    /// The variables, in the order `dashctl env` prints them.
    pub fn vars(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PGHOST", self.host.clone()),
            ("PGPORT", self.port.to_string()),
            ("PGUSER", self.user.clone()),
            ("PGDATABASE", self.dbname.clone()),
            ("PGPASSFILE", self.passfile.display().to_string()),
        ]
    }

    /// `export NAME='value'` lines for a POSIX shell's `eval`.
    pub fn exports(&self) -> String {
        let mut out = format!(
            "# {} ({}) - eval \"$(dashctl env)\"\n",
            self.node, self.role
        );
        for (k, v) in self.vars() {
            out.push_str(&format!("export {k}={}\n", shell_quote(&v)));
        }
        out
    }
}

/// `value` in single quotes, safe for any shell input.
pub fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', "'\\''"))
}

/// The pgpass line for every host: `*:*:*:user:password`, with `:` and `\`
/// escaped as libpq reads them.
pub fn pgpass_line(user: &str, password: &str) -> String {
    let esc = |s: &str| s.replace('\\', "\\\\").replace(':', "\\:");
    format!("*:*:*:{}:{}\n", esc(user), esc(password))
}

/// Writes `dir/pgpass` (mode 0600, created only by its owner) and returns
/// its path.
pub fn write_passfile(dir: &Path, settings: &DbSettings) -> Result<PathBuf, RunbookError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
    let io = |context: String| move |source| RunbookError::Io { context, source };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(format!("create {}", dir.display())))?;
    let path = dir.join("pgpass");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(io(format!("write {}", path.display())))?;
    // An existing file keeps its mode: make sure nobody else can read it.
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(io(format!("chmod {}", path.display())))?;
    let line = pgpass_line(&settings.user, settings.password.expose());
    f.write_all(line.as_bytes())
        .map_err(io(format!("write {}", path.display())))?;
    Ok(path)
}

/// The node to point at: the writable primary, or with `replica` a
/// streaming replica; the pgpass file goes to `passfile_dir`.
pub async fn resolve(
    target: &Target,
    replica: bool,
    passfile_dir: &Path,
) -> Result<PgEnv, RunbookError> {
    let host = if replica {
        streaming_replica(target).await?
    } else {
        session::primary(target).await?.host
    };
    let node = (target.nodes.iter())
        .find(|n| n.address == host)
        .map_or_else(|| host.to_string(), |n| n.name.clone());
    Ok(PgEnv {
        node,
        role: if replica { "replica" } else { "primary" }.into(),
        host: host.host.clone(),
        port: host.port,
        user: target.settings.user.clone(),
        dbname: target.settings.dbname.clone(),
        passfile: write_passfile(passfile_dir, &target.settings)?,
    })
}

/// The first node (in the target's order) that is in recovery with its WAL
/// receiver streaming.
async fn streaming_replica(target: &Target) -> Result<HostPort, RunbookError> {
    let mut why = Vec::new();
    for n in &target.nodes {
        let q = "SELECT pg_is_in_recovery() AND EXISTS \
                 (SELECT 1 FROM pg_stat_wal_receiver WHERE status = 'streaming')";
        let answer = async {
            let c = session::connect(&target.settings, &n.address, &target.settings.dbname).await?;
            within(
                "ask whether it streams",
                QUERY_DEADLINE,
                c.query_one(q, &[]),
            )
            .await
        };
        match answer.await {
            Ok(row) if row.get::<_, bool>(0) => return Ok(n.address.clone()),
            Ok(_) => why.push(format!("{}: not a streaming replica", n.name)),
            Err(e) => why.push(format!("{}: {e}", n.name)),
        }
    }
    Err(RunbookError::Invalid(format!(
        "no streaming replica answers ({})",
        why.join("; ")
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell_and_pgpass_escapes_what_libpq_reads() {
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's $HOME"), "'it'\\''s $HOME'");
        assert_eq!(pgpass_line("u:x", "p\\w:d"), "*:*:*:u\\:x:p\\\\w\\:d\n");
    }

    #[test]
    fn the_passfile_is_private_and_holds_the_password_not_the_output() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let settings = DbSettings {
            user: "dash_user".into(),
            password: dash_store::Secret::new("s3cret"),
            ..DbSettings::default()
        };
        let path = write_passfile(&dir.path().join("d"), &settings).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "*:*:*:dash_user:s3cret\n"
        );
        let env = PgEnv {
            node: "node1".into(),
            role: "primary".into(),
            host: "127.0.0.1".into(),
            port: 5433,
            user: "dash_user".into(),
            dbname: "dash".into(),
            passfile: path,
        };
        let text = env.exports();
        assert!(text.contains("export PGPORT='5433'\n"), "{text}");
        assert!(text.contains("export PGPASSFILE="), "{text}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
