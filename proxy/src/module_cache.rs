//! Where compiled filter modules are kept between runs (`server.module_cache`), so a start or
//! a reload compiles only modules it has not seen: Cranelift takes seconds for the built-in
//! filters, loading the compiled code milliseconds.
//!
//! The directory holds native code that weir runs, so it must be weir's alone: it is created
//! private (0700) and refused when another user owns it or others may write to it.

use std::path::{Path, PathBuf};

/// The cache directory `setting` names (`auto`, `off` or a path, relative to `base`), made
/// ready, or `None` with the reason when there is none to use.
pub fn directory(setting: &str, base: &Path) -> Result<Option<PathBuf>, Unusable> {
    let dir = match setting {
        "off" => return Ok(None),
        "auto" => match automatic() {
            Some(dir) => dir,
            None => return Ok(None),
        },
        path => base.join(path),
    };
    prepare(&dir).map(|()| Some(dir))
}

/// systemd's `CacheDirectory=` (`$CACHE_DIRECTORY`), else `$XDG_CACHE_HOME/weir/modules`,
/// else `~/.cache/weir/modules`.
fn automatic() -> Option<PathBuf> {
    let var = |name: &str| std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from);
    if let Some(dirs) = std::env::var("CACHE_DIRECTORY").ok().filter(|v| !v.is_empty()) {
        return dirs.split(':').next().map(PathBuf::from);
    }
    let user_cache = var("XDG_CACHE_HOME").or_else(|| var("HOME").map(|h| h.join(".cache")));
    user_cache.map(|d| d.join("weir").join("modules"))
}

/// Why a cache directory is not used.
#[derive(Debug, thiserror::Error)]
pub enum Unusable {
    #[error("cannot create {}", .0.display())]
    Create(PathBuf, #[source] std::io::Error),
    #[error("cannot read {}", .0.display())]
    Read(PathBuf, #[source] std::io::Error),
    #[error("{} belongs to user {owner} (weir runs as {me}): its compiled code is not trusted", .dir.display())]
    Owner { dir: PathBuf, owner: u32, me: u32 },
    #[error("{} is writable by other users (mode {mode:o}): its compiled code is not trusted", .dir.display())]
    Shared { dir: PathBuf, mode: u32 },
    #[error("{} is not writable", .0.display())]
    ReadOnly(PathBuf, #[source] std::io::Error),
}

/// Creates `dir` (private) if needed and checks that only this user can write to it.
fn prepare(dir: &Path) -> Result<(), Unusable> {
    use std::os::unix::fs::{DirBuilderExt, MetadataExt};
    let at = || dir.to_owned();
    std::fs::DirBuilder::new().recursive(true).mode(0o700).create(dir).map_err(|e| Unusable::Create(at(), e))?;
    let meta = std::fs::metadata(dir).map_err(|e| Unusable::Read(at(), e))?;
    // SAFETY: geteuid has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    if meta.uid() != me {
        return Err(Unusable::Owner { dir: at(), owner: meta.uid(), me });
    }
    if meta.mode() & 0o022 != 0 {
        return Err(Unusable::Shared { dir: at(), mode: meta.mode() & 0o777 });
    }
    tempfile_probe(dir).map_err(|e| Unusable::ReadOnly(at(), e))
}

fn tempfile_probe(dir: &Path) -> std::io::Result<()> {
    let probe = dir.join(format!(".probe{}", std::process::id()));
    std::fs::write(&probe, b"")?;
    std::fs::remove_file(probe)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_others_may_write_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let base = tempfile::tempdir().unwrap();
        assert_eq!(directory("off", base.path()).unwrap(), None);
        let made = directory("cache", base.path()).unwrap().unwrap();
        let mode = std::fs::metadata(&made).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "created private");
        std::fs::set_permissions(&made, std::fs::Permissions::from_mode(0o777)).unwrap();
        let err = directory("cache", base.path()).unwrap_err();
        assert!(matches!(err, Unusable::Shared { mode: 0o777, .. }), "{err}");
    }
}
