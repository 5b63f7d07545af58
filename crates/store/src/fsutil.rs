//! Durable filesystem helpers: fsync of files and directory trees, and the atomic directory swap
//! used by publish.
//!
//! On Linux, [`exchange`] is `renameat2(RENAME_EXCHANGE)`: both paths exist before and after, and
//! a crash leaves either the old or the new directory at each path. Elsewhere (or on filesystems
//! without exchange support) [`crate::publish`] falls back to two renames with a recovery step.
use std::fs::File;
use std::io::Write;
use std::path::Path;

use crate::error::{Error, Result};

/// Writes `bytes` to `path` (truncating) and fsyncs the file.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut f = File::create(path).map_err(|e| Error::io(path, e))?;
    f.write_all(bytes).map_err(|e| Error::io(path, e))?;
    f.sync_all().map_err(|e| Error::io(path, e))
}

/// fsyncs one directory (its entries), so renames and creations inside it are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    // Opening a directory read-only and calling fsync is the POSIX way; Windows cannot.
    #[cfg(unix)]
    {
        File::open(path)
            .and_then(|d| d.sync_all())
            .map_err(|e| Error::io(path, e))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

/// fsyncs every file and directory under `root` (and `root` itself), depth first.
pub(crate) fn sync_tree(root: &Path) -> Result<()> {
    let entries = std::fs::read_dir(root).map_err(|e| Error::io(root, e))?;
    for entry in entries {
        let entry = entry.map_err(|e| Error::io(root, e))?;
        let path = entry.path();
        let ty = entry.file_type().map_err(|e| Error::io(&path, e))?;
        if ty.is_dir() {
            sync_tree(&path)?;
        } else if ty.is_file() {
            File::open(&path)
                .and_then(|f| f.sync_all())
                .map_err(|e| Error::io(&path, e))?;
        }
    }
    sync_dir(root)
}

/// Creates a directory and its parents.
pub(crate) fn create_dir_all(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))
}

/// Removes a directory tree; a missing one is fine.
pub(crate) fn remove_dir_all_if_exists(path: &Path) -> Result<()> {
    match std::fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io(path, e)),
    }
}

/// Renames `from` to `to` (a missing `to` is created, an empty directory `to` is replaced).
pub(crate) fn rename(from: &Path, to: &Path) -> Result<()> {
    std::fs::rename(from, to).map_err(|e| Error::io(from, e))
}

/// Atomically swaps two existing paths. `Ok(false)` when the platform or filesystem cannot (the
/// caller then falls back to two renames); `Err` for real failures.
pub(crate) fn exchange(a: &Path, b: &Path) -> Result<bool> {
    #[cfg(target_os = "linux")]
    {
        use std::ffi::CString;
        use std::os::unix::ffi::OsStrExt;
        let ca = CString::new(a.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("path {} contains NUL", a.display())))?;
        let cb = CString::new(b.as_os_str().as_bytes())
            .map_err(|_| Error::InvalidInput(format!("path {} contains NUL", b.display())))?;
        // SAFETY: both pointers are valid NUL-terminated strings that outlive the call;
        // renameat2 only reads them. The raw syscall works with every Linux libc.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_renameat2,
                libc::AT_FDCWD,
                ca.as_ptr(),
                libc::AT_FDCWD,
                cb.as_ptr(),
                libc::RENAME_EXCHANGE,
            )
        };
        if rc == 0 {
            return Ok(true);
        }
        let err = std::io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::ENOTSUP) => Ok(false),
            _ => Err(Error::io(a, err)),
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = (a, b);
        Ok(false)
    }
}

/// Whether a process with this pid is alive (Linux: `/proc/{pid}` exists). Unknown elsewhere:
/// reports alive, so nothing is cleaned up that might be in use.
pub(crate) fn pid_alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new("/proc").join(pid.to_string()).exists()
    } else {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exchange_swaps_directories() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::create_dir(&a).unwrap();
        std::fs::create_dir(&b).unwrap();
        std::fs::write(a.join("x"), b"from a").unwrap();
        if exchange(&a, &b).unwrap() {
            assert_eq!(std::fs::read(b.join("x")).unwrap(), b"from a");
            assert!(!a.join("x").exists());
        }
        sync_tree(dir.path()).unwrap();
    }
}
