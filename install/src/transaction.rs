//! Installing a sysroot tree into a toolchain's own sysroot, and removing it again.
//!
//! The records follow rust-installer, so the component can be listed and removed like any
//! other: a `rust-std-x86_64-hyperlight-none` line in `lib/rustlib/components` and the file list
//! in `lib/rustlib/manifest-rust-std-x86_64-hyperlight-none`.
//!
//! Installing is a transaction: the new tree is staged beside the old one and swapped in by
//! rename, so a killed install leaves either the previous state or (once the swap has happened)
//! one that the next run completes.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};

use crate::Target;

/// The paths one installation touches inside a sysroot.
pub struct Layout {
    rustlib: PathBuf,
    target: Target,
}

/// What `install` did, for the message the user sees.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Installed,
    AlreadyInstalled,
}

impl Layout {
    pub fn new(sysroot: &Path, target: Target) -> Layout {
        Layout {
            rustlib: sysroot.join("lib/rustlib"),
            target,
        }
    }

    pub fn target_dir(&self) -> PathBuf {
        self.rustlib.join(self.target.name())
    }
    fn staged(&self) -> PathBuf {
        self.rustlib.join(format!(".{}.new", self.target))
    }
    fn previous(&self) -> PathBuf {
        self.rustlib.join(format!(".{}.old", self.target))
    }
    fn manifest(&self) -> PathBuf {
        self.rustlib
            .join(format!("manifest-{}", self.target.component()))
    }
    fn components(&self) -> PathBuf {
        self.rustlib.join("components")
    }

    /// Serializes installs into the same sysroot until the returned handle is dropped. The lock
    /// is taken on `lib/rustlib` itself so that no lock file is left behind in the toolchain.
    fn lock(&self) -> Result<File> {
        fs::create_dir_all(&self.rustlib)
            .with_context(|| format!("creating {}", self.rustlib.display()))?;
        let dir = File::open(&self.rustlib)
            .with_context(|| format!("opening {}", self.rustlib.display()))?;
        dir.lock()
            .with_context(|| format!("locking {}", self.rustlib.display()))?;
        Ok(dir)
    }

    /// Finishes or undoes what an interrupted install left behind.
    fn recover(&self) -> Result<()> {
        let (target, previous, staged) = (self.target_dir(), self.previous(), self.staged());
        if previous.exists() {
            if target.exists() {
                // Killed after the swap: the new tree is complete, only its records may be stale.
                write_records(self)?;
                remove_tree(&previous)?;
            } else {
                // Killed between the two renames: put the previous tree back.
                fs::rename(&previous, &target)?;
            }
        }
        if staged.exists() {
            remove_tree(&staged)?;
        }
        Ok(())
    }
}

/// Installs the tree `source/lib/rustlib/<target>` into `sysroot`.
pub fn install(source: &Path, sysroot: &Path, target: Target) -> Result<Outcome> {
    let layout = Layout::new(sysroot, target);
    let _lock = layout.lock()?;
    layout.recover()?;
    let source = target.dir(source);
    if !source.join("target.json").is_file() {
        bail!(
            "{} holds no built sysroot; run `cargo xtask sysroot --target {target}` first",
            source.display()
        );
    }
    if trees_equal(&source, &layout.target_dir())? && is_recorded(&layout)? {
        register_runtime(&layout)?;
        return Ok(Outcome::AlreadyInstalled);
    }

    let staged = layout.staged();
    copy_tree(&source, &staged)
        .with_context(|| format!("staging the sysroot in {}", staged.display()))?;
    let target = layout.target_dir();
    let had_previous = target.exists();
    if had_previous {
        fs::rename(&target, layout.previous())?;
    }
    fs::rename(&staged, &target)?;
    write_records(&layout)?;
    if had_previous {
        remove_tree(&layout.previous())?;
    }
    register_runtime(&layout)?;
    Ok(Outcome::Installed)
}

/// Guest projects of x86_64-hyperlight-none depend on the runtime the target carries; std
/// guests do not.
fn register_runtime(layout: &Layout) -> Result<()> {
    if layout.target == Target::None {
        crate::runtime::register(&layout.target_dir())?;
    }
    Ok(())
}

/// Uninstalls `named` targets from `sysroot`, every target when none is named, and tells `say`
/// what it did: each removal, and the absence of a named target or of x86_64-hyperlight-none
/// (the others are installed on request, so their absence goes unsaid).
pub fn uninstall_targets(
    sysroot: &Path,
    named: &[Target],
    mut say: impl FnMut(String),
) -> Result<()> {
    let targets = if named.is_empty() {
        &Target::ALL[..]
    } else {
        named
    };
    for &target in targets {
        if uninstall(sysroot, target)? {
            say(format!("removed {target} from {}", sysroot.display()));
        } else if !named.is_empty() || target == Target::None {
            say(format!(
                "{target} is not installed in {}",
                sysroot.display()
            ));
        }
    }
    Ok(())
}

