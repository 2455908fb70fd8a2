//! The std target's figures: what starting a std guest costs against the no_std hello, how a
//! std crate's cold build compares with the same crate for x86_64-unknown-linux-musl, and the
//! size of the std sysroot.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Result};
use hyperlight_install::Target;
use xshell::{cmd, Shell};

use super::dist::{dir_size, mb, repack_rust_std};
use super::runner::build_example;
use super::{median, median_time, time_process, Report};
use crate::sysroot;
use crate::toolchain::{project_root, Toolchain};

const PROCESS_RUNS: usize = 300;
const COLD_BUILD_RUNS: usize = 3;
const PROCESS_RATIO_GOAL: f64 = 1.5;
const BUILD_RATIO_GOAL: f64 = 1.2;
const MUSL: &str = "x86_64-unknown-linux-musl";

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("std target (x86_64-hyperlight-hermit)");
    let toolchain = Toolchain::resolve(None)?;
    let scratch = project_root().join("target/bench/std");
    if scratch.exists() {
        sh.remove_path(&scratch)?;
    }
    let built = scratch.join("sysroot");
    let build_time = {
        let _target = sh.push_env("CARGO_TARGET_DIR", scratch.join("sysroot-target"));
        median_time(1, || sysroot::build(sh, &toolchain, Target::Hermit, &built))?
    };
    report.row(
        &format!(
            "`cargo xtask sysroot --target x86_64-hyperlight-hermit` from scratch ({})",
            toolchain.name
        ),
        format!("{:.1} s", build_time.as_secs_f64()),
        "none (done once per toolchain)",
        None,
    );

    sizes(report, &toolchain, &built)?;
    whole_process(sh, report, &built)?;
    cold_builds(sh, report, &scratch, &built)?;
    report.note(&format!(
        "Release runner and guests; the std hello prints the same line as examples/hello. Whole \
         process: median of {PROCESS_RUNS} runs of each, alternated. Cold builds: median of \
         {COLD_BUILD_RUNS} alternating debug builds of the `crates` binary, each in an empty target \
         directory, ours against the std sysroot just built (passed with `--sysroot`), the baseline \
         against rustup's rust-std for {MUSL}. Sizes: both target directories packed by the same \
         code as the Distribution section's comparison."
    ));
    sh.remove_path(&scratch)?;
    Ok(())
}

/// The std sysroot packed, beside rustup's musl rust-std packed alike.
fn sizes(report: &mut Report, toolchain: &Toolchain, built: &Path) -> Result<()> {
    let packed = repack_rust_std(built, Target::Hermit.name())?;
    let musl = repack_rust_std(&toolchain.sysroot, MUSL)?;
    report.row(
        &format!("std sysroot tar.gz ({})", toolchain.version.release),
        format!(
            "{:.1} MB ({:.1} MB unpacked); rustup's rust-std {MUSL} re-packed alike: {:.1} MB",
            mb(packed),
            mb(dir_size(&Target::Hermit.dir(built))?),
            mb(musl)
        ),
        "none (listed)",
        None,
    );
    Ok(())
}

/// Whole process, the std hello against the no_std one, alternating so that load changes hit
/// both alike.
fn whole_process(sh: &Shell, report: &mut Report, built: &Path) -> Result<()> {
    let runner = crate::runner::build_release(sh, &crate::signing::public_key(None)?)?;
    let no_std_hello = build_example(sh, "hello")?;
    let std_hello = build_std_guest(sh, built, "hello")?;
    let (mut no_std, mut std) = (Vec::new(), Vec::new());
    for _ in 0..PROCESS_RUNS {
        no_std.push(time_process(Command::new(&runner).arg(&no_std_hello))?);
        std.push(time_process(Command::new(&runner).arg(&std_hello))?);
    }
    let (no_std, std) = (median(no_std), median(std));
    let ratio = std.as_secs_f64() / no_std.as_secs_f64();
    report.row(
        "whole process: `hyperlight-run` of the std hello / the no_std hello",
        format!(
            "{ratio:.2}× ({:.2} ms / {:.2} ms)",
            std.as_secs_f64() * 1e3,
            no_std.as_secs_f64() * 1e3
        ),
        &format!("≤ {PROCESS_RATIO_GOAL}×"),
        Some(ratio <= PROCESS_RATIO_GOAL),
    );
    Ok(())
}

