//! Unpacking release tarballs that came from the network, without trusting them.
//!
//! `tar::Archive::unpack` follows the archive's word on symlinks, hard links and special
//! files; a hostile tarball can use those (or `..` and absolute names) to write outside the
//! destination. Here only plain files and directories with relative, `..`-free names are
//! accepted, every member is checked before anything is written (so a refused archive leaves
//! the destination empty), modes are reduced to 0644/0755, and the unpacked size is bounded
//! so a small gzip bomb cannot fill the disk.
//!
//! This is the code that installs: every archive an install downloads goes through it, and the
//! `unpack` fuzz target drives the same functions (docs/fuzzing.md).

use std::collections::{BTreeSet, HashSet};
use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

/// Bounds on what one archive may unpack to.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Sum of the members' sizes.
    pub max_bytes: u64,
    pub max_members: usize,
}

impl Default for Limits {
    /// Far above a sysroot (≈ 94 MB unpacked, about 4,300 files).
    fn default() -> Self {
        Limits {
            max_bytes: 2 << 30,
            max_members: 100_000,
        }
    }
}

#[derive(Debug)]
pub enum UnpackError {
    /// A member that could escape the destination or is not a plain file or directory.
    Unsafe {
        member: String,
        reason: &'static str,
    },
    /// Not a readable tar (or gzip) stream.
    Malformed(String),
    TooLarge(&'static str),
    /// Writing the destination failed.
    Io(io::Error),
}

impl fmt::Display for UnpackError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UnpackError::Unsafe { member, reason } => {
                write!(f, "refusing archive member `{member}`: {reason}")
            }
            UnpackError::Malformed(reason) => write!(f, "not a valid tar archive: {reason}"),
            UnpackError::TooLarge(what) => write!(f, "archive too large: {what}"),
            UnpackError::Io(err) => write!(f, "unpacking failed: {err}"),
        }
    }
}

impl std::error::Error for UnpackError {}

/// A member's name as a safe relative path, or why it is refused. `.` components are dropped;
/// an empty result (the archive root itself) is `Ok(None)`.
pub fn member_path(name: &[u8]) -> Result<Option<PathBuf>, &'static str> {
    use std::os::unix::ffi::OsStrExt;
    if name.contains(&0) {
        return Err("NUL byte in its name");
    }
    let path = Path::new(std::ffi::OsStr::from_bytes(name));
    let mut clean = PathBuf::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => clean.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err("`..` in its path"),
            Component::RootDir | Component::Prefix(_) => return Err("absolute path"),
        }
    }
    Ok((!clean.as_os_str().is_empty()).then_some(clean))
}

enum Kind {
    File { data: Vec<u8>, executable: bool },
    Directory,
}

