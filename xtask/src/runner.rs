//! The `hyperlight-run` binary that `cargo xtask install` builds and puts where `cargo install`
//! would, so a guest project's `runner = "hyperlight-run"` finds it on PATH.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::install::COMPONENT;
use crate::toolchain::{project_root, Toolchain};

/// Builds the runner with the pinned toolchain (release profile), statically linked
/// (`crt-static`), and returns the binary's path. A dynamically linked runner spends a few
/// hundred microseconds in the dynamic loader on every `cargo run`, a large share of a
/// micro-VM's whole start. The explicit `--target` keeps the flag off build scripts and
/// proc macros, which cannot be static.
pub fn build_release(sh: &Shell) -> Result<PathBuf> {
    build_release_artifact(sh, &[], "hyperlight-run")
}

/// Builds `runner/examples/NAME` the same way (sharing the build of the library).
pub fn build_release_example(sh: &Shell, name: &str) -> Result<PathBuf> {
    build_release_artifact(sh, &["--example", name], &format!("examples/{name}"))
}

fn build_release_artifact(sh: &Shell, selection: &[&str], artifact: &str) -> Result<PathBuf> {
    let _dir = sh.push_dir(project_root());
    let host = Toolchain::resolve(sh, None)?.version.host;
    let static_crt = format!("target.{host}.rustflags=[\"-Ctarget-feature=+crt-static\"]");
    let package = ["--package", "hyperlight-run"];
    cmd!(
        sh,
        "cargo build --release {package...} {selection...} --target {host} --config {static_crt}"
    )
    .run()
    .with_context(|| format!("building {artifact} of hyperlight-run failed"))?;
    Ok(project_root()
        .join("target")
        .join(&host)
        .join("release")
        .join(artifact))
}

/// Removes the installed runner unless another rustup toolchain still has the target installed.
pub fn uninstall(sysroot: &Path) -> Result<()> {
    let runner = bin_dir()?.join("hyperlight-run");
    if !runner.exists() {
        return Ok(());
    }
    let toolchains = std::env::var_os("RUSTUP_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".rustup")))
        .map(|home| home.join("toolchains"));
    let others = toolchains
        .map(|dir| other_installs(&dir, sysroot))
        .unwrap_or_default();
    if let Some(other) = others.first() {
        eprintln!(
            "kept {}: the toolchain at {} still uses it",
            runner.display(),
            other.display()
        );
        return Ok(());
    }
    fs::remove_file(&runner).with_context(|| format!("removing {}", runner.display()))?;
    eprintln!("removed {}", runner.display());
    Ok(())
}

/// Where `cargo install` would put a binary: `$CARGO_INSTALL_ROOT/bin`, `$CARGO_HOME/bin` or
/// `~/.cargo/bin`. `install.sh` uses the same rule.
pub fn bin_dir() -> Result<PathBuf> {
    let root = std::env::var_os("CARGO_INSTALL_ROOT")
        .or_else(|| std::env::var_os("CARGO_HOME"))
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")))
        .context("none of CARGO_INSTALL_ROOT, CARGO_HOME and HOME is set; set CARGO_HOME")?;
    Ok(root.join("bin"))
}

/// Copies the runner into `bin_dir` through a temporary name, so a running `hyperlight-run`
/// is never overwritten in place.
pub fn install(built: &Path, bin_dir: &Path) -> Result<PathBuf> {
    fs::create_dir_all(bin_dir).with_context(|| format!("creating {}", bin_dir.display()))?;
    let dest = bin_dir.join("hyperlight-run");
    let tmp = bin_dir.join(".hyperlight-run.tmp");
    fs::copy(built, &tmp)
        .with_context(|| format!("copying {} to {}", built.display(), tmp.display()))?;
    fs::rename(&tmp, &dest).with_context(|| format!("replacing {}", dest.display()))?;
    Ok(dest)
}

/// Sysroots of other rustup toolchains that still have the component, which keep the runner.
fn other_installs(rustup_toolchains: &Path, except: &Path) -> Vec<PathBuf> {
    let Ok(entries) = fs::read_dir(rustup_toolchains) else {
        return Vec::new();
    };
    let except = except
        .canonicalize()
        .unwrap_or_else(|_| except.to_path_buf());
    entries
        .filter_map(|entry| entry.ok()?.path().canonicalize().ok())
        .filter(|sysroot| *sysroot != except)
        .filter(|sysroot| {
            let components =
                fs::read_to_string(sysroot.join("lib/rustlib/components")).unwrap_or_default();
            components.lines().any(|c| c == COMPONENT)
        })
        .collect()
}
