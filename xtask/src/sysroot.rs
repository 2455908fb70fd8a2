//! `cargo xtask sysroot`: compile core, alloc and compiler_builtins for x86_64-hyperlight-none,
//! and add the C headers guests with C code compile against (see `c_headers`).
//!
//! The crates are built with `-Zbuild-std` for the *bare* target name found through
//! `RUST_TARGET_PATH`: building for a `.json` path would record a hashed triple and every user
//! crate built with the bare name would then fail with E0461.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::c_headers;
use crate::toolchain::{project_root, Toolchain, TARGET};

/// The standard library crates a guest links against; everything else in the build is dropped.
const SYSROOT_CRATES: &[&str] = &["core", "alloc", "compiler_builtins"];

/// The file next to `target.json` recording the `rustc -vV` that built the libraries.
pub const VERSION_FILE: &str = "rustc-version";

/// The directory next to `target.json` holding the C headers for guests with C code.
pub const INCLUDE_DIR: &str = "include";

pub fn target_spec() -> PathBuf {
    project_root()
        .join("target-specs")
        .join(format!("{TARGET}.json"))
}

/// `<sysroot>/lib/rustlib/x86_64-hyperlight-none`, the directory this project owns in a sysroot.
pub fn target_dir(sysroot: &Path) -> PathBuf {
    sysroot.join("lib/rustlib").join(TARGET)
}

pub fn default_out(toolchain: &Toolchain) -> PathBuf {
    project_root().join("target/sysroot").join(&toolchain.name)
}

pub fn build(sh: &Shell, toolchain: &Toolchain, out: &Path) -> Result<()> {
    if !toolchain.has_rust_src() {
        bail!(
            "toolchain `{name}` has no rust-src; run `rustup component add rust-src --toolchain {name}`",
            name = toolchain.name
        );
    }
    let root = project_root();
    let crate_dir = root.join("sysroot");
    // Honour CARGO_TARGET_DIR like cargo does: a fresh one means a build from scratch.
    let target_root = sh
        .var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), PathBuf::from);
    let build_dir = target_root.join("sysroot-build").join(&toolchain.name);
    let spec_dir = build_dir.join("spec");
    sh.create_dir(&spec_dir)?;
    sh.copy_file(target_spec(), spec_dir.join(format!("{TARGET}.json")))?;

    let rustflags = reproducible_rustflags(toolchain, &crate_dir);
    let name = &toolchain.name;
    eprintln!(
        "building core, alloc and compiler_builtins for {TARGET} with {name} ({})",
        toolchain.version.release
    );
    let _dir = sh.push_dir(&crate_dir);
    let _env = [
        sh.push_env("RUSTUP_TOOLCHAIN", name),
        sh.push_env("RUSTC_BOOTSTRAP", "1"),
        sh.push_env("RUST_TARGET_PATH", &spec_dir),
        sh.push_env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f")),
        sh.push_env("CARGO_TARGET_DIR", build_dir.join("target")),
    ];
    let mut build = cmd!(
        sh,
        "cargo build --release -Zbuild-std=core,alloc -Zbuild-std-features=compiler-builtins-mem --target {TARGET}"
    );
    for inherited in [
        "RUSTFLAGS",
        "RUSTC",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
    ] {
        build = build.env_remove(inherited);
    }
    build.run().context("building the sysroot failed")?;

    let deps = build_dir.join("target").join(TARGET).join("release/deps");
    write_sysroot(sh, toolchain, &deps, out)
}

/// Remap every build-machine path so two builds anywhere give byte-identical libraries.
fn reproducible_rustflags(toolchain: &Toolchain, crate_dir: &Path) -> Vec<String> {
    let mut flags = vec![
        "-Zunstable-options".to_owned(),
        // As rustup's own std: the .rlib holds only code and the metadata lives once, in the
        // .rmeta beside it (otherwise every .rlib embeds a copy: 1.8x the download).
        "-Zembed-metadata=no".to_owned(),
    ];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    let remaps = [
        (
            Some(toolchain.rust_src()),
            format!("/rustc/{}", toolchain.version.commit_hash),
        ),
        (cargo_home, "/cargo".to_owned()),
        (
            Some(crate_dir.to_path_buf()),
            "/hyperlight-sysroot".to_owned(),
        ),
    ];
    for (from, to) in remaps {
        if let Some(from) = from {
            flags.push(format!("--remap-path-prefix={}={to}", from.display()));
        }
    }
    flags
}

fn write_sysroot(sh: &Shell, toolchain: &Toolchain, deps: &Path, out: &Path) -> Result<()> {
    let target_dir = target_dir(out);
    let lib_dir = target_dir.join("lib");
    if target_dir.exists() {
        sh.remove_path(&target_dir)?;
    }
    sh.create_dir(&lib_dir)?;
    let mut copied = 0;
    for path in sh.read_dir(deps)? {
        let file_name = path.file_name().unwrap().to_string_lossy().into_owned();
        let is_sysroot_crate = SYSROOT_CRATES.iter().any(|krate| {
            file_name.starts_with(&format!("lib{krate}-"))
                && (file_name.ends_with(".rlib") || file_name.ends_with(".rmeta"))
        });
        if is_sysroot_crate {
            sh.copy_file(&path, lib_dir.join(&file_name))?;
            copied += 1;
        }
    }
    if copied != SYSROOT_CRATES.len() * 2 {
        bail!("expected an .rlib and an .rmeta for each of {SYSROOT_CRATES:?} in {}, found {copied} files", deps.display());
    }
    sh.copy_file(target_spec(), target_dir.join("target.json"))?;
    sh.write_file(target_dir.join(VERSION_FILE), &toolchain.version.verbose)?;
    let headers = c_headers::write(sh, toolchain, &target_dir.join(INCLUDE_DIR))?;
    copy_runtime_sources(sh, &target_dir.join(RUNTIME_DIR))?;
    eprintln!(
        "sysroot for {} ({}) written to {} ({headers} C headers in {INCLUDE_DIR}/)",
        toolchain.name,
        toolchain.version.release,
        out.display()
    );
    Ok(())
}

/// Where the guest runtime's sources go in the target's directory: installing copies them out
/// for guest projects' crates.io dependency on the runtime (hyperlight_install::runtime), so
/// the runtime always matches the installed target.
pub const RUNTIME_DIR: &str = "src/hyperlight-rt";

fn copy_runtime_sources(sh: &Shell, dest: &Path) -> Result<()> {
    let guest = project_root().join("guest");
    sh.create_dir(dest)?;
    sh.copy_file(guest.join("Cargo.toml"), dest.join("Cargo.toml"))?;
    let mut pending = vec![PathBuf::from("src")];
    while let Some(dir) = pending.pop() {
        sh.create_dir(dest.join(&dir))?;
        for path in sh.read_dir(guest.join(&dir))? {
            let relative = dir.join(path.file_name().unwrap());
            if path.is_dir() {
                pending.push(relative);
            } else {
                sh.copy_file(&path, dest.join(&relative))?;
            }
        }
    }
    Ok(())
}
