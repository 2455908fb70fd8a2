//! `cargo xtask dist`: everything a release serves, written to one directory.
//!
//! - `rust-std-<release>-<commit>-x86_64-hyperlight-none.tar.gz` per toolchain (rust-installer layout),
//! - `hyperlight-run-<version>-x86_64-unknown-linux-musl` (static, runs on any x86-64 Linux): the
//!   runner, and the installer that install.sh hands over to,
//! - `hyperlight-none-src-<version>.tar.gz`: the source tree a sysroot is built from (see
//!   `hyperlight_install::build`), for an installer to build one for a rustc the release lacks,
//! - `install.sh` and `cargo-config.toml` (the guest project template),
//! - `manifest.json`, `manifest.json.sha256` and `manifest.json.sig` (format: docs/manifest.md),
//!   and `release-key.pub`, the public key it is signed with.

pub mod component;
pub mod error;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyperlight_install::Target;
use xshell::{cmd, Shell};

use self::component::{source_archive, sysroot_tarball, sysroot_version};
use hyperlight_install::manifest::{
    self, sha256_hex, Manifest, RunnerEntry, MANIFEST, MANIFEST_SHA256,
};
use hyperlight_install::signature::{PublicKey, DIST_PUBLIC_KEY_ENV, MANIFEST_SIG};

use self::error::{read_manifest_dir, DistError};
use crate::toolchain::{pinned_toolchain, project_root, Toolchain};
use crate::{signing, sysroot};

/// The host tools are linked statically against musl so that they run on any x86-64 Linux.
pub const RUNNER_HOST: &str = "x86_64-unknown-linux-musl";
pub const RUNNER_PACKAGE: &str = "hyperlight-run";
pub const INSTALL_SH: &str = "install.sh";
/// The guest project's `.cargo/config.toml` template, served next to install.sh.
pub const CARGO_CONFIG: &str = "cargo-config.toml";
/// The public key the release is signed with (hex), for install.sh to embed.
pub const RELEASE_KEY: &str = "release-key.pub";
/// Files a release serves besides those the manifest names.
pub const EXTRA_FILES: &[&str] = &[INSTALL_SH, CARGO_CONFIG, RELEASE_KEY];

#[derive(Debug, Default)]
pub struct DistOptions {
    /// Toolchains to build a sysroot with.
    pub toolchains: Vec<String>,
    /// Sysroots already built by `cargo xtask sysroot` to pack as they are.
    pub sysroots: Vec<PathBuf>,
    /// Other dist directories whose sysroots (and runner, with `no_runner`) join this one.
    pub includes: Vec<PathBuf>,
    /// Leave out the runner.
    pub no_runner: bool,
    pub out: Option<PathBuf>,
    /// `--signing-key`: see [`signing::resolve`].
    pub signing_key: Option<PathBuf>,
}

pub fn default_out() -> PathBuf {
    project_root().join("dist")
}

pub fn run(sh: &Shell, mut options: DistOptions) -> Result<()> {
    let out = options.out.clone().unwrap_or_else(default_out);
    if options.toolchains.is_empty() && options.sysroots.is_empty() && options.includes.is_empty() {
        options.toolchains.push(pinned_toolchain()?);
    }
    let key = signing::resolve(options.signing_key.as_deref())?;
    let public = key.public_key();
    sh.create_dir(&out)?;
    clean_out(&out)?;
    let mut manifest = Manifest::new(manifest::release_date());

    for name in &options.toolchains {
        let toolchain = Toolchain::resolve(Some(name))?;
        let dir = sysroot::default_out(&toolchain);
        sysroot::build(sh, &toolchain, Target::None, &dir)?;
        options.sysroots.push(dir);
    }
    for dir in &options.sysroots {
        let version = sysroot_version(dir)?;
        eprintln!(
            "packing the sysroot for rustc {} ({})",
            version.release, version.commit_hash
        );
        let entry = sysroot_tarball(dir, &version, &out)?;
        eprintln!("  {} ({} bytes)", entry.url, entry.size);
        manifest.add_sysroot(entry);
    }
    for dir in &options.includes {
        include(dir, &out, &mut manifest, options.no_runner, &public)?;
    }
    let version = package_version(sh, RUNNER_PACKAGE)?;
    // Ours, after the includes: theirs may be of an older checkout and its file is not copied.
    let tree = sysroot::source_tree(sh, &Toolchain::resolve(None)?, Target::None)?;
    let source = source_archive(&tree.dir, &version, &out)?;
    drop(tree);
    eprintln!("  {} ({} bytes)", source.url, source.size);
    manifest.source = Some(source);
    if !options.no_runner {
        let binary = build_runner(sh, &public)?;
        let version = package_version(sh, RUNNER_PACKAGE)?;
        let runner = component::runner_file(&binary, &version, RUNNER_HOST, &out)?;
        eprintln!("  {} ({} bytes)", runner.url, runner.size);
        manifest.runner = Some(runner);
    }
    if let Some(runner) = &manifest.runner {
        write_install_sh(runner, &public, &out)?;
    }
    sh.copy_file(
        project_root().join("templates").join(CARGO_CONFIG),
        out.join(CARGO_CONFIG),
    )?;
    signing::write_public_key(&out.join(RELEASE_KEY), &public)?;
    manifest.write_dir(&out, &key)?;
    eprintln!(
        "dist written to {}: {} sysroot(s), sources{}, install.sh, cargo-config.toml, manifest.json, signed with key {}",
        out.display(),
        manifest.sysroots.len(),
        if manifest.runner.is_some() { ", runner" } else { "" },
        public
    );
    Ok(())
}

