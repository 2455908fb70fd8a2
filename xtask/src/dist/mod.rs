//! `cargo xtask dist`: everything a release serves, written to one directory.
//!
//! - `rust-std-<release>-<commit>-<target>.tar.gz` per toolchain and target (rust-installer layout),
//! - `hyperlight-run-<version>-x86_64-unknown-linux-musl` (static, runs on any x86-64 Linux): the
//!   runner, and the installer that install.sh hands over to,
//! - `hyperlight-{none,hermit}-src-<version>.tar.gz`: each target's source tree its sysroot is
//!   built from (see `hyperlight_install::build`), for an installer to build one for a rustc the
//!   release lacks,
//! - `install.sh`, and `cargo-config.toml` and `cargo-config-std.toml` (the guest project
//!   templates),
//! - `manifest.json`, `manifest.json.sha256` and `manifest.json.sig` (format: docs/manifest.md),
//!   and `release-key.pub`, the public key it is signed with.

pub mod component;
pub mod error;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyperlight_install::Target;
use xshell::{cmd, Shell};

use self::component::{source_archive, sysroot_tarball, sysroot_version};
use hyperlight_install::manifest::{self, Manifest, RunnerEntry, MANIFEST, MANIFEST_SHA256};
use hyperlight_install::signature::{PublicKey, DIST_PUBLIC_KEY_ENV, MANIFEST_SIG};

use self::error::{read_artifact, read_manifest_dir, DistError};
use crate::toolchain::{pinned_toolchain, project_root, Toolchain};
use crate::{signing, sysroot};

/// The host tools are linked statically against musl so that they run on any x86-64 Linux.
pub const RUNNER_HOST: &str = "x86_64-unknown-linux-musl";
pub const RUNNER_PACKAGE: &str = "hyperlight-run";
pub const INSTALL_SH: &str = "install.sh";
/// The guest projects' `.cargo/config.toml` templates, served next to install.sh.
pub const CARGO_CONFIGS: [&str; 2] = [
    Target::None.guest_config_file(),
    Target::Hermit.guest_config_file(),
];
/// The public key the release is signed with (hex), for install.sh to embed.
pub const RELEASE_KEY: &str = "release-key.pub";
/// Files a release serves besides those the manifest names.
pub const EXTRA_FILES: &[&str] = &[INSTALL_SH, CARGO_CONFIGS[0], CARGO_CONFIGS[1], RELEASE_KEY];

#[derive(Debug, Default)]
pub struct DistOptions {
    /// Toolchains to build sysroots with.
    pub toolchains: Vec<String>,
    /// The targets to build or pack sysroots of (empty: all of them).
    pub targets: Vec<Target>,
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
    let targets = if options.targets.is_empty() {
        Target::ALL.to_vec()
    } else {
        options.targets.clone()
    };

    for name in &options.toolchains {
        let toolchain = Toolchain::resolve(Some(name))?;
        let dir = sysroot::default_out(&toolchain);
        for &target in &targets {
            sysroot::build(sh, &toolchain, target, &dir)?;
        }
        options.sysroots.push(dir);
    }
    for dir in &options.sysroots {
        pack_sysroot(dir, &targets, &out, &mut manifest)?;
    }
    for dir in &options.includes {
        include(dir, &out, &mut manifest, options.no_runner, &public)?;
    }
    let version = package_version(sh, RUNNER_PACKAGE)?;
    // Ours, after the includes: theirs may be of an older checkout and their files are not
    // copied. Every target's, so that an installer can build any target for any rustc.
    for target in Target::ALL {
        let tree = sysroot::source_tree(sh, &Toolchain::resolve(None)?, target)?;
        let source = source_archive(&tree.dir, &version, target, &out)?;
        drop(tree);
        eprintln!("  {} ({} bytes)", source.url, source.size);
        manifest.set_source(target, source);
    }
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
    for template in CARGO_CONFIGS {
        sh.copy_file(
            project_root().join("templates").join(template),
            out.join(template),
        )?;
    }
    signing::write_public_key(&out.join(RELEASE_KEY), &public)?;
    manifest.write_dir(&out, &key)?;
    eprintln!(
        "dist written to {}: {} sysroot(s), sources{}, install.sh, the guest config templates, manifest.json, signed with key {}",
        out.display(),
        manifest.all_sysroots().count(),
        if manifest.runner.is_some() { ", runner" } else { "" },
        public
    );
    Ok(())
}

/// Packs the sysroots of `targets` that `dir` (written by `cargo xtask sysroot`) holds; at least
/// one must be there.
fn pack_sysroot(dir: &Path, targets: &[Target], out: &Path, manifest: &mut Manifest) -> Result<()> {
    let mut packed = 0;
    for &target in targets {
        if !target.dir(dir).exists() {
            continue;
        }
        let version = sysroot_version(dir, target)?;
        eprintln!(
            "packing the {target} sysroot for rustc {} ({})",
            version.release, version.commit_hash
        );
        let entry = sysroot_tarball(dir, &version, target, out)?;
        eprintln!("  {} ({} bytes)", entry.url, entry.size);
        manifest.add_sysroot(target, entry);
        packed += 1;
    }
    if packed == 0 {
        return Err(DistError::NotASysroot {
            dir: dir.to_owned(),
        }
        .into());
    }
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
            || (name.starts_with("hyperlight-")
                && name.contains("-src-")
                && name.ends_with(".tar.gz"))
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
        std::fs::write(out.join(url), read_artifact(&dir.join(url), sha256)?)?;
        Ok(())
    };
    for (_, entry) in other.all_sysroots() {
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
