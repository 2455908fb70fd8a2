//! Building the `hyperlight-run` binary that `cargo xtask install` puts where `cargo install`
//! would, so a guest project's `runner = "hyperlight-run"` finds it on PATH.

use std::path::PathBuf;

use anyhow::{Context, Result};
use hyperlight_install::signature::{PublicKey, DIST_PUBLIC_KEY_ENV};
use xshell::{cmd, Shell};

use crate::toolchain::{project_root, target_root, Toolchain};

/// Builds the runner with the pinned toolchain (release profile), statically linked
/// (`crt-static`), and returns the binary's path. A dynamically linked runner spends a few
/// hundred microseconds in the dynamic loader on every `cargo run`, a large share of a
/// micro-VM's whole start. The explicit `--target` keeps the flag off build scripts and
/// proc macros, which cannot be static. The runner trusts releases signed by `trusted`.
pub fn build_release(sh: &Shell, trusted: &PublicKey) -> Result<PathBuf> {
    build_release_artifact(sh, &[], "hyperlight-run", trusted)
}

/// Builds `runner/examples/NAME` the same way (sharing the build of the library).
pub fn build_release_example(sh: &Shell, name: &str, trusted: &PublicKey) -> Result<PathBuf> {
    build_release_artifact(
        sh,
        &["--example", name],
        &format!("examples/{name}"),
        trusted,
    )
}

fn build_release_artifact(
    sh: &Shell,
    selection: &[&str],
    artifact: &str,
    trusted: &PublicKey,
) -> Result<PathBuf> {
    let _dir = sh.push_dir(project_root());
    let host = Toolchain::resolve(None)?.version.host.clone();
    let static_crt = format!("target.{host}.rustflags=[\"-Ctarget-feature=+crt-static\"]");
    let package = ["--package", "hyperlight-run"];
    cmd!(
        sh,
        "cargo build --release {package...} {selection...} --target {host} --config {static_crt}"
    )
    .env(DIST_PUBLIC_KEY_ENV, trusted.to_string())
    .run()
    .with_context(|| format!("building {artifact} of hyperlight-run failed"))?;
    Ok(target_root(sh).join(&host).join("release").join(artifact))
}
