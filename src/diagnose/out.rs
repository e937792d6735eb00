//! Creating the bundle's file safely (see the `diagnose` module doc).

use anyhow::Context;
use std::path::{Path, PathBuf};

/// Whether `out` may be written: refused if anything is there, unless `force` and it is a
/// regular file of ours. Returns whether a file is there to be replaced.
pub(super) fn check_out(out: &Path, force: bool) -> anyhow::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let meta = match std::fs::symlink_metadata(out) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("cannot check {}", out.display())),
    };
    let what = if meta.file_type().is_symlink() {
        "a symlink"
    } else if !meta.is_file() {
        "not a regular file"
    } else if meta.uid() != euid() {
        "a file owned by another user"
    } else if !force {
        "an existing file (give --force to replace it)"
    } else {
        return Ok(true);
    };
    anyhow::bail!("refusing to write {}: it is {what}", out.display())
}

/// A new file next to `out`, mode 0600 whatever the umask, created exclusively.
pub(super) fn create_temp(dir: &Path, out: &Path) -> anyhow::Result<(std::fs::File, PathBuf)> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let base = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "bundle".into());
    for n in 0..100u32 {
        let tmp = dir.join(format!(".{base}.{}-{n}.tmp", std::process::id()));
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)
        {
            Ok(f) => {
                f.set_permissions(std::fs::Permissions::from_mode(0o600))?;
                return Ok((f, tmp));
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot create a file in {}", dir.display()));
            }
        }
    }
    anyhow::bail!("cannot create a temporary file in {}", dir.display())
}

/// The effective user id of this process.
fn euid() -> u32 {
    // SAFETY: `geteuid` has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}
