//! `dashctl verify`: the runbook's Recovery Verification, done by
//! `dash_runbook::recovery_check`.

use clap::Args;
use dash_runbook::recovery_check;

use super::db::{emit, finish, target, Common};

/// `dashctl verify` arguments.
#[derive(Debug, Args)]
#[command(after_help = "Exit codes:
  0  every check passed
  1  the command failed (error and causes printed)
  2  bad usage or configuration
  3  a check failed (each check is printed with its result)")]
pub struct VerifyArgs {
    #[command(flatten)]
    pub common: Common,
}

pub async fn run(args: VerifyArgs) -> anyhow::Result<u8> {
    finish(
        async {
            let t = target(&args.common)?;
            let r = recovery_check::verify(&t.api).await;
            Ok(emit(&args.common, &r, r.render(), r.exit_code()))
        }
        .await,
    )
}
