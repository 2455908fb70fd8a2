//! The installed `hyperlight-run`: where `cargo install` would put it, replacing it without
//! disturbing a running copy, and removing it once no toolchain has any of the targets.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::c_objects::FRONT;
use crate::Target;

pub const RUNNER: &str = "hyperlight-run";

/// Where `cargo install` would put a binary: `$CARGO_INSTALL_ROOT/bin`, `$CARGO_HOME/bin` or
/// `~/.cargo/bin`.
pub fn bin_dir() -> Result<PathBuf> {
    let root = std::env::var_os("CARGO_INSTALL_ROOT")
        .map(PathBuf::from)
        .map_or_else(cargo_home, Ok)?;
    Ok(root.join("bin"))
}

/// `$CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> Result<PathBuf> {
    std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("neither CARGO_HOME nor HOME is set; set CARGO_HOME")
}

/// `$RUSTUP_HOME`, else `~/.rustup`.
pub fn rustup_home() -> Option<PathBuf> {
    std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rustup")))
}

/// Copies `built` into `bin_dir` through a temporary name, so a running `hyperlight-run` is
/// never overwritten in place, and links `hyperlight-cc` (the guest config's C compiler) to it.
pub fn install(built: &Path, bin_dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let dest = bin_dir.join(RUNNER);
    let tmp = bin_dir.join(format!(".{RUNNER}.tmp"));
    fs::copy(built, &tmp)
        .with_context(|| format!("copying {} to {}", built.display(), tmp.display()))?;
    fs::rename(&tmp, &dest).with_context(|| format!("replacing {}", dest.display()))?;
    let front = bin_dir.join(FRONT);
    if fs::read_link(&front).ok().as_deref() != Some(Path::new(RUNNER)) {
        let tmp = bin_dir.join(format!(".{FRONT}.tmp"));
        let _ = fs::remove_file(&tmp);
        std::os::unix::fs::symlink(RUNNER, &tmp)
            .with_context(|| format!("linking {}", tmp.display()))?;
        fs::rename(&tmp, &front).with_context(|| format!("replacing {}", front.display()))?;
    }
    Ok(dest)
}

/// What `uninstall` did with the runner.
#[derive(Debug, PartialEq, Eq)]
pub enum Removal {
    Removed(PathBuf),
    /// Another toolchain (its sysroot) still has the target.
    Kept {
        runner: PathBuf,
        user: PathBuf,
    },
    NotInstalled,
}

/// Removes the installed runner unless a toolchain still has one of the targets installed:
/// `sysroot` itself, or another rustup toolchain.
pub fn uninstall(sysroot: &Path) -> Result<Removal> {
    let runner = bin_dir()?.join(RUNNER);
    if !runner.exists() {
        return Ok(Removal::NotInstalled);
    }
    let user = Target::ALL.into_iter().find_map(|target| {
        if has_target(sysroot, target) {
            return Some(sysroot.to_owned());
        }
        toolchains_with_target(target)
            .into_iter()
            .find(|other| !same_dir(other, sysroot))
    });
    if let Some(user) = user {
        return Ok(Removal::Kept { runner, user });
    }
    fs::remove_file(&runner).with_context(|| format!("removing {}", runner.display()))?;
    let front = runner.with_file_name(FRONT);
    if fs::read_link(&front).ok().as_deref() == Some(Path::new(RUNNER)) {
        fs::remove_file(&front).with_context(|| format!("removing {}", front.display()))?;
    }
    Ok(Removal::Removed(runner))
}

/// Sysroots of the rustup toolchains whose install records name `target`.
pub fn toolchains_with_target(target: Target) -> Vec<PathBuf> {
    let Some(Ok(entries)) = rustup_home().map(|home| fs::read_dir(home.join("toolchains"))) else {
        return Vec::new();
    };
    let mut found: Vec<PathBuf> = entries
        .filter_map(|entry| entry.ok()?.path().canonicalize().ok())
        .filter(|sysroot| has_target(sysroot, target))
        .collect();
    found.sort();
    found.dedup();
    found
}

/// Whether the install records of `sysroot` name `target`.
fn has_target(sysroot: &Path, target: Target) -> bool {
    let components = fs::read_to_string(sysroot.join("lib/rustlib/components")).unwrap_or_default();
    components.lines().any(|c| c == target.component())
}

fn same_dir(a: &Path, b: &Path) -> bool {
    let canonical = |p: &Path| p.canonicalize().unwrap_or_else(|_| p.to_path_buf());
    canonical(a) == canonical(b)
}
