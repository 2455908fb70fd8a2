//! The official Hyperlight demo guest, and the two ways of building it.
//!
//! The project is what `cargo hyperlight new --no-host` writes, generated on the fly by the
//! pinned cargo-hyperlight (so the repository holds none of its text), with the guest library
//! raised to the version this distribution targets and the dependency versions fixed by the
//! recorded `tests/official-demo/Cargo.lock`.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hyperlight_install::Target;
use testkit::TempToolchain;
use xshell::{cmd, Shell};

use crate::sysroot;
use crate::toolchain::{project_root, Toolchain};
use crate::tools::Tool;

/// The cargo-hyperlight release the comparison is made against.
pub const CARGO_HYPERLIGHT: Tool = Tool {
    name: "cargo-hyperlight",
    version: "0.1.14",
};
/// cargo-hyperlight 0.1.14 writes `hyperlight-guest-bin = "0.15"`; the distribution targets 0.18.
pub const GUEST_BIN_REQUIREMENT: &str = "0.18";
/// The package (and directory) name the recorded Cargo.lock belongs to.
pub const NAME: &str = "official-demo";

/// The recorded lock file: every crate version of the demo's build, checksummed.
pub fn recorded_lock() -> PathBuf {
    project_root().join("tests/official-demo/Cargo.lock")
}

/// `cargo-hyperlight`, installed into `target/tools`.
pub fn cargo_hyperlight(sh: &Shell) -> Result<PathBuf> {
    CARGO_HYPERLIGHT.ensure(sh)
}

/// Writes the demo project to `dir` (whose last component must be [`NAME`]). Files that are
/// already up to date are left alone, so cargo's fingerprints keep a previous build usable.
pub fn generate(sh: &Shell, dir: &Path) -> Result<()> {
    if dir.file_name() != Some(NAME.as_ref()) {
        bail!("the demo project's directory must be named {NAME}");
    }
    let cargo_hyperlight = cargo_hyperlight(sh)?;
    let scratch = dir.with_file_name(format!(".{NAME}.new"));
    let fresh = scratch.join(NAME);
    if scratch.exists() {
        sh.remove_path(&scratch)?;
    }
    sh.create_dir(&scratch)?;
    {
        let _dir = sh.push_dir(&scratch);
        cmd!(sh, "{cargo_hyperlight} hyperlight new --no-host {NAME}")
            .quiet()
            .ignore_stdout()
            .run()
            .context("cargo hyperlight new")?;
    }
    let manifest = sh.read_file(fresh.join("Cargo.toml"))?;
    let dependency = manifest
        .lines()
        .find(|line| line.starts_with("hyperlight-guest-bin = "))
        .context("`cargo hyperlight new` wrote no hyperlight-guest-bin dependency")?;
    let manifest = manifest.replace(
        dependency,
        &format!("hyperlight-guest-bin = \"{GUEST_BIN_REQUIREMENT}\""),
    );
    let files = [
        ("Cargo.toml", manifest.into_bytes()),
        ("src/main.rs", fs::read(fresh.join("src/main.rs"))?),
        ("Cargo.lock", fs::read(recorded_lock())?),
    ];
    for (name, content) in files {
        let path = dir.join(name);
        if fs::read(&path).ok().as_deref() != Some(&content[..]) {
            fs::create_dir_all(path.parent().unwrap())?;
            fs::write(&path, content)?;
        }
    }
    sh.remove_path(&scratch)?;
    Ok(())
}

/// A directory for demo builds outside the repository (a package inside it would belong to
/// the repository's workspace), kept between runs so that repeated runs are incremental. The
/// returned lock is held until dropped: two runs at once would delete each other's builds.
pub fn scratch_dir(purpose: &str) -> Result<(PathBuf, fs::File)> {
    let dir = std::env::temp_dir().join(format!("hyperlight-{purpose}"));
    fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let lock = fs::File::open(&dir)?;
    if lock.try_lock().is_err() {
        eprintln!("waiting for another run using {}", dir.display());
        lock.lock()?;
    }
    Ok((dir, lock))
}

/// The targets the demo is built for: Hyperlight's two guest architectures.
pub const TARGETS: [Target; 2] = [Target::None, Target::Aarch64];

