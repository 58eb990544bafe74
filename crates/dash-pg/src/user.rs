//! Running server binaries as the unprivileged server user when we are root
//! (`initdb` and `postgres` refuse to run as root).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use nix::unistd::{Uid, User};

use super::PgError;

/// The OS user that owns data directories and runs the server when we are root
/// (created by the Debian/Ubuntu PostgreSQL packages).
pub const SERVER_USER: &str = "postgres";

/// The server user when we run as root; `None` when we are not root (the
/// server then runs as ourselves).
pub(crate) fn server_user() -> Result<Option<User>, PgError> {
    if !Uid::effective().is_root() {
        return Ok(None);
    }
    match User::from_name(SERVER_USER) {
        Ok(Some(user)) => Ok(Some(user)),
        _ => Err(PgError::NoServerUser),
    }
}

/// A command for `program` that runs as the unprivileged server user when we
/// are root (else as ourselves). As root it also gets that user's `HOME`,
/// `USER` and `LOGNAME`, no supplementary groups, and `/` as its working
/// directory (so pass absolute paths). If the server user is missing the
/// command runs unchanged and the server binary reports the problem itself.
pub fn server_command(program: &Path) -> Command {
    let mut cmd = Command::new(program);
    if let Ok(Some(user)) = server_user() {
        cmd.uid(user.uid.as_raw())
            .gid(user.gid.as_raw())
            .env("HOME", &user.dir)
            .env("USER", &user.name)
            .env("LOGNAME", &user.name)
            .current_dir("/");
    }
    cmd
}

/// Recursively hands `path` to the server user when we are root (a no-op
/// otherwise). Symlinks are changed, not followed.
pub fn give_to_server_user(path: &Path) -> Result<(), PgError> {
    match server_user()? {
        Some(user) => chown_tree(path, &user),
        None => Ok(()),
    }
}

fn chown_tree(path: &Path, user: &User) -> Result<(), PgError> {
    let err = |e| PgError::io(format!("chown {} to {SERVER_USER}", path.display()), e);
    std::os::unix::fs::lchown(path, Some(user.uid.as_raw()), Some(user.gid.as_raw()))
        .map_err(err)?;
    if path.symlink_metadata().map_err(err)?.is_dir() {
        for entry in std::fs::read_dir(path).map_err(err)? {
            chown_tree(&entry.map_err(err)?.path(), user)?;
        }
    }
    Ok(())
}
