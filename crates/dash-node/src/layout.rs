//! What Dash keeps beside a node's data directory `<data>`, named in one
//! place for the agent and for `dashctl db restore`, which works on the
//! same directories.

use std::path::{Path, PathBuf};

/// `<data><suffix>`.
pub fn beside(data_dir: &Path, suffix: &str) -> PathBuf {
    let mut s = data_dir.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// `<data>.needs-rewind`: the node was a primary that was fenced or demoted
/// and must be rewound before it follows anyone.
pub fn rewind_marker(data_dir: &Path) -> PathBuf {
    beside(data_dir, ".needs-rewind")
}

/// `<data>.before-restore`: the data a point-in-time restore replaced.
pub fn set_aside_dir(data_dir: &Path) -> PathBuf {
    beside(data_dir, ".before-restore")
}

/// `<data>.restore`: where a point-in-time restore recovers before the swap.
pub fn restore_staging_dir(data_dir: &Path) -> PathBuf {
    beside(data_dir, ".restore")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_sits_beside_the_data_directory() {
        let d = Path::new("/var/lib/dash/node0");
        assert_eq!(
            rewind_marker(d),
            Path::new("/var/lib/dash/node0.needs-rewind")
        );
        assert_eq!(
            set_aside_dir(d),
            Path::new("/var/lib/dash/node0.before-restore")
        );
        assert_eq!(
            restore_staging_dir(d),
            Path::new("/var/lib/dash/node0.restore")
        );
    }
}
