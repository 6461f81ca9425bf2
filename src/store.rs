//! Atomic file writes (DESIGN section 4): temp file in the same directory, fsync, rename, fsync
//! the directory. A crash leaves the old or the new content, never a torn file.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

/// Creates `dir` (and parents) if needed and sets its mode.
pub fn ensure_dir(dir: &Path, mode: u32) -> io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(mode))
}

fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Names of the temp files of unfinished writes.
const TEMP_PREFIX: &str = ".lbagent.tmp.";

/// Writes `data` to `path` atomically with file mode `mode`.
pub fn write_atomic(path: &Path, data: &[u8], mode: u32) -> io::Result<()> {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    let dir = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "path has no directory"))?;
    if path.file_name().is_none() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "path has no file name",
        ));
    }
    // Short and unique: a long file name plus a suffix could pass NAME_MAX.
    let tmp = dir.join(format!(
        "{TEMP_PREFIX}{}.{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::SeqCst)
    ));
    let result = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        f.write_all(data)?;
        f.sync_all()?;
        fs::rename(&tmp, path)?;
        sync_dir(dir)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Removes what writes cut short by a crash left under `root` (their temp files replaced
/// nothing); run at start-up, before any write. Returns how many were removed.
pub fn sweep_temps(root: &Path) -> usize {
    let mut removed = 0;
    let mut dirs = vec![root.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten().flatten() {
            // file_type does not follow symlinks: nothing outside `root` is touched.
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                dirs.push(entry.path());
            } else if kind.is_file()
                && entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX)
                && fs::remove_file(entry.path()).is_ok()
            {
                removed += 1;
            }
        }
    }
    removed
}

/// Loads a JSON state file; a missing one is `default()`. One that does not parse is an error
/// naming it (`what` it should hold): it is never silently replaced.
pub fn load_json<T: serde::de::DeserializeOwned>(
    path: &Path,
    what: &str,
    default: impl FnOnce() -> T,
) -> Result<T, String> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
            format!(
                "{}: not a valid {what} ({e}); fix or move it away, the agent will not overwrite it",
                path.display()
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(default()),
        Err(e) => Err(format!("{}: cannot read: {e}", path.display())),
    }
}

/// Renames within one directory and makes the rename durable.
pub fn rename_durable(from: &Path, to: &Path) -> io::Result<()> {
    fs::rename(from, to)?;
    match to.parent() {
        Some(dir) => sync_dir(dir),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    #[test]
    fn writes_replace_whole_files_with_the_mode() {
        let dir = std::env::temp_dir().join(format!("lbagent-store-{}", std::process::id()));
        ensure_dir(&dir, 0o700).unwrap();
        let p = dir.join("secret.pem");
        write_atomic(&p, b"one", 0o600).unwrap();
        write_atomic(&p, b"two", 0o600).unwrap();
        assert_eq!(fs::read(&p).unwrap(), b"two");
        assert_eq!(fs::metadata(&p).unwrap().mode() & 0o777, 0o600);
        assert_eq!(fs::metadata(&dir).unwrap().mode() & 0o777, 0o700);
        // No temp files left behind.
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        assert!(write_atomic(&dir.join("missing/x"), b"", 0o600).is_err());
        // A crash's leftovers are swept, in subdirectories too; nothing else is.
        ensure_dir(&dir.join("sub"), 0o700).unwrap();
        fs::write(dir.join("sub/.lbagent.tmp.1.2"), b"half").unwrap();
        fs::write(dir.join(".lbagent.tmp.3.4"), b"half").unwrap();
        assert_eq!(sweep_temps(&dir), 2);
        assert!(p.exists());
        assert_eq!(fs::read_dir(dir.join("sub")).unwrap().count(), 0);
        fs::remove_dir_all(&dir).unwrap();
    }
}