/// Removes what an earlier dist wrote, so a stale tarball never ships; other files stay.
fn clean_out(out: &Path) -> Result<()> {
    for entry in std::fs::read_dir(out)? {
        let path = entry?.path();
        let name = path.file_name().unwrap_or_default().to_string_lossy();
        let ours = EXTRA_FILES.contains(&name.as_ref())
            || name == MANIFEST
            || name == MANIFEST_SHA256
            || name == MANIFEST_SIG
            || (name.starts_with("rust-std-") && name.ends_with(".tar.gz"))
            || (name.starts_with("hyperlight-none-src-") && name.ends_with(".tar.gz"))
            || name.starts_with("hyperlight-run-");
        if ours && path.is_file() {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Copies the sysroots (and, when this dist builds none, the runner) of another dist
/// directory, verifying its manifest against `key` and every file against the manifest.
fn include(
    dir: &Path,
    out: &Path,
    manifest: &mut Manifest,
    take_runner: bool,
    key: &PublicKey,
) -> Result<()> {
    let other = read_manifest_dir(dir, key)?;
    let copy = |url: &str, sha256: &str| -> Result<()> {
        let from = dir.join(url);
        let data =
            std::fs::read(&from).map_err(|_| DistError::MissingArtifact { file: from.clone() })?;
        let actual = sha256_hex(&data);
        if actual != sha256 {
            return Err(DistError::HashMismatch {
                file: from.display().to_string(),
                expected: sha256.to_owned(),
                actual,
            }
            .into());
        }
        std::fs::write(out.join(url), data)?;
        Ok(())
    };
    for entry in &other.sysroots {
        copy(&entry.url, &entry.sha256)?;
        eprintln!("including {} from {}", entry.url, dir.display());
    }
    let mut other = other;
    if take_runner {
        if let Some(runner) = &other.runner {
            copy(&runner.url, &runner.sha256)?;
        }
    } else {
        other.runner = None;
    }
    manifest.merge(other);
    Ok(())
}

/// Builds `hyperlight-run` for x86_64-unknown-linux-musl (static) with the pinned toolchain,
/// trusting releases signed by `trusted`; returns the binary's path.
fn build_runner(sh: &Shell, trusted: &PublicKey) -> Result<PathBuf> {
    let toolchain = Toolchain::resolve(None)?;
    let std_dir = toolchain.sysroot.join("lib/rustlib").join(RUNNER_HOST);
    if !std_dir.is_dir() {
        return Err(DistError::MissingTarget {
            target: RUNNER_HOST.to_owned(),
            toolchain: toolchain.name,
        }
        .into());
    }
    let root = project_root();
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let mut flags = vec![
        "-Ctarget-feature=+crt-static".to_owned(),
        format!("--remap-path-prefix={}=/hyperlight", root.display()),
    ];
    if let Some(cargo_home) = cargo_home {
        flags.push(format!(
            "--remap-path-prefix={}=/cargo",
            cargo_home.display()
        ));
    }
    eprintln!(
        "building {RUNNER_PACKAGE} for {RUNNER_HOST} with {}",
        toolchain.name
    );
    let _dir = sh.push_dir(&root);
    let _env = [
        sh.push_env("RUSTUP_TOOLCHAIN", &toolchain.name),
        // The downloader's TLS (ring) has C code; clang compiles it for musl without a
        // musl-targeting gcc.
        sh.push_env("CC_x86_64_unknown_linux_musl", "clang"),
        sh.push_env(
            "CARGO_TARGET_X86_64_UNKNOWN_LINUX_MUSL_RUSTFLAGS",
            flags.join(" "),
        ),
        sh.push_env(DIST_PUBLIC_KEY_ENV, trusted.to_string()),
    ];
    cmd!(
        sh,
        "cargo build --release -p {RUNNER_PACKAGE} --target {RUNNER_HOST}"
    )
    .env_remove("RUSTFLAGS")
    .env_remove("CARGO_ENCODED_RUSTFLAGS")
    .env_remove("CARGO_BUILD_TARGET")
    .env_remove("CARGO_TARGET_DIR")
    .run()
    .context("building the runner failed")?;
    Ok(root
        .join("target")
        .join(RUNNER_HOST)
        .join("release")
        .join(RUNNER_PACKAGE))
}

fn package_version(sh: &Shell, package: &str) -> Result<String> {
    let _dir = sh.push_dir(project_root());
    let pkgid = cmd!(sh, "cargo pkgid -p {package}").read()?;
    pkgid
        .rsplit(['@', '#'])
        .next()
        .map(str::to_owned)
        .context("`cargo pkgid` printed no version")
}

/// install.sh with this release's installer written in: its file name, size and sha256, which
/// install.sh checks before it runs it, and the key it trusts.
fn write_install_sh(runner: &RunnerEntry, key: &PublicKey, out: &Path) -> Result<()> {
    let template = std::fs::read_to_string(project_root().join(INSTALL_SH))?;
    let script = template
        .replace("@RUNNER_FILE@", &runner.url)
        .replace("@RUNNER_SIZE@", &runner.size.to_string())
        .replace("@RUNNER_SHA256@", &runner.sha256)
        .replace("@RELEASE_KEY@", &key.to_string());
    std::fs::write(out.join(INSTALL_SH), script)?;
    Ok(())
}
