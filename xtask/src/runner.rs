//! Building the `hyperlight-run` binary that `cargo xtask install` puts where `cargo install`
//! would, so a guest project's `runner = "hyperlight-run"` finds it on PATH.

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

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
    let host = Toolchain::resolve(None)?.version.host.clone();
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
