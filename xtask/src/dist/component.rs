//! Deterministic release files: a sysroot as a rust-installer component and the runner binary.
//!
//! Same input bytes, same tarball bytes: entries sorted, directories listed explicitly,
//! mtime 0, owner 0:0 with no names, mode 0644 (0755 for directories and executables), gzip at a
//! fixed level with no timestamp in its header.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use flate2::write::GzEncoder;
use flate2::Compression;

use super::error::DistError;
use crate::sysroot::VERSION_FILE;
use crate::toolchain::RustcVersion;
use hyperlight_install::manifest::{
    installed_sha256, sha256_hex, RunnerEntry, SourceEntry, SysrootEntry,
};
use hyperlight_install::runner::RUNNER;
use hyperlight_install::Target;

/// The one gzip level of every release tarball (also used by the size benchmark).
pub const GZIP_LEVEL: u32 = 6;
pub const RUST_INSTALLER_VERSION: &str = "3";

/// Files of a tarball by path relative to its top directory; the flag marks executables.
#[derive(Default)]
pub struct Tarball {
    files: BTreeMap<String, (Vec<u8>, bool)>,
}

impl Tarball {
    pub fn add(&mut self, path: &str, data: Vec<u8>, executable: bool) {
        self.files.insert(path.to_owned(), (data, executable));
    }

    /// Writes `<top>/...` as a gzip-compressed tar; returns the tarball's bytes.
    pub fn to_tar_gz(&self, top: &str) -> Result<Vec<u8>> {
        let mut dirs = std::collections::BTreeSet::new();
        dirs.insert(top.to_owned());
        for path in self.files.keys() {
            let mut parent = Path::new(path).parent();
            while let Some(dir) = parent.filter(|d| !d.as_os_str().is_empty()) {
                dirs.insert(format!("{top}/{}", dir.display()));
                parent = dir.parent();
            }
        }
        let mut entries: BTreeMap<String, Option<(&[u8], bool)>> =
            dirs.into_iter().map(|dir| (dir, None)).collect();
        for (path, (data, executable)) in &self.files {
            entries.insert(
                format!("{top}/{path}"),
                Some((data.as_slice(), *executable)),
            );
        }

        let gzip = GzEncoder::new(Vec::new(), Compression::new(GZIP_LEVEL));
        let mut tar = tar::Builder::new(gzip);
        for (path, entry) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_mtime(0);
            header.set_uid(0);
            header.set_gid(0);
            match entry {
                None => {
                    header.set_entry_type(tar::EntryType::Directory);
                    header.set_mode(0o755);
                    header.set_size(0);
                    tar.append_data(&mut header, format!("{path}/"), std::io::empty())?;
                }
                Some((data, executable)) => {
                    header.set_entry_type(tar::EntryType::Regular);
                    header.set_mode(if executable { 0o755 } else { 0o644 });
                    header.set_size(data.len() as u64);
                    tar.append_data(&mut header, &path, data)?;
                }
            }
        }
        let mut gzip = tar.into_inner()?;
        gzip.flush()?;
        Ok(gzip.finish()?)
    }
}

/// The file name (without `.tar.gz`) of `target`'s sysroot component built by `version`.
pub fn sysroot_package_name(version: &RustcVersion, target: Target) -> String {
    let short: String = version.commit_hash.chars().take(9).collect();
    format!("rust-std-{}-{short}-{target}", version.release)
}

/// The file name (without `.tar.gz`) of `target`'s source archive of runner version `version`.
pub fn source_package_name(target: Target, version: &str) -> String {
    let kind = match target {
        Target::None => "none",
        Target::Hermit => "hermit",
        Target::Aarch64 => "aarch64-none",
    };
    format!("hyperlight-{kind}-src-{version}")
}

/// Files of `<sysroot>/lib/rustlib/<target>`, as paths relative to `sysroot`.
pub fn sysroot_files(sysroot: &Path, target: Target) -> Result<BTreeMap<String, PathBuf>> {
    let mut files = BTreeMap::new();
    walk(&target.dir(sysroot), sysroot, &mut files)?;
    Ok(files)
}

/// Adds the files below `dir` to `out`, by their paths relative to `root`.
fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.is_dir() {
            walk(&path, root, out)?;
        } else {
            let relative = path.strip_prefix(root)?.to_string_lossy().into_owned();
            out.insert(relative, path);
        }
    }
    Ok(())
}

