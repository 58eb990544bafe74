//! Scenario 2's safety net: custom-format dumps (`pg_dump -Fc`), restorable
//! with the runbook's own `pg_restore -U dash_user -d dash .../latest.dump`.
//!
//! A dump is written under a hidden temp name and renamed only once it is
//! complete, with its checksum and manifest already beside it, so
//! `latest.dump` (a symlink replaced atomically) never points at a partial
//! file. The row counts in the manifest come from the very snapshot the dump
//! was taken from (`pg_export_snapshot` + `pg_dump --snapshot`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use chrono::Utc;
use serde::Serialize;
use tokio_postgres::Client;

use super::backups::{self, LATEST};
use super::manifest::{self, sync_dir, Manifest};
use super::output::{bytes, duration, Progress, Table};
use super::session::{self, quote_ident, within, QUERY_DEADLINE};
use super::{tools, RunbookError, Target};

/// Where the Kubernetes deployment mounts the backup volume (the runbook's
/// `ls -la /backups/dash/postgres/`); the default only where it exists.
pub const DEFAULT_DIR: &str = "/backups/dash/postgres";

/// The backup directory: `--dir`, else `DASH_BACKUP_DIR`, else beside
/// `dashctl up` (`$DASH_HOME/cluster.json` exists) `$DASH_HOME/backups`
/// (created), else [`DEFAULT_DIR`] when it exists. Without any of them, a
/// usage error that says how to choose.
pub fn backup_dir(flag: Option<PathBuf>) -> Result<PathBuf, RunbookError> {
    choose_dir(flag, |k| std::env::var_os(k), Path::new(DEFAULT_DIR))
}

fn choose_dir(
    flag: Option<PathBuf>,
    get: impl Fn(&str) -> Option<std::ffi::OsString>,
    default: &Path,
) -> Result<PathBuf, RunbookError> {
    let given = flag.or_else(|| get("DASH_BACKUP_DIR").map(PathBuf::from));
    if let Some(dir) = given.filter(|p| !p.as_os_str().is_empty()) {
        return Ok(dir);
    }
    let home = get("DASH_HOME")
        .filter(|h| !h.is_empty())
        .map_or_else(|| PathBuf::from(".dash"), PathBuf::from);
    if dash_platform::Topology::path(&home).exists() {
        let dir = home.join("backups");
        std::fs::create_dir_all(&dir)
            .map_err(|e| RunbookError::io(format!("create {}", dir.display()), e))?;
        return Ok(dir);
    }
    if default.is_dir() {
        return Ok(default.to_path_buf());
    }
    Err(RunbookError::Usage(format!(
        "no backup directory: {} does not exist and there is no `dashctl up` platform here \
         ({} not found); choose one with --dir DIR or DASH_BACKUP_DIR=DIR \
         (beside `dashctl up`, set DASH_HOME and $DASH_HOME/backups is used)",
        default.display(),
        dash_platform::Topology::path(&home).display()
    )))
}

/// The dump to work on: `file` (relative names are looked up in `dir` first)
/// or `dir/latest.dump`, with symlinks resolved so its checksum and manifest
/// are found beside it.
pub fn resolve_dump(dir: &Path, file: Option<&Path>) -> Result<PathBuf, RunbookError> {
    let path = match file {
        Some(f) if f.is_relative() && !f.exists() && dir.join(f).exists() => dir.join(f),
        Some(f) => f.to_path_buf(),
        None => dir.join(LATEST),
    };
    path.canonicalize()
        .map_err(|_| RunbookError::NoBackup(path.clone()))
}

/// Every table of the database (`schema.table`), with its SQL name.
pub(crate) async fn tables(client: &Client) -> Result<Vec<(String, String)>, RunbookError> {
    let rows = within(
        "list tables",
        QUERY_DEADLINE,
        client.query(
            "SELECT n.nspname::text, c.relname::text FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             WHERE c.relkind IN ('r', 'p')
               AND n.nspname NOT IN ('pg_catalog', 'information_schema')
               AND n.nspname NOT LIKE 'pg\\_%'
               AND n.nspname <> 'dash_control'
             ORDER BY 1, 2",
            &[],
        ),
    )
    .await?;
    Ok(rows
        .iter()
        .map(|r| {
            let (schema, table): (String, String) = (r.get(0), r.get(1));
            (
                format!("{schema}.{table}"),
                format!("{}.{}", quote_ident(&schema), quote_ident(&table)),
            )
        })
        .collect())
}