/// Unpacks the tar stream `archive` into `dest`, which must be an empty or missing directory.
/// Returns the files written, relative to `dest`, sorted.
pub fn unpack(
    archive: impl Read,
    dest: &Path,
    limits: Limits,
) -> Result<Vec<PathBuf>, UnpackError> {
    let members = read_members(archive, limits)?;
    fs::create_dir_all(dest).map_err(UnpackError::Io)?;
    if fs::read_dir(dest)
        .map_err(UnpackError::Io)?
        .next()
        .is_some()
    {
        return Err(UnpackError::Io(io::Error::new(
            io::ErrorKind::AlreadyExists,
            format!("{} is not empty", dest.display()),
        )));
    }
    let mut files = Vec::new();
    for (path, kind) in members {
        let target = dest.join(&path);
        match kind {
            Kind::Directory => fs::create_dir_all(&target).map_err(UnpackError::Io)?,
            Kind::File { data, executable } => {
                if let Some(parent) = target.parent() {
                    fs::create_dir_all(parent).map_err(UnpackError::Io)?;
                }
                // create_new: never follow or overwrite anything already there.
                let mut file = OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(if executable { 0o755 } else { 0o644 })
                    .open(&target)
                    .map_err(UnpackError::Io)?;
                file.write_all(&data).map_err(UnpackError::Io)?;
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Unpacks a `.tar.gz` stream; see [`unpack`].
pub fn unpack_tar_gz(
    archive: impl Read,
    dest: &Path,
    limits: Limits,
) -> Result<Vec<PathBuf>, UnpackError> {
    unpack(flate2::read::GzDecoder::new(archive), dest, limits)
}

/// Reads and checks every member before anything touches the disk.
fn read_members(archive: impl Read, limits: Limits) -> Result<Vec<(PathBuf, Kind)>, UnpackError> {
    let malformed = |err: io::Error| UnpackError::Malformed(err.to_string());
    let mut archive = tar::Archive::new(archive);
    let mut members = Vec::new();
    let mut seen = BTreeSet::new();
    let mut total = 0u64;
    for entry in archive.entries().map_err(malformed)? {
        let mut entry = entry.map_err(malformed)?;
        let name = entry.path_bytes().into_owned();
        let shown = String::from_utf8_lossy(&name).into_owned();
        let unsafe_member = |reason| UnpackError::Unsafe {
            member: shown.clone(),
            reason,
        };
        let entry_type = entry.header().entry_type();
        let kind_is_dir = match entry_type {
            tar::EntryType::Regular | tar::EntryType::Continuous => false,
            tar::EntryType::Directory => true,
            tar::EntryType::Symlink => return Err(unsafe_member("symbolic link")),
            tar::EntryType::Link => return Err(unsafe_member("hard link")),
            tar::EntryType::Char | tar::EntryType::Block => {
                return Err(unsafe_member("device file"))
            }
            tar::EntryType::Fifo => return Err(unsafe_member("named pipe")),
            _ => return Err(unsafe_member("not a plain file or directory")),
        };
        let Some(path) = member_path(&name).map_err(unsafe_member)? else {
            if kind_is_dir {
                continue;
            }
            return Err(unsafe_member("a file with an empty name"));
        };
        if members.len() == limits.max_members {
            return Err(UnpackError::TooLarge("too many members"));
        }
        let kind = if kind_is_dir {
            if !seen.insert(path.clone()) {
                // A repeated directory is harmless; skip it.
                continue;
            }
            Kind::Directory
        } else {
            if !seen.insert(path.clone()) {
                return Err(unsafe_member("appears twice"));
            }
            // The header's size is not trusted for the allocation: read at most what the
            // remaining budget allows, then check nothing is left.
            let budget = limits.max_bytes - total;
            let mut data = Vec::new();
            (&mut entry)
                .take(budget)
                .read_to_end(&mut data)
                .map_err(malformed)?;
            if data.len() as u64 == budget && entry.read(&mut [0u8])? != 0 {
                return Err(UnpackError::TooLarge("more unpacked bytes than allowed"));
            }
            total += data.len() as u64;
            let mode = entry.header().mode().unwrap_or(0o644);
            Kind::File {
                data,
                executable: mode & 0o111 != 0,
            }
        };
        members.push((path, kind));
    }
    // A file and a directory (or a file below a file) of the same name: refuse before writing.
    // A set of the files, since a sysroot has thousands of members (its prebuilt C objects).
    let files: HashSet<&Path> = members
        .iter()
        .filter(|(_, kind)| matches!(kind, Kind::File { .. }))
        .map(|(path, _)| path.as_path())
        .collect();
    for (path, _) in &members {
        for ancestor in path.ancestors().skip(1) {
            if ancestor.as_os_str().is_empty() {
                break;
            }
            if files.contains(ancestor) {
                return Err(UnpackError::Unsafe {
                    member: path.display().to_string(),
                    reason: "below a member that is a file",
                });
            }
        }
    }
    Ok(members)
}

impl From<io::Error> for UnpackError {
    fn from(err: io::Error) -> Self {
        UnpackError::Malformed(err.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(kind: tar::EntryType, size: u64) -> tar::Header {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(size);
        header.set_mode(0o644);
        header
    }

    /// A tar with one member named `name` written raw (bypassing tar's own name checks).
    fn archive_with(name: &[u8], kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
        let mut header = header(
            kind,
            if kind == tar::EntryType::Regular {
                3
            } else {
                0
            },
        );
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name);
        if let Some(link) = link {
            header.set_link_name(link).unwrap();
        }
        header.set_cksum();
        let mut builder = tar::Builder::new(Vec::new());
        let data: &[u8] = if kind == tar::EntryType::Regular {
            b"abc"
        } else {
            b""
        };
        builder.append(&header, data).unwrap();
        builder.into_inner().unwrap()
    }

    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hyperlight-unpack-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn plain_files_and_directories_unpack() {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = header(tar::EntryType::Directory, 0);
        dir.set_path("pkg/bin").unwrap();
        dir.set_cksum();
        builder.append(&dir, &b""[..]).unwrap();
        let mut file = header(tar::EntryType::Regular, 2);
        file.set_path("pkg/bin/tool").unwrap();
        file.set_mode(0o4755);
        file.set_cksum();
        builder.append(&file, &b"hi"[..]).unwrap();
        let dest = scratch("plain");
        let files = unpack(
            builder.into_inner().unwrap().as_slice(),
            &dest,
            Limits::default(),
        )
        .unwrap();
        assert_eq!(files, [PathBuf::from("pkg/bin/tool")]);
        let meta = fs::metadata(dest.join("pkg/bin/tool")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        // setuid dropped, executable kept.
        assert_eq!(meta.permissions().mode() & 0o7777, 0o755);
        fs::remove_dir_all(dest).unwrap();
    }

    #[test]
    fn escaping_members_are_refused_and_nothing_is_written() {
        let cases: [(&[u8], tar::EntryType, Option<&str>, &str); 7] = [
            (b"../evil", tar::EntryType::Regular, None, "`..`"),
            (b"a/../../evil", tar::EntryType::Regular, None, "`..`"),
            (b"/etc/evil", tar::EntryType::Regular, None, "absolute"),
            (
                b"link",
                tar::EntryType::Symlink,
                Some("/etc"),
                "symbolic link",
            ),
            (
                b"hard",
                tar::EntryType::Link,
                Some("/etc/passwd"),
                "hard link",
            ),
            (b"dev", tar::EntryType::Char, None, "device file"),
            (b"fifo", tar::EntryType::Fifo, None, "named pipe"),
        ];
        for (name, kind, link, reason) in cases {
            let dest = scratch("escape");
            let err = unpack(
                archive_with(name, kind, link).as_slice(),
                &dest,
                Limits::default(),
            )
            .unwrap_err();
            assert!(err.to_string().contains(reason), "{err}");
            assert!(!dest.exists(), "a refused archive must write nothing");
        }
    }

    #[test]
    fn size_and_shape_limits() {
        let dest = scratch("limits");
        let small = Limits {
            max_bytes: 2,
            max_members: 10,
        };
        let err = unpack(
            archive_with(b"big", tar::EntryType::Regular, None).as_slice(),
            &dest,
            small,
        )
        .unwrap_err();
        assert!(matches!(err, UnpackError::TooLarge(_)), "{err}");

        let mut builder = tar::Builder::new(Vec::new());
        for name in ["a", "a/b"] {
            let mut file = header(tar::EntryType::Regular, 1);
            file.set_path(name).unwrap();
            file.set_cksum();
            builder.append(&file, &b"x"[..]).unwrap();
        }
        let err = unpack(
            builder.into_inner().unwrap().as_slice(),
            &dest,
            Limits::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string().contains("below a member that is a file"),
            "{err}"
        );
        assert!(!dest.exists());
    }
}