/// Removes exactly the files the install records list, then the records. Returns whether the
/// component was installed at all.
pub fn uninstall(sysroot: &Path, target: Target) -> Result<bool> {
    let layout = Layout::new(sysroot, target);
    if !layout.rustlib.exists() {
        return Ok(false);
    }
    let _lock = layout.lock()?;
    layout.recover()?;
    let manifest = match fs::read_to_string(layout.manifest()) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err).context(format!("reading {}", layout.manifest().display())),
    };
    for line in manifest.lines() {
        let Some(relative) = line.strip_prefix("file:") else {
            continue;
        };
        let path = sysroot.join(relative);
        match fs::remove_file(&path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => return Err(err).context(format!("removing {}", path.display())),
        }
        remove_empty_parents(&path, &layout.rustlib);
    }
    fs::remove_file(layout.manifest())?;
    let components = read_components(&layout)?;
    write_atomically(
        &layout.components(),
        &render_components(components.iter().filter(|c| *c != target.component())),
    )?;
    // This sysroot's records no longer name the target, so it is not among these.
    if target == Target::None && crate::runner::toolchains_with_target(Target::None).is_empty() {
        crate::runtime::unregister()?;
    }
    Ok(true)
}

/// The `installed-sha256` of the target as installed in `sysroot` (see the manifest), `None`
/// when it is not installed: lets an installer tell "already installed" without a download.
pub fn installed_sha256(sysroot: &Path, target: Target) -> Result<Option<String>> {
    let layout = Layout::new(sysroot, target);
    if !layout.target_dir().is_dir() {
        return Ok(None);
    }
    let mut files = Vec::new();
    for path in files_under(&layout.target_dir())? {
        let data = fs::read(&path).with_context(|| format!("reading {}", path.display()))?;
        let relative = path
            .strip_prefix(sysroot)
            .unwrap()
            .to_string_lossy()
            .into_owned();
        files.push((relative, crate::manifest::sha256_hex(&data)));
    }
    files.sort();
    if !is_recorded(&layout)? {
        return Ok(None);
    }
    Ok(Some(crate::manifest::installed_sha256(
        files.iter().map(|(p, h)| (p.as_str(), h.as_str())),
    )))
}

fn is_recorded(layout: &Layout) -> Result<bool> {
    let listed = fs::read_to_string(layout.manifest()).ok();
    Ok(read_components(layout)?
        .iter()
        .any(|c| c == layout.target.component())
        && listed.as_deref()
            == Some(render_manifest(&layout.target_dir(), &layout.rustlib)?.as_str()))
}

fn write_records(layout: &Layout) -> Result<()> {
    write_atomically(
        &layout.manifest(),
        &render_manifest(&layout.target_dir(), &layout.rustlib)?,
    )?;
    let mut components = read_components(layout)?;
    let component = layout.target.component();
    if !components.iter().any(|c| c == component) {
        components.push(component.to_owned());
    }
    write_atomically(&layout.components(), &render_components(components.iter()))
}

/// rust-installer's file list: `file:` and the path relative to the sysroot, sorted.
fn render_manifest(target_dir: &Path, rustlib: &Path) -> Result<String> {
    let sysroot = rustlib.parent().and_then(Path::parent).unwrap();
    let mut lines: Vec<String> = files_under(target_dir)?
        .iter()
        .map(|path| format!("file:{}\n", path.strip_prefix(sysroot).unwrap().display()))
        .collect();
    lines.sort();
    Ok(lines.concat())
}

fn read_components(layout: &Layout) -> Result<Vec<String>> {
    match fs::read_to_string(layout.components()) {
        Ok(text) => Ok(text
            .lines()
            .filter(|l| !l.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(err) => Err(err).context(format!("reading {}", layout.components().display())),
    }
}

fn render_components<'a>(components: impl Iterator<Item = &'a String>) -> String {
    components.map(|c| format!("{c}\n")).collect()
}

/// Writes through a temporary file and a rename, so readers see the old or the new content.
pub fn write_atomically(path: &Path, contents: &str) -> Result<()> {
    let tmp = path.with_extension("tmp");
    fs::write(&tmp, contents).with_context(|| format!("writing {}", tmp.display()))?;
    fs::rename(&tmp, path).with_context(|| format!("replacing {}", path.display()))
}

/// Every regular file below `dir`, recursively.
fn files_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                pending.push(entry.path());
            } else {
                files.push(entry.path());
            }
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    for file in files_under(from)? {
        let dest = to.join(file.strip_prefix(from).unwrap());
        fs::create_dir_all(dest.parent().unwrap())?;
        fs::copy(&file, &dest)
            .with_context(|| format!("copying {} to {}", file.display(), dest.display()))?;
    }
    Ok(())
}

pub(crate) fn trees_equal(a: &Path, b: &Path) -> Result<bool> {
    if !b.exists() {
        return Ok(false);
    }
    let (files_a, files_b) = (files_under(a)?, files_under(b)?);
    let relative = |files: &[PathBuf], root: &Path| -> Vec<PathBuf> {
        files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap().to_path_buf())
            .collect()
    };
    if relative(&files_a, a) != relative(&files_b, b) {
        return Ok(false);
    }
    for (fa, fb) in files_a.iter().zip(&files_b) {
        if fs::metadata(fa)?.len() != fs::metadata(fb)?.len() || fs::read(fa)? != fs::read(fb)? {
            return Ok(false);
        }
    }
    Ok(true)
}

pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    fs::remove_dir_all(path).with_context(|| format!("removing {}", path.display()))
}

/// Removes the directories an uninstall emptied, up to (not including) `stop`.
fn remove_empty_parents(file: &Path, stop: &Path) {
    let mut dir = file.parent();
    while let Some(d) = dir {
        if d == stop || fs::remove_dir(d).is_err() {
            break;
        }
        dir = d.parent();
    }
}
