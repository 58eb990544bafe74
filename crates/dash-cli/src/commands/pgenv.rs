//! `dashctl env` and `dashctl psql`: libpq's environment for the current
//! primary (or a streaming replica), found as `dashctl db` finds the
//! database (`DATABASE_*`, or beside `dashctl up` its `cluster.json`).

use std::os::unix::process::CommandExt;
use std::path::PathBuf;

use clap::Args;
use dash_runbook::{pgenv, ApiFlags, Target};

use super::{dash_home, EXIT_OK};

#[derive(Debug, Args)]
pub struct EnvArgs {
    /// A streaming replica instead of the writable primary.
    #[arg(long)]
    pub replica: bool,
    /// Print JSON instead of `export` lines.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PsqlArgs {
    /// Connect to a streaming replica instead of the writable primary.
    #[arg(long)]
    pub replica: bool,
    /// Arguments for psql itself (after `--`), e.g. `-- -c 'SELECT 1'`.
    #[arg(last = true)]
    pub psql: Vec<String>,
}

/// Where the pgpass file goes: beside `dashctl up`, `$DASH_HOME`; otherwise
/// `~/.dash` (private to its owner either way).
fn passfile_dir() -> PathBuf {
    let home = dash_home();
    if dash_platform::Topology::path(&home).exists() {
        return home;
    }
    std::env::var_os("HOME").map_or_else(|| home.clone(), |h| PathBuf::from(h).join(".dash"))
}

async fn resolve(replica: bool) -> anyhow::Result<pgenv::PgEnv> {
    let target = Target::from_env(&ApiFlags::default())?;
    Ok(pgenv::resolve(&target, replica, &passfile_dir()).await?)
}

pub async fn env(args: EnvArgs) -> anyhow::Result<u8> {
    let env = resolve(args.replica).await?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&env)?);
    } else {
        print!("{}", env.exports());
    }
    Ok(EXIT_OK)
}

pub async fn psql(args: PsqlArgs) -> anyhow::Result<u8> {
    let env = resolve(args.replica).await?;
    let bin = dash_pg::PgBinaries::locate()?.path("psql");
    eprintln!(
        "dashctl psql: {} ({}) at {}:{}",
        env.node, env.role, env.host, env.port
    );
    // Replaces this process: psql owns the terminal and its signals.
    let err = std::process::Command::new(&bin)
        .args(&args.psql)
        .envs(env.vars())
        .exec();
    Err(anyhow::anyhow!("could not run {}: {err}", bin.display()))
}
