//! File work shared by backup and restore: the destination directory's rules, copying with a
//! checksum, fsyncs of files and directories, and removing an unfinished destination.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};

/// Bytes read or written at a time.
const CHUNK: usize = 1 << 20;

/// A destination directory being filled: unless [`Dest::keep`] is called, dropping it
/// removes everything written into it (and the directory itself if it was created here).
pub(crate) struct Dest {
    path: PathBuf,
    created: bool,
    kept: bool,
}

impl Dest {
    /// Takes `path` as a destination: it must not exist, or be an empty directory (not a
    /// link to one). `what` names it in errors ("backup destination", "restore target").
    pub(crate) fn claim(path: &Path, what: &str) -> Result<Dest> {
        let shown = path.display();
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => Err(Error::invalid(format!(
                "{what} {shown} is a symbolic link: name a real directory"
            ))),
            Ok(meta) if !meta.is_dir() => Err(Error::invalid(format!(
                "{what} {shown} exists and is not a directory"
            ))),
            Ok(_) => {
                let mut entries = std::fs::read_dir(path)
                    .map_err(|e| Error::io(format!("reading {shown}"), e))?;
                if entries.next().is_some() {
                    return Err(Error::invalid(format!(
                        "{what} {shown} is not empty: name a new or empty directory"
                    )));
                }
                Ok(Dest {
                    path: path.to_path_buf(),
                    created: false,
                    kept: false,
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| Error::io(format!("creating {}", parent.display()), e))?;
                }
                // Not create_dir_all: another backup claiming the same name loses here.
                std::fs::create_dir(path).map_err(|e| {
                    if e.kind() == std::io::ErrorKind::AlreadyExists {
                        Error::invalid(format!("{what} {shown} was created by someone else"))
                    } else {
                        Error::io(format!("creating {shown}"), e)
                    }
                })?;
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    sync_dir(parent)?;
                }
                Ok(Dest {
                    path: path.to_path_buf(),
                    created: true,
                    kept: false,
                })
            }
            Err(e) => Err(Error::io(format!("reading {shown}"), e)),
        }
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The destination is complete: keep it.
    pub(crate) fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Dest {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Best effort: the error that got here is the one to report.
        if self.created {
            let _ = std::fs::remove_dir_all(&self.path);
        } else if let Ok(entries) = std::fs::read_dir(&self.path) {
            for entry in entries.flatten() {
                let p = entry.path();
                let _ = match entry.file_type() {
                    Ok(t) if t.is_dir() => std::fs::remove_dir_all(&p),
                    _ => std::fs::remove_file(&p),
                };
            }
        }
    }
}

/// The path with every existing part resolved (links followed) and `..` applied: where
/// `path` is or would be, for comparing locations of paths that may not exist yet. Parts are
/// taken left to right: while the path so far exists it is resolved on disk, so `..` goes to
/// the real parent of a link's target; past the first missing part nothing can be a link,
/// and `..` is taken lexically (`backups/x/../../journal` is `journal`).
pub(crate) fn resolve(path: &Path) -> Result<PathBuf> {
    use std::path::Component;
    let absolute = if path.is_absolute() {
        path.to_path_buf()
    } else {
        std::env::current_dir()
            .map_err(|e| Error::io("reading the current directory", e))?
            .join(path)
    };
    let mut out = PathBuf::new();
    for part in absolute.components() {
        match part {
            Component::Prefix(_) | Component::RootDir => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            Component::Normal(name) => {
                out.push(name);
                if let Ok(found) = out.canonicalize() {
                    out = found;
                }
            }
        }
    }
    Ok(out)
}

/// Checks that `path` names a regular file, not a link, directory or device.
pub(crate) fn regular_file(path: &Path) -> Result<std::fs::Metadata> {
    let meta = std::fs::symlink_metadata(path)
        .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
    if meta.file_type().is_symlink() {
        return Err(Error::invalid(format!(
            "{} is a symbolic link: only regular files are copied",
            path.display()
        )));
    }
    if !meta.is_file() {
        return Err(Error::invalid(format!(
            "{} is not a regular file: only regular files are copied",
            path.display()
        )));
    }
    Ok(meta)
}

