//! File-system primitives with the permissions a CA needs.
//!
//! Private files are created with their final mode in the `open` call
//! (`O_CREAT|O_EXCL`, mode 0600), never `chmod`ed afterwards, so there is no
//! window in which a key is readable by others. Nothing here overwrites an
//! existing file except [`replace_public_file`], which swaps a CRL in with a
//! rename.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use crate::error::{CaError, Result};

/// Mode of private key files.
pub(crate) const PRIVATE_FILE_MODE: u32 = 0o600;
/// Mode of certificates and CRLs (public material, inside a 0700 directory).
pub(crate) const PUBLIC_FILE_MODE: u32 = 0o644;
/// Mode of the CA directories.
pub(crate) const PRIVATE_DIR_MODE: u32 = 0o700;
/// Largest CA file we read; keys, certificates and CRLs are far smaller.
const MAX_FILE_BYTES: u64 = 4 * 1024 * 1024;

/// Creates `path` (and missing parents, mode 0700) if missing; an existing
/// directory must already be closed to group and others.
pub(crate) fn ensure_private_dir(path: &Path) -> Result<()> {
    match fs::symlink_metadata(path) {
        Ok(_) => check_private_dir(path),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            DirBuilder::new()
                .recursive(true)
                .mode(PRIVATE_DIR_MODE)
                .create(path)
                .map_err(|e| CaError::io("create directory", path, e))?;
            // Another process may have created it first, with another mode.
            check_private_dir(path)
        }
        Err(e) => Err(CaError::io("stat", path, e)),
    }
}

/// Fails unless `path` is a directory without group/other permissions.
pub(crate) fn check_private_dir(path: &Path) -> Result<()> {
    let meta = fs::metadata(path).map_err(|e| CaError::io("stat", path, e))?;
    if !meta.is_dir() {
        return Err(CaError::io(
            "open directory",
            path,
            std::io::Error::new(ErrorKind::NotADirectory, "not a directory"),
        ));
    }
    check_mode(path, meta.mode())
}

fn check_mode(path: &Path, mode: u32) -> Result<()> {
    if mode & 0o077 != 0 {
        return Err(CaError::InsecurePermissions {
            path: path.to_path_buf(),
            mode: mode & 0o7777,
        });
    }
    Ok(())
}

/// Writes a new file with `mode`; fails if it already exists.
pub(crate) fn write_new_file(path: &Path, contents: &[u8], mode: u32) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| {
            if e.kind() == ErrorKind::AlreadyExists {
                CaError::AlreadyInitialized {
                    path: path.to_path_buf(),
                }
            } else {
                CaError::io("create", path, e)
            }
        })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(|e| CaError::io("write", path, e))
}

/// Replaces a public file atomically (temporary file + rename).
pub(crate) fn replace_public_file(path: &Path, contents: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let tmp = temp_path_for(path)?;
    write_new_file(&tmp, contents, PUBLIC_FILE_MODE)?;
    if let Err(e) = fs::rename(&tmp, path) {
        let _ = fs::remove_file(&tmp);
        return Err(CaError::io("rename", path, e));
    }
    sync_dir(dir)
}

/// Publishes a complete temporary file under `path` unless `path` exists.
///
/// Uses a hard link, which fails with `AlreadyExists` instead of replacing:
/// the file appears with its full contents or not at all. Returns `false`
/// when another writer got there first. The temporary name is removed either way.
pub(crate) fn publish_new(tmp: &Path, path: &Path) -> Result<bool> {
    let linked = fs::hard_link(tmp, path);
    let _ = fs::remove_file(tmp);
    match linked {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(CaError::io("link", path, e)),
    }
}

/// A fresh temporary path next to `path`.
pub(crate) fn temp_path_for(path: &Path) -> Result<std::path::PathBuf> {
    let dir = path.parent().unwrap_or(Path::new("."));
    Ok(dir.join(format!(".{}.tmp-{}", file_name(path), random_suffix()?)))
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

fn random_suffix() -> Result<String> {
    let mut bytes = [0u8; 8];
    rand::RngCore::try_fill_bytes(&mut rand::rngs::OsRng, &mut bytes)
        .map_err(|_| CaError::Random)?;
    Ok(hex::encode(bytes))
}

/// Flushes a directory entry change to disk.
pub(crate) fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| CaError::io("sync directory", dir, e))
}

/// Reads a public file (certificate, CRL), bounded in size.
pub(crate) fn read_public(path: &Path) -> Result<Vec<u8>> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    read_bounded(path, file)
}

/// Reads a private key file, refusing one that group or others can access.
pub(crate) fn read_private(path: &Path) -> Result<zeroize::Zeroizing<Vec<u8>>> {
    let file = File::open(path).map_err(|e| open_error(path, e))?;
    let meta = file.metadata().map_err(|e| CaError::io("stat", path, e))?;
    check_mode(path, meta.mode())?;
    read_bounded(path, file).map(zeroize::Zeroizing::new)
}

fn open_error(path: &Path, e: std::io::Error) -> CaError {
    if e.kind() == ErrorKind::NotFound {
        CaError::NotInitialized {
            path: path.to_path_buf(),
        }
    } else {
        CaError::io("open", path, e)
    }
}

fn read_bounded(path: &Path, file: File) -> Result<Vec<u8>> {
    let mut buf = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut buf)
        .map_err(|e| CaError::io("read", path, e))?;
    if buf.len() as u64 > MAX_FILE_BYTES {
        return Err(CaError::InvalidCertificateFile {
            path: path.to_path_buf(),
            reason: "file is implausibly large",
        });
    }
    Ok(buf)
}

/// Whether `path` exists (any file type); errors other than "not found" count as existing.
pub(crate) fn exists(path: &Path) -> bool {
    !matches!(fs::symlink_metadata(path), Err(e) if e.kind() == ErrorKind::NotFound)
}