/// Packs `target` of the sysroot at `sysroot` (as written by `cargo xtask sysroot`) into
/// `out_dir` as a rust-installer component tarball.
pub fn sysroot_tarball(
    sysroot: &Path,
    version: &RustcVersion,
    target: Target,
    out_dir: &Path,
) -> Result<SysrootEntry> {
    let component = target.component();
    let mut payload = BTreeMap::new();
    for (relative, path) in sysroot_files(sysroot, target)? {
        payload.insert(relative, std::fs::read(&path)?);
    }
    let manifest_in: String = payload
        .keys()
        .map(|path| format!("file:{path}\n"))
        .collect();
    let mut tarball = Tarball::default();
    tarball.add("components", format!("{component}\n").into_bytes(), false);
    tarball.add(
        "rust-installer-version",
        format!("{RUST_INSTALLER_VERSION}\n").into_bytes(),
        false,
    );
    tarball.add(
        &format!("{component}/manifest.in"),
        manifest_in.into_bytes(),
        false,
    );
    let hashes: Vec<(&str, String)> = payload
        .iter()
        .map(|(path, data)| (path.as_str(), sha256_hex(data)))
        .collect();
    let installed = installed_sha256(hashes.iter().map(|(p, h)| (*p, h.as_str())));
    for (relative, data) in payload {
        tarball.add(&format!("{component}/{relative}"), data, false);
    }
    let name = sysroot_package_name(version, target);
    let bytes = tarball.to_tar_gz(&name)?;
    let url = format!("{name}.tar.gz");
    std::fs::write(out_dir.join(&url), &bytes)?;
    Ok(SysrootEntry {
        release: version.release.clone(),
        commit_hash: version.commit_hash.clone(),
        commit_date: version.commit_date.clone(),
        host: version.host.clone(),
        url,
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
        installed_sha256: installed,
    })
}

/// The `rustc -vV` recorded in `target`'s part of a sysroot built by `cargo xtask sysroot`.
pub fn sysroot_version(sysroot: &Path, target: Target) -> Result<RustcVersion, DistError> {
    let text = std::fs::read_to_string(target.dir(sysroot).join(VERSION_FILE)).map_err(|_| {
        DistError::NotASysroot {
            dir: sysroot.to_owned(),
        }
    })?;
    RustcVersion::parse(&text).map_err(|_| DistError::NotASysroot {
        dir: sysroot.to_owned(),
    })
}

/// Packs `target`'s source tree `tree` (see `hyperlight_install::build`) into `out_dir` as
/// `hyperlight-<none|hermit>-src-<version>.tar.gz`, under a top directory of the same name.
pub fn source_archive(
    tree: &Path,
    version: &str,
    target: Target,
    out_dir: &Path,
) -> Result<SourceEntry> {
    let mut files = BTreeMap::new();
    walk(tree, tree, &mut files)?;
    let mut tarball = Tarball::default();
    for (relative, path) in files {
        tarball.add(&relative, std::fs::read(&path)?, false);
    }
    let name = source_package_name(target, version);
    let bytes = tarball.to_tar_gz(&name)?;
    let url = format!("{name}.tar.gz");
    std::fs::write(out_dir.join(&url), &bytes)?;
    Ok(SourceEntry {
        version: version.to_owned(),
        url,
        sha256: sha256_hex(&bytes),
        size: bytes.len() as u64,
    })
}

/// Copies the runner binary as `hyperlight-run-<version>-<host>`: a plain executable, so that
/// install.sh can run it (after checking its size and sha256) to install everything else.
pub fn runner_file(
    binary: &Path,
    version: &str,
    host: &str,
    out_dir: &Path,
) -> Result<RunnerEntry> {
    let data = std::fs::read(binary).with_context(|| format!("reading {}", binary.display()))?;
    let url = format!("{RUNNER}-{version}-{host}");
    let path = out_dir.join(&url);
    std::fs::write(&path, &data)?;
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755))?;
    Ok(RunnerEntry {
        version: version.to_owned(),
        host: host.to_owned(),
        url,
        sha256: sha256_hex(&data),
        size: data.len() as u64,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tarballs_are_deterministic_and_sorted() {
        let make = |order: &[&str]| {
            let mut tarball = Tarball::default();
            for path in order {
                tarball.add(path, path.as_bytes().to_vec(), path.ends_with(".sh"));
            }
            tarball.to_tar_gz("top").unwrap()
        };
        let a = make(&["b/x", "a.sh", "b/c/d"]);
        assert_eq!(a, make(&["b/c/d", "b/x", "a.sh"]));
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(a.as_slice()));
        let listing: Vec<(String, u32, u64)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let h = e.header();
                (
                    e.path().unwrap().display().to_string(),
                    h.mode().unwrap(),
                    h.mtime().unwrap(),
                )
            })
            .collect();
        assert_eq!(
            listing,
            [
                ("top/".into(), 0o755, 0),
                ("top/a.sh".into(), 0o755, 0),
                ("top/b/".into(), 0o755, 0),
                ("top/b/c/".into(), 0o755, 0),
                ("top/b/c/d".into(), 0o644, 0),
                ("top/b/x".into(), 0o644, 0),
            ]
        );
    }
}
