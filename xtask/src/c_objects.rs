//! The prebuilt C library of a sysroot (see `hyperlight_install::c_objects`): picolibc as
//! official guests compile it, recorded by running hyperlight-libc's own build script (the
//! version `sysroot/c-headers/Cargo.lock` pins) under the guest config of
//! templates/cargo-config.toml, in a debug and a release build, with this binary as the
//! config's `hyperlight-cc`. So the recorded command lines are exactly those of a guest's
//! build, whatever cc-rs makes of the config's flags.
//!
//! The objects depend on clang, the pinned package and the config, not on rustc: they are
//! recorded once into `target/c-objects/<stamp>` and copied into every toolchain's sysroot.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hyperlight_install::c_objects::{FRONT, KEY_VERSION, OBJECTS_DIR, RECORD_VAR};
use hyperlight_install::Target;
use sha2::{Digest, Sha256};
use xshell::{cmd, Shell};

use crate::c_headers;
use crate::toolchain::{project_root, target_root, Toolchain};

/// The file in the store naming the clang that compiled the objects (`clang --version`).
const CLANG_VERSION_FILE: &str = "clang-version";
/// The profiles guests are built with, by name: cc-rs compiles with `-g` in one and not the
/// other.
const PROFILES: &[(&str, &[&str])] = &[("debug", &[]), ("release", &["--release"])];

/// Copies the recorded objects of `target` into its directory of `sysroot` (built for
/// `toolchain`, whose cargo and rustc run the recording), recording them first if no earlier
/// run did. Returns how many objects there are.
pub fn install(sh: &Shell, toolchain: &Toolchain, target: Target, sysroot: &Path) -> Result<usize> {
    let recorded = recorded(sh, toolchain, target, sysroot)?;
    let dest = target.dir(sysroot).join(OBJECTS_DIR);
    if dest.exists() {
        sh.remove_path(&dest)?;
    }
    hyperlight_install::build::copy_tree(&recorded, &dest)?;
    objects_in(&dest)
}

/// `target/c-objects/<stamp>`, recorded with `sysroot` as the libraries' sysroot if missing.
fn recorded(sh: &Shell, toolchain: &Toolchain, target: Target, sysroot: &Path) -> Result<PathBuf> {
    let root = target_root(sh).join("c-objects");
    let store = root.join(stamp(sh, target)?);
    let complete = store.with_extension("complete");
    if complete.exists() {
        return Ok(store);
    }
    eprintln!(
        "recording picolibc's objects as official guests for {target} compile them \
         (hyperlight-libc's build script, debug and release)"
    );
    if store.exists() {
        sh.remove_path(&store)?;
    }
    let work = root.join("build");
    let crate_dir = work.join("crate");
    if crate_dir.exists() {
        sh.remove_path(&crate_dir)?;
    }
    let source = c_headers::manifest();
    let source = source.parent().unwrap();
    sh.create_dir(crate_dir.join("src"))?;
    sh.create_dir(crate_dir.join(".cargo"))?;
    sh.copy_file(source.join("Cargo.toml"), &crate_dir)?;
    sh.copy_file(source.join("Cargo.lock"), &crate_dir)?;
    sh.write_file(crate_dir.join("src/lib.rs"), "#![no_std]\n")?;
    sh.copy_file(
        project_root().join("templates/cargo-config.toml"),
        crate_dir.join(".cargo/config.toml"),
    )?;
    let path = path_with_front(sh, &work.join("bin"))?;

    let cargo = toolchain.cargo();
    let rustflags = format!(
        "target.{target}.rustflags=[\"--sysroot={}\"]",
        sysroot.display()
    );
    let target = target.name();
    let _dir = sh.push_dir(&crate_dir);
    // The build script compiles one file at a time: the profiles run side by side, each in a
    // target directory of its own (kept between recordings: its host part, the build
    // script's dependencies, stays valid).
    let mut running = Vec::new();
    for &(name, profile) in PROFILES {
        let target_dir = work.join(format!("target-{name}"));
        // The build script runs again only in a build of the target from scratch.
        let target_part = target_dir.join(target);
        if target_part.exists() {
            sh.remove_path(&target_part)?;
        }
        let mut cargo: Command = cmd!(
            sh,
            "{cargo} check --locked -p hyperlight-libc --target {target} {profile...} --config {rustflags}"
        )
        .env(RECORD_VAR, &store)
        .env("PATH", &path)
        .env("RUSTC", toolchain.rustc())
        .env("CARGO_TARGET_DIR", target_dir)
        // The config's rustc-wrapper looks after installed targets; this one is not installed.
        .env("RUSTC_WRAPPER", "")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("RUSTUP_TOOLCHAIN")
        .into();
        running.push((name, cargo.spawn().context("running cargo")?));
    }
    for (name, mut cargo) in running {
        let status = cargo.wait()?;
        if !status.success() {
            bail!("recording picolibc's objects: the {name} build failed ({status})");
        }
    }
    let objects = objects_in(&store)?;
    if objects == 0 {
        bail!("hyperlight-libc's build script compiled nothing through {FRONT}");
    }
    // Which compiler made them, for whoever wonders what they run.
    fs::write(store.join(CLANG_VERSION_FILE), clang_version(sh)?)?;
    fs::write(&complete, format!("{objects}\n"))?;
    Ok(store)
}

/// PATH with `bin` first, where this very binary is linked as the guest config's C compiler
/// (`hyperlight-cc`, which installing links to hyperlight-run).
pub fn path_with_front(sh: &Shell, bin: &Path) -> Result<std::ffi::OsString> {
    sh.create_dir(bin)?;
    let front = bin.join(FRONT);
    if fs::symlink_metadata(&front).is_ok() {
        fs::remove_file(&front)?;
    }
    std::os::unix::fs::symlink(std::env::current_exe()?, &front)?;
    Ok(std::env::join_paths(
        std::iter::once(bin.to_path_buf()).chain(std::env::split_paths(
            &sh.var_os("PATH").unwrap_or_default(),
        )),
    )?)
}

/// What decides the objects: the target, clang, the pinned package (and cc-rs), the guest
/// config and the way they are recorded (`KEY_VERSION`).
fn stamp(sh: &Shell, target: Target) -> Result<String> {
    let mut hasher = Sha256::new();
    hasher.update(target.name());
    hasher.update(clang_version(sh)?);
    hasher.update(KEY_VERSION);
    for input in [
        c_headers::manifest().with_file_name("Cargo.lock"),
        project_root().join("templates/cargo-config.toml"),
    ] {
        hasher.update(fs::read(&input).with_context(|| format!("reading {}", input.display()))?);
    }
    let digest = hasher.finalize();
    Ok(digest[..8].iter().map(|b| format!("{b:02x}")).collect())
}

fn clang_version(sh: &Shell) -> Result<String> {
    Ok(cmd!(sh, "clang --version")
        .read()
        .context("running clang")?
        + "\n")
}

/// How many objects the store `dir` holds (each in its key's shard directory).
fn objects_in(dir: &Path) -> Result<usize> {
    let mut count = 0;
    for shard in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let shard = shard?.path();
        if !shard.is_dir() {
            continue;
        }
        for entry in fs::read_dir(&shard).with_context(|| format!("reading {}", shard.display()))? {
            if entry?.path().extension().is_some_and(|ext| ext == "o") {
                count += 1;
            }
        }
    }
    Ok(count)
}
