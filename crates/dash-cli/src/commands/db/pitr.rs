//! The pgBackRest side of `dashctl db backup | backups | verify-backup |
//! restore` (point-in-time recovery); the steps are `dash_runbook::pitr`'s.

use dash_runbook::pitr::{self, restore::PitrRestoreOptions, target::Wanted};
use dash_runbook::{backup, backups, exit, RunbookError};

use super::{emit, target, BackupArgs, BackupsArgs, RestoreArgs, VerifyBackupArgs};

pub async fn backup(a: BackupArgs) -> Result<u8, RunbookError> {
    let setup = a.backrest.setup(Some(&a.etcd))?;
    let opts = pitr::backup::PhysicalBackupOptions {
        ty: a.ty.map_or(dash_backrest::BackupType::Diff, Into::into),
        from_primary: a.from_primary,
        retention: match (a.keep_full, a.keep_days) {
            (Some(n), _) => Some(dash_backrest::Retention::Count(n)),
            (_, Some(d)) => Some(dash_backrest::Retention::Days(d)),
            _ => None,
        },
    };
    let r = pitr::backup::backup(&setup, &opts).await?;
    Ok(emit(&a.common, &r, r.render(), exit::OK))
}

/// The dumps (when a backup directory is there) and the repository.
pub async fn backups(a: BackupsArgs) -> Result<u8, RunbookError> {
    #[derive(serde::Serialize)]
    struct Both {
        logical: Option<backups::BackupList>,
        pgbackrest: pitr::catalogue::PhysicalList,
    }
    let setup = a.backrest.setup(None)?;
    let physical = pitr::catalogue::list(&setup).await?;
    let logical = match backup::backup_dir(a.dir.dir) {
        Ok(dir) => tokio::task::spawn_blocking(move || backups::list(&dir))
            .await
            .ok()
            .and_then(Result::ok),
        Err(_) => None,
    };
    let mut table = physical.render();
    if let Some(l) = &logical {
        table = format!("{}\n{table}", l.render());
    }
    let corrupt = (logical.iter()).any(|l| l.backups.iter().any(|b| b.checksum == "mismatch"));
    let code = if corrupt {
        exit::CHECK_FAILED
    } else {
        exit::OK
    };
    let both = Both {
        logical,
        pgbackrest: physical,
    };
    Ok(emit(&a.common, &both, table, code))
}

pub async fn verify(a: VerifyBackupArgs) -> Result<u8, RunbookError> {
    let setup = a.backrest.setup(None)?;
    let r = pitr::verify::verify(&target(&a.common)?, &setup).await?;
    let code = if r.ok { exit::OK } else { exit::CHECK_FAILED };
    Ok(emit(&a.common, &r, r.render(), code))
}

pub async fn restore(a: RestoreArgs) -> Result<u8, RunbookError> {
    let setup = a.backrest.setup(Some(&a.etcd))?;
    if a.abort {
        let said = pitr::halt::abort(&setup).await?;
        println!("{said}");
        return Ok(exit::OK);
    }
    let wanted = match (a.to, a.to_lsn, a.before_event) {
        (Some(t), _, _) => Wanted::Time(t),
        (_, Some(lsn), _) => Wanted::Lsn(lsn),
        (_, _, Some(id)) => Wanted::BeforeEvent(id),
        _ => {
            return Err(RunbookError::Usage(
                "give --to, --to-lsn or --before-event".into(),
            ))
        }
    };
    let opts = PitrRestoreOptions {
        wanted,
        on: a.on,
        dry_run: a.dry_run,
        yes: a.yes,
        wait: a.wait,
        api_stopped: a.api_stopped,
        allow_missing: a.allow_missing,
    };
    let r = pitr::restore::restore(&target(&a.common)?, &setup, &opts).await?;
    let code = if r.ok { exit::OK } else { exit::CHECK_FAILED };
    Ok(emit(&a.common, &r, r.render(), code))
}