/// Where a debug build of the demo for `target` leaves its ELF.
pub fn elf(target_dir: &Path, target: Target) -> PathBuf {
    target_dir.join(target.name()).join("debug").join(NAME)
}

/// `cargo +nightly hyperlight build`: the official way, which compiles its own sysroot from
/// rust-src inside `target_dir`.
pub fn build_with_cargo_hyperlight(
    sh: &Shell,
    dir: &Path,
    target_dir: &Path,
    toolchain: &str,
    target: Target,
) -> Result<PathBuf> {
    let cargo_hyperlight = cargo_hyperlight(sh)?;
    let path = std::env::join_paths(
        std::iter::once(cargo_hyperlight.parent().unwrap().to_path_buf()).chain(
            std::env::split_paths(&sh.var_os("PATH").unwrap_or_default()),
        ),
    )?;
    let _dir = sh.push_dir(dir);
    let target_name = target.name();
    let mut build = cmd!(
        sh,
        "cargo +{toolchain} hyperlight build --locked --target {target_name}"
    )
    .env("PATH", path)
    .env("CARGO_TARGET_DIR", target_dir);
    for inherited in INHERITED {
        build = build.env_remove(inherited);
    }
    build
        .run()
        .with_context(|| format!("cargo +{toolchain} hyperlight build --target {target} failed"))?;
    Ok(elf(target_dir, target))
}

/// Plain `cargo build` with nothing but the distribution: the sysroot installed into
/// `toolchain` (with picolibc's prebuilt objects), the guest config of
/// templates/cargo-config.toml and its C compiler `hyperlight-cc`.
pub fn build_plain(
    sh: &Shell,
    dir: &Path,
    target_dir: &Path,
    toolchain: &TempToolchain,
    target: Target,
) -> Result<PathBuf> {
    let config = dir.join(".cargo/config.toml");
    sh.create_dir(config.parent().unwrap())?;
    sh.copy_file(project_root().join("templates/cargo-config.toml"), &config)?;
    // The config's C compiler, as installing links it beside hyperlight-run.
    let path = crate::c_objects::path_with_front(sh, &target_dir.with_extension("bin"))?;
    let mut build = toolchain.command("cargo");
    build
        .args(["build", "--locked", "--target", target.name()])
        .current_dir(dir)
        .env("PATH", path)
        .env("CARGO_TARGET_DIR", target_dir)
        // The template's rustc-wrapper only looks after the installed target, which is in
        // place here; an empty value turns it off (hyperlight-run need not be on PATH).
        .env("RUSTC_WRAPPER", "");
    for inherited in INHERITED {
        build.env_remove(inherited);
    }
    let status = build.status().context("running cargo")?;
    if !status.success() {
        bail!("plain cargo build of the demo guest for {target} failed ({status})");
    }
    Ok(elf(target_dir, target))
}

/// A temporary toolchain: a hard-linked copy of `real` without rust-src (plain builds must
/// not need it), with the sysroots of `targets` built for `real` installed into it. The real
/// toolchain is never modified.
pub fn toolchain_with_sysroot(
    sh: &Shell,
    real: &Toolchain,
    targets: &[Target],
) -> Result<TempToolchain> {
    let built = sysroot::default_out(real);
    for &target in targets {
        sysroot::build(sh, real, target, &built)?;
    }
    let toolchain = TempToolchain::copy_of(&real.name, false);
    // Installing registers the guest runtime in $CARGO_HOME/config.toml: the temporary
    // toolchain's own cargo home, never the user's. xtask runs no other thread meanwhile.
    let user_cargo_home = std::env::var_os("CARGO_HOME");
    std::env::set_var("CARGO_HOME", toolchain.cargo_home());
    let installed = targets.iter().try_for_each(|&target| {
        hyperlight_install::transaction::install(&built, &toolchain.sysroot(), target).map(drop)
    });
    match user_cargo_home {
        Some(home) => std::env::set_var("CARGO_HOME", home),
        None => std::env::remove_var("CARGO_HOME"),
    }
    installed?;
    Ok(toolchain)
}

/// Variables of the calling cargo that would leak into the demo's build.
const INHERITED: &[&str] = &[
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "RUSTC",
    "RUSTC_WORKSPACE_WRAPPER",
    "CARGO_BUILD_TARGET",
    "RUSTC_BOOTSTRAP",
];