/// Rows per table, counted in the session's current snapshot.
pub(crate) async fn count_rows(
    client: &Client,
    progress: Option<&Progress>,
) -> Result<BTreeMap<String, i64>, RunbookError> {
    let mut counts = BTreeMap::new();
    for (name, sql_name) in tables(client).await? {
        if let Some(p) = progress {
            p.update(&format!("counting {name}"));
        }
        let row = client
            .query_one(&format!("SELECT count(*) FROM {sql_name}"), &[])
            .await
            .map_err(|e| RunbookError::db(format!("count rows of {name}"), e))?;
        counts.insert(name, row.get(0));
    }
    Ok(counts)
}

/// `dashctl db backup` options.
#[derive(Debug, Clone)]
pub struct BackupOptions {
    pub dir: PathBuf,
    /// Keep only the newest N dumps Dash made (older ones are deleted after
    /// a successful backup); `None` keeps all.
    pub keep: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct BackupReport {
    pub file: PathBuf,
    pub latest: PathBuf,
    pub source: String,
    pub size_bytes: u64,
    pub sha256: String,
    pub tables: BTreeMap<String, i64>,
    pub duration_seconds: f64,
    /// Dumps deleted by `--keep`.
    pub removed: Vec<String>,
}

impl BackupReport {
    pub fn render(&self) -> String {
        let mut out = format!(
            "Backup {} ({}, sha256 {}) from {} in {}\n{} -> {}\n\n",
            self.file.display(),
            bytes(self.size_bytes),
            &self.sha256[..16.min(self.sha256.len())],
            self.source,
            duration(std::time::Duration::from_secs_f64(self.duration_seconds)),
            self.latest.display(),
            self.file.file_name().unwrap_or_default().to_string_lossy(),
        );
        let mut t = Table::new(&["TABLE", "ROWS"]);
        for (table, rows) in &self.tables {
            t.row(vec![table.clone(), rows.to_string()]);
        }
        out.push_str(&t.render());
        for r in &self.removed {
            out.push_str(&format!("removed by --keep: {r}\n"));
        }
        out
    }
}

/// Takes a dump of the primary into `opts.dir`.
pub async fn backup(target: &Target, opts: &BackupOptions) -> Result<BackupReport, RunbookError> {
    let started = Instant::now();
    let dir = &opts.dir;
    std::fs::create_dir_all(dir)
        .map_err(|e| RunbookError::io(format!("create backup directory {}", dir.display()), e))?;
    let primary = session::primary(target).await?;
    let client = &primary.client;
    let dbname = &target.settings.dbname;

    // One snapshot for the row counts and the dump.
    within(
        "begin the backup snapshot",
        QUERY_DEADLINE,
        client.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY"),
    )
    .await?;
    let row = within(
        "export the backup snapshot",
        QUERY_DEADLINE,
        client.query_one(
            "SELECT pg_export_snapshot(), current_setting('server_version')",
            &[],
        ),
    )
    .await?;
    let (snapshot, server_version): (String, String) = (row.get(0), row.get(1));
    let progress = Progress::start(format!("counting rows in {dbname}"));
    let tables = count_rows(client, Some(&progress)).await?;
    progress.finish(&format!("{} tables", tables.len()));

    let name = unique_name(dir, dbname);
    let partial = dir.join(format!(".{name}.partial"));
    let mut cmd = tools::command("pg_dump", &target.settings, &primary.host, dbname);
    // dash_control (the API processes' shared settings and their log) is
    // live state, not data: a restore must not rewind it.
    cmd.arg("--format=custom")
        .arg("--exclude-schema=dash_control")
        .arg(format!("--snapshot={snapshot}"))
        .arg("--file")
        .arg(&partial);
    let progress = Progress::start(format!("pg_dump {dbname} from {}", primary.host));
    let dumped = progress
        .track(tools::run(cmd, "pg_dump"), || {
            format!("{} written", bytes(tools::size_of(&partial)))
        })
        .await;
    let _ = client.batch_execute("COMMIT").await;
    if let Err(e) = dumped {
        progress.finish("failed");
        let _ = std::fs::remove_file(&partial);
        return Err(e);
    }
    let size = tools::size_of(&partial);
    progress.finish(&bytes(size));

    let finished = finish_dump(&partial, dir, &name).await;
    if finished.is_err() {
        let _ = std::fs::remove_file(&partial);
    }
    let (file, sha256) = finished?;
    let manifest = Manifest {
        format: 1,
        file: name.clone(),
        database: dbname.clone(),
        source: primary.host.to_string(),
        server_version,
        pg_dump: tools::version("pg_dump").await.unwrap_or_default(),
        created_at: Utc::now(),
        duration_seconds: started.elapsed().as_secs_f64(),
        size_bytes: size,
        sha256: sha256.clone(),
        tables: tables.clone(),
        verification: None,
        foreign: false,
    };
    manifest.save(&file)?;
    // Only now does the dump get its real name: a `*.dump` is always complete.
    std::fs::rename(&partial, &file)
        .map_err(|e| RunbookError::io(format!("rename to {}", file.display()), e))?;
    sync_dir(dir);
    let latest = point_latest(dir, &name)?;
    let removed = match opts.keep {
        Some(keep) => backups::retain(dir, keep)?,
        None => Vec::new(),
    };
    Ok(BackupReport {
        file,
        latest,
        source: primary.host.to_string(),
        size_bytes: size,
        sha256,
        tables,
        duration_seconds: started.elapsed().as_secs_f64(),
        removed,
    })
}

/// fsyncs the partial dump, hashes it and writes the checksum file under
/// the final name.
async fn finish_dump(
    partial: &Path,
    dir: &Path,
    name: &str,
) -> Result<(PathBuf, String), RunbookError> {
    let partial = partial.to_path_buf();
    let file = dir.join(name);
    let target = file.clone();
    tokio::task::spawn_blocking(move || {
        std::fs::File::open(&partial)
            .and_then(|f| f.sync_all())
            .map_err(|e| RunbookError::io(format!("fsync {}", partial.display()), e))?;
        let sha = manifest::sha256_file(&partial)?;
        manifest::write_checksum(&target, &sha)?;
        Ok((target, sha))
    })
    .await
    .map_err(|e| RunbookError::Invalid(format!("hashing task failed: {e}")))?
}

/// `dash-<db>-<UTC time>.dump`, with a suffix if that name is taken.
fn unique_name(dir: &Path, dbname: &str) -> String {
    let db: String = dbname
        .chars()
        .map(
            |c| match c.is_ascii_alphanumeric() || c == '_' || c == '-' {
                true => c,
                false => '_',
            },
        )
        .collect();
    let stamp = Utc::now().format("%Y%m%dT%H%M%SZ");
    let base = format!("dash-{db}-{stamp}");
    (1..)
        .map(|i| match i {
            1 => format!("{base}.dump"),
            i => format!("{base}-{i}.dump"),
        })
        .find(|n| !dir.join(n).exists() && !manifest::manifest_path(&dir.join(n)).exists())
        .expect("some suffix is free")
}

/// Points `latest.dump` at `name`: a new symlink renamed over the old one.
fn point_latest(dir: &Path, name: &str) -> Result<PathBuf, RunbookError> {
    let latest = dir.join(LATEST);
    let tmp = dir.join(format!(".{LATEST}.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(name, &tmp)
        .and_then(|()| std::fs::rename(&tmp, &latest))
        .map_err(|e| RunbookError::io(format!("point {} at {name}", latest.display()), e))?;
    sync_dir(dir);
    Ok(latest)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn choose(
        vars: &[(&str, &Path)],
        flag: Option<&Path>,
        default: &Path,
    ) -> Result<PathBuf, RunbookError> {
        let map: HashMap<String, std::ffi::OsString> = (vars.iter())
            .map(|(k, v)| (k.to_string(), v.as_os_str().to_owned()))
            .collect();
        choose_dir(
            flag.map(Path::to_path_buf),
            |k| map.get(k).cloned(),
            default,
        )
    }

    #[test]
    fn the_backup_directory_is_the_flag_the_env_dash_home_or_the_mounted_default() {
        let tmp = tempfile::tempdir().unwrap();
        let (home, flag, env) = (
            tmp.path().join("home"),
            tmp.path().join("f"),
            tmp.path().join("e"),
        );
        let missing = tmp.path().join("no/such/dir");
        std::fs::create_dir_all(&home).unwrap();
        let vars = [
            ("DASH_HOME", home.as_path()),
            ("DASH_BACKUP_DIR", env.as_path()),
        ];
        assert_eq!(choose(&vars, Some(&flag), &missing).unwrap(), flag);
        assert_eq!(choose(&vars, None, &missing).unwrap(), env);
        // No cluster.json and no default directory: say how to choose.
        let e = choose(&vars[..1], None, &missing).unwrap_err();
        assert!(e.is_usage(), "{e}");
        let text = e.to_string();
        assert!(
            text.contains("--dir") && text.contains("DASH_BACKUP_DIR"),
            "{text}"
        );
        // The mounted default, when it exists.
        assert_eq!(choose(&vars[..1], None, tmp.path()).unwrap(), tmp.path());
        // Beside `dashctl up`: $DASH_HOME/backups, created.
        std::fs::write(dash_platform::Topology::path(&home), "{}").unwrap();
        let dir = choose(&vars[..1], None, tmp.path()).unwrap();
        assert_eq!(dir, home.join("backups"));
        assert!(dir.is_dir());
    }
}
