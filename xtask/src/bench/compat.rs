//! Official Hyperlight guests: a cold build of the demo guest the official way (cargo-hyperlight
//! on nightly, which compiles core and alloc from rust-src and picolibc from C in every project)
//! against plain cargo on stable with the installed target and its prebuilt picolibc, for both
//! guest architectures.

use anyhow::Result;
use xshell::Shell;

use super::{median, median_time, Report};
use crate::compat::demo;
use crate::toolchain::{test_nightly, Toolchain, FOR_SYSROOT, RUST_SRC};

const RUNS: usize = 3;
const SPEEDUP_GOAL: f64 = 3.0;

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Official Hyperlight guests");
    let stable = Toolchain::resolve(None)?;
    // cargo-hyperlight builds core and alloc from the nightly's rust-src.
    let nightly = Toolchain::provision(sh, Some(&test_nightly()?), &[RUST_SRC], &[], FOR_SYSROOT)?;
    let nightly = nightly.name.as_str();
    // Set-up, not measured: the tool, the project, and our targets installed into a temporary
    // copy of the stable toolchain.
    let toolchain = demo::toolchain_with_sysroot(sh, &stable, &demo::TARGETS)?;
    let (scratch, _lock) = demo::scratch_dir("bench-compat")?;
    let official_dir = scratch.join("cargo-hyperlight").join(demo::NAME);
    let plain_dir = scratch.join("plain").join(demo::NAME);
    demo::generate(sh, &official_dir)?;
    demo::generate(sh, &plain_dir)?;

    for target in demo::TARGETS {
        // Alternate the two so that a change in machine load hits both alike; every build
        // starts from an empty target directory.
        let (mut official, mut ours) = (Vec::new(), Vec::new());
        for run in 0..RUNS {
            let target_dir = scratch.join(format!("target-{run}"));
            for dir in [&target_dir.join("official"), &target_dir.join("ours")] {
                if dir.exists() {
                    sh.remove_path(dir)?;
                }
            }
            official.push(median_time(1, || {
                demo::build_with_cargo_hyperlight(
                    sh,
                    &official_dir,
                    &target_dir.join("official"),
                    nightly,
                    target,
                )
                .map(drop)
            })?);
            ours.push(median_time(1, || {
                demo::build_plain(sh, &plain_dir, &target_dir.join("ours"), &toolchain, target)
                    .map(drop)
            })?);
            sh.remove_path(&target_dir)?;
        }
        let (official, ours) = (median(official), median(ours));
        let speedup = official.as_secs_f64() / ours.as_secs_f64();
        report.row(
            &format!(
                "cold `cargo build` of the official demo guest for {target}: cargo-hyperlight \
                 (nightly) / plain cargo (stable)"
            ),
            format!(
                "{speedup:.2}× faster ({:.1} s / {:.1} s)",
                official.as_secs_f64(),
                ours.as_secs_f64()
            ),
            &format!("≥ {SPEEDUP_GOAL}×"),
            Some(speedup >= SPEEDUP_GOAL),
        );
    }
    report.note(&format!(
        "Median of {RUNS} alternating cold debug builds per target of the guest `cargo hyperlight \
         new` writes (hyperlight-guest-bin {}, Cargo.lock from tests/official-demo), each in an \
         empty target directory with the crates already downloaded: `cargo +{nightly} hyperlight \
         build --target T` (cargo-hyperlight {}, which builds its sysroot each time) against \
         `cargo build --target T` on {} with the target installed, templates/cargo-config.toml \
         and its C compiler `hyperlight-cc` (this xtask under that name, the same code as \
         hyperlight-run's). cargo-hyperlight compiles hyperlight-libc's C code (picolibc, one file \
         at a time, most of its build); plain cargo gets every one of them from the target's \
         prebuilt objects and archives them with llvm-ar where cargo-hyperlight uses GNU ar.",
        demo::GUEST_BIN_REQUIREMENT,
        demo::CARGO_HYPERLIGHT.version,
        stable.version.release
    ));
    Ok(())
}
