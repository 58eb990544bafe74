//! Finding the etcd binary on this machine.

use std::ffi::OsString;
use std::path::PathBuf;

use super::EtcdError;

/// `$DASH_ETCD_BIN` (which must then be a file), else `etcd` on `PATH`.
pub(super) fn locate_binary(
    override_bin: Option<OsString>,
    path: Option<OsString>,
) -> Result<PathBuf, EtcdError> {
    if let Some(bin) = override_bin {
        let bin = PathBuf::from(bin);
        return match bin.is_file() {
            true => Ok(bin),
            false => Err(EtcdError::BinaryNotFound {
                searched: format!("DASH_ETCD_BIN={} is not a file", bin.display()),
            }),
        };
    }
    let path = path.unwrap_or_default();
    std::env::split_paths(&path)
        .map(|dir| dir.join("etcd"))
        .find(|bin| bin.is_file())
        .ok_or_else(|| EtcdError::BinaryNotFound {
            searched: format!(
                "DASH_ETCD_BIN not set; no `etcd` on PATH={}",
                path.to_string_lossy()
            ),
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn binary_from_override_or_path() {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("etcd");
        std::fs::write(&bin, "").unwrap();
        let path = Some(dir.path().as_os_str().to_owned());
        assert_eq!(locate_binary(None, path.clone()).unwrap(), bin);
        assert_eq!(locate_binary(Some(bin.clone().into()), None).unwrap(), bin);

        let missing = locate_binary(Some(dir.path().join("nope").into()), path).unwrap_err();
        assert!(matches!(missing, EtcdError::BinaryNotFound { .. }));
        let none = locate_binary(None, Some("/nonexistent".into())).unwrap_err();
        assert!(none.to_string().contains("etcd-server"), "{none}");
    }
}
