//! The restore's file moves: removing a directory of ours, and putting the
//! recovered directory in the node's place (the old one kept aside).

use dash_node::layout;

use super::LocalNode;
use crate::RunbookError;

pub(super) async fn remove_dir(dir: &std::path::Path) -> Result<(), RunbookError> {
    let d = dir.to_path_buf();
    tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&d) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(RunbookError::io(format!("remove {}", d.display()), e))
        }
        _ => Ok(()),
    })
    .await
    .map_err(|e| RunbookError::Invalid(format!("remove task: {e}")))?
}

/// The node's data goes aside (replacing an older copy), the staged
/// directory takes its place, and the rewind marker goes.
pub(super) async fn swap(
    node: &LocalNode,
    staging: &std::path::Path,
    aside: &std::path::Path,
) -> Result<(), RunbookError> {
    remove_dir(aside).await?;
    let io = |what: String| move |e| RunbookError::io(what, e);
    // A member whose volume was lost has no data directory, or an empty one.
    let empty = std::fs::read_dir(&node.data_dir).map_or(true, |mut d| d.next().is_none());
    if empty {
        remove_dir(&node.data_dir).await?;
    } else {
        std::fs::rename(&node.data_dir, aside)
            .map_err(io(format!("move {} aside", node.data_dir.display())))?;
    }
    std::fs::rename(staging, &node.data_dir)
        .map_err(io(format!("move {} into place", staging.display())))?;
    match std::fs::remove_file(layout::rewind_marker(&node.data_dir)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(RunbookError::io("remove the rewind marker", e))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(dir: &std::path::Path) -> LocalNode {
        LocalNode {
            name: "n".into(),
            data_dir: dir.join("data"),
            port: 5432,
        }
    }

    #[tokio::test]
    async fn the_staged_directory_takes_the_data_directorys_place_and_the_old_one_is_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let n = node(tmp.path());
        let (staging, aside) = (
            layout::restore_staging_dir(&n.data_dir),
            layout::set_aside_dir(&n.data_dir),
        );
        for (dir, mark) in [
            (&n.data_dir, "old"),
            (&staging, "restored"),
            (&aside, "older"),
        ] {
            std::fs::create_dir_all(dir).unwrap();
            std::fs::write(dir.join("PG_VERSION"), mark).unwrap();
        }
        std::fs::write(layout::rewind_marker(&n.data_dir), "x").unwrap();
        swap(&n, &staging, &aside).await.unwrap();
        assert_eq!(
            std::fs::read_to_string(n.data_dir.join("PG_VERSION")).unwrap(),
            "restored"
        );
        assert_eq!(
            std::fs::read_to_string(aside.join("PG_VERSION")).unwrap(),
            "old"
        );
        assert!(!staging.exists() && !layout::rewind_marker(&n.data_dir).exists());
    }

    #[tokio::test]
    async fn a_member_whose_volume_was_lost_gets_the_staged_directory_too() {
        for make_empty in [false, true] {
            let tmp = tempfile::tempdir().unwrap();
            let n = node(tmp.path());
            let (staging, aside) = (
                layout::restore_staging_dir(&n.data_dir),
                layout::set_aside_dir(&n.data_dir),
            );
            if make_empty {
                std::fs::create_dir_all(&n.data_dir).unwrap();
            }
            std::fs::create_dir_all(&staging).unwrap();
            std::fs::write(staging.join("PG_VERSION"), "restored").unwrap();
            swap(&n, &staging, &aside).await.unwrap();
            assert_eq!(
                std::fs::read_to_string(n.data_dir.join("PG_VERSION")).unwrap(),
                "restored"
            );
            assert!(!aside.exists(), "nothing to keep aside");
        }
    }
}