/// Copies the regular file `from` to the new file `to` and syncs it; returns its size and
/// CRC32C (of the bytes written).
pub(crate) fn copy_file(from: &Path, to: &Path) -> Result<(u64, u32)> {
    regular_file(from)?;
    let mut src =
        File::open(from).map_err(|e| Error::io(format!("opening {}", from.display()), e))?;
    let mut dst = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(to)
        .map_err(|e| Error::io(format!("creating {}", to.display()), e))?;
    let mut buf = vec![0u8; CHUNK];
    let (mut bytes, mut crc) = (0u64, 0u32);
    loop {
        let n = src
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", from.display()), e))?;
        if n == 0 {
            break;
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        bytes += n as u64;
        dst.write_all(&buf[..n])
            .map_err(|e| Error::io(format!("writing {}", to.display()), e))?;
    }
    dst.sync_all()
        .map_err(|e| Error::io(format!("syncing {}", to.display()), e))?;
    Ok((bytes, crc))
}

/// The size and CRC32C of the regular file `path`.
pub(crate) fn file_sum(path: &Path) -> Result<(u64, u32)> {
    regular_file(path)?;
    let mut f =
        File::open(path).map_err(|e| Error::io(format!("opening {}", path.display()), e))?;
    let mut buf = vec![0u8; CHUNK];
    let (mut bytes, mut crc) = (0u64, 0u32);
    loop {
        let n = f
            .read(&mut buf)
            .map_err(|e| Error::io(format!("reading {}", path.display()), e))?;
        if n == 0 {
            return Ok((bytes, crc));
        }
        crc = crc32c::crc32c_append(crc, &buf[..n]);
        bytes += n as u64;
    }
}

/// Writes `bytes` to `path` through a temporary file renamed over it, syncing the file and
/// its directory: a reader sees the whole file or none.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp"));
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(|e| Error::io(format!("creating {}", tmp.display()), e))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .map_err(|e| Error::io(format!("writing {}", tmp.display()), e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        Error::io(
            format!("renaming {} to {}", tmp.display(), path.display()),
            e,
        )
    })?;
    sync_dir(dir)
}

/// Syncs a file that was written and closed (redb's file).
pub(crate) fn sync_file(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(format!("syncing {}", path.display()), e))
}

/// Syncs a directory, so that the entries created in it are durable.
pub(crate) fn sync_dir(path: &Path) -> Result<()> {
    File::open(path)
        .and_then(|f| f.sync_all())
        .map_err(|e| Error::io(format!("syncing the directory {}", path.display()), e))
}

/// Creates the directory `path` (its parent exists) and syncs the parent.
pub(crate) fn make_dir(path: &Path) -> Result<()> {
    std::fs::create_dir(path).map_err(|e| Error::io(format!("creating {}", path.display()), e))?;
    if let Some(parent) = path.parent() {
        sync_dir(parent)?;
    }
    Ok(())
}

/// A manifest path (`/`-separated, validated) as a path under `base`.
pub(crate) fn under(base: &Path, relative: &str) -> PathBuf {
    relative
        .split('/')
        .fold(base.to_path_buf(), |p, c| p.join(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_destination_must_be_new_or_empty_and_is_removed_unless_kept() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let fresh = tmp.path().join("a").join("b");
        {
            let d = Dest::claim(&fresh, "backup destination")?;
            std::fs::write(d.path().join("x"), b"1").map_err(|e| Error::io("write", e))?;
        }
        assert!(!fresh.exists(), "removed when not kept");
        let empty = tmp.path().join("empty");
        std::fs::create_dir(&empty).map_err(|e| Error::io("mkdir", e))?;
        {
            let d = Dest::claim(&empty, "backup destination")?;
            std::fs::create_dir(d.path().join("sub")).map_err(|e| Error::io("mkdir", e))?;
        }
        assert!(empty.is_dir(), "an existing directory stays");
        assert_eq!(
            std::fs::read_dir(&empty)
                .map_err(|e| Error::io("read_dir", e))?
                .count(),
            0
        );
        std::fs::write(empty.join("f"), b"1").map_err(|e| Error::io("write", e))?;
        let err = Dest::claim(&empty, "backup destination").err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.message().contains("not empty")),
            "{err:?}"
        );
        let err = Dest::claim(&empty.join("f"), "backup destination").err();
        assert!(
            err.as_ref()
                .is_some_and(|e| e.message().contains("not a directory")),
            "{err:?}"
        );
        #[cfg(unix)]
        {
            let link = tmp.path().join("link");
            let target = tmp.path().join("target");
            std::fs::create_dir(&target).map_err(|e| Error::io("mkdir", e))?;
            std::os::unix::fs::symlink(&target, &link).map_err(|e| Error::io("symlink", e))?;
            let err = Dest::claim(&link, "backup destination").err();
            assert!(
                err.as_ref()
                    .is_some_and(|e| e.message().contains("symbolic link")),
                "{err:?}"
            );
        }
        let kept = tmp.path().join("kept");
        Dest::claim(&kept, "backup destination")?.keep();
        assert!(kept.is_dir());
        Ok(())
    }

    #[test]
    fn resolve_follows_existing_ancestors_and_appends_the_rest() -> Result<()> {
        let tmp = tempfile::tempdir().map_err(|e| Error::io("tempdir", e))?;
        let real = tmp.path().canonicalize().map_err(|e| Error::io("c", e))?;
        assert_eq!(
            resolve(&tmp.path().join("x").join("y"))?,
            real.join("x").join("y")
        );
        std::fs::create_dir(real.join("b")).map_err(|e| Error::io("mkdir", e))?;
        assert_eq!(
            resolve(&real.join("b/x/../../journal/./y"))?,
            real.join("journal").join("y")
        );
        #[cfg(unix)]
        {
            // `..` after a link is the parent of its target.
            std::fs::create_dir_all(real.join("deep/er")).map_err(|e| Error::io("mkdir", e))?;
            std::os::unix::fs::symlink(real.join("deep/er"), real.join("link"))
                .map_err(|e| Error::io("symlink", e))?;
            assert_eq!(
                resolve(&real.join("link/../z"))?,
                real.join("deep").join("z")
            );
        }
        Ok(())
    }
}
