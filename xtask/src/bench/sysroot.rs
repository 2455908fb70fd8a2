//! The foundation's figures: how long a sysroot takes to build, and whether a guest builds as
//! fast against it as the same crate does for rustup's prebuilt `x86_64-unknown-none`.

use std::path::Path;

use anyhow::Result;
use hyperlight_install::Target;
use xshell::{cmd, Shell};

use super::{median, median_time, Report};
use crate::sysroot;
use crate::toolchain::{project_root, Toolchain, TARGET};

const COLD_BUILD_RUNS: usize = 5;
const RATIO_GOAL: f64 = 1.2;

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Sysroot and guest builds");
    let toolchain = Toolchain::resolve(None)?;
    let scratch = project_root().join("target/bench/sysroot");
    if scratch.exists() {
        sh.remove_path(&scratch)?;
    }

    let out = scratch.join("sysroot");
    let build_time = {
        let _target = sh.push_env("CARGO_TARGET_DIR", scratch.join("sysroot-target"));
        median_time(1, || sysroot::build(sh, &toolchain, Target::None, &out))?
    };
    report.row(
        &format!("`cargo xtask sysroot` from scratch ({})", toolchain.name),
        format!("{:.1} s", build_time.as_secs_f64()),
        "none (done once per toolchain, by the release)",
        None,
    );

    // Alternate the two builds so that a change in machine load hits both alike. Ours runs
    // every rustc through hyperlight-run, as the guest config's rustc-wrapper does.
    let wrapper = crate::runner::build_release(sh, &crate::signing::public_key(None)?)?;
    let crate_dir = project_root().join("tests/nostd-alloc");
    let (mut ours, mut builtin) = (Vec::new(), Vec::new());
    for run in 0..COLD_BUILD_RUNS {
        let target_dir = scratch.join(format!("guest-target-{run}"));
        ours.push(median_time(1, || {
            cold_build(sh, &crate_dir, &target_dir, TARGET, Some((&out, &wrapper)))
        })?);
        builtin.push(median_time(1, || {
            cold_build(sh, &crate_dir, &target_dir, "x86_64-unknown-none", None)
        })?);
    }
    let (ours, builtin) = (median(ours), median(builtin));
    let ratio = ours.as_secs_f64() / builtin.as_secs_f64();
    report.row(
        "cold `cargo build` of tests/nostd-alloc: x86_64-hyperlight-none / x86_64-unknown-none",
        format!(
            "{ratio:.2}× ({:.0} ms / {:.0} ms)",
            ours.as_secs_f64() * 1e3,
            builtin.as_secs_f64() * 1e3
        ),
        &format!("≤ {RATIO_GOAL}×"),
        Some(ratio <= RATIO_GOAL),
    );
    report.note(&format!(
        "Median of {COLD_BUILD_RUNS} alternating cold debug builds, each in an empty target directory; \
         ours against the prebuilt sysroot just built (passed with `--sysroot`, which is what an \
         installed one amounts to) and with every rustc run through hyperlight-run as the guest \
         config's rustc-wrapper (the self-healing check), the baseline against rustup's rust-std \
         for x86_64-unknown-none without a wrapper."
    ));
    sh.remove_path(&scratch)?;
    Ok(())
}

fn cold_build(
    sh: &Shell,
    crate_dir: &Path,
    target_dir: &Path,
    target: &str,
    ours: Option<(&Path, &Path)>,
) -> Result<()> {
    let _dir = sh.push_dir(crate_dir);
    let _target_dir = sh.push_env("CARGO_TARGET_DIR", target_dir);
    let mut rustflags = vec!["-Zunstable-options".to_owned()];
    let mut wrapper = Path::new("");
    if let Some((sysroot, runner)) = ours {
        rustflags.push(format!("--sysroot={}", sysroot.display()));
        wrapper = runner;
    }
    let _flags = sh.push_env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"));
    let _wrapper = sh.push_env("RUSTC_WRAPPER", wrapper);
    let _bootstrap = sh.push_env("RUSTC_BOOTSTRAP", "1");
    cmd!(sh, "cargo build --quiet --target {target}").run()?;
    Ok(())
}