/// Cold builds of the same std crate for our target and for musl, alternating.
fn cold_builds(sh: &Shell, report: &mut Report, scratch: &Path, built: &Path) -> Result<()> {
    let target = Target::Hermit.name();
    let crate_dir = project_root().join("tests/std-guests");
    let (mut ours, mut baseline) = (Vec::new(), Vec::new());
    for run in 0..COLD_BUILD_RUNS {
        let target_dir = scratch.join(format!("build-{run}"));
        ours.push(median_time(1, || {
            cold_build(sh, &crate_dir, &target_dir, target, Some(built))
        })?);
        baseline.push(median_time(1, || {
            cold_build(sh, &crate_dir, &target_dir, MUSL, None)
        })?);
    }
    let (ours, baseline) = (median(ours), median(baseline));
    let ratio = ours.as_secs_f64() / baseline.as_secs_f64();
    report.row(
        &format!("cold `cargo build` of tests/std-guests/crates (serde_json, regex, anyhow): hermit / {MUSL}"),
        format!(
            "{ratio:.2}× ({:.1} s / {:.1} s)",
            ours.as_secs_f64(),
            baseline.as_secs_f64()
        ),
        &format!("≤ {BUILD_RATIO_GOAL}×"),
        Some(ratio <= BUILD_RATIO_GOAL),
    );
    Ok(())
}

/// Builds binary NAME of tests/std-guests in release against `sysroot`.
fn build_std_guest(sh: &Shell, sysroot: &Path, name: &str) -> Result<PathBuf> {
    let workspace = project_root().join("tests/std-guests");
    let target_dir = project_root().join("target/bench/std/guests");
    let _dir = sh.push_dir(&workspace);
    let _env = std_env(sh, sysroot, &target_dir);
    let target = Target::Hermit.name();
    cmd!(
        sh,
        "cargo build --quiet --release --target {target} --bin {name}"
    )
    .run()?;
    let elf = target_dir.join(target).join("release").join(name);
    if !elf.is_file() {
        bail!("cargo did not build {}", elf.display());
    }
    Ok(elf)
}

fn cold_build(
    sh: &Shell,
    workspace: &Path,
    target_dir: &Path,
    target: &str,
    sysroot: Option<&Path>,
) -> Result<()> {
    let _dir = sh.push_dir(workspace);
    let _env = match sysroot {
        Some(sysroot) => std_env(sh, sysroot, target_dir),
        None => [
            sh.push_env("CARGO_TARGET_DIR", target_dir),
            sh.push_env("CARGO_ENCODED_RUSTFLAGS", ""),
            sh.push_env("RUSTC_BOOTSTRAP", "1"),
        ],
    };
    cmd!(sh, "cargo build --quiet --target {target} --bin crates").run()?;
    Ok(())
}

/// The environment of a std guest build against `sysroot`, as the std guest config sets it.
fn std_env<'a>(sh: &'a Shell, sysroot: &Path, target_dir: &Path) -> [xshell::PushEnv<'a>; 3] {
    let rustflags = [
        format!("--sysroot={}", sysroot.display()),
        "-Zunstable-options".into(),
        "-Zpanic-abort-tests".into(),
    ]
    .join("\x1f");
    [
        sh.push_env("CARGO_TARGET_DIR", target_dir),
        sh.push_env("CARGO_ENCODED_RUSTFLAGS", rustflags),
        sh.push_env("RUSTC_BOOTSTRAP", "1"),
    ]
}
