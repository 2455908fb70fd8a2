//! `cargo xtask test`: the whole test suite, after making sure everything it runs against is
//! there. Tests use real components (KVM, nginx, clang and llvm-ar, gdb and lldb, the pinned
//! stable and the test nightly toolchains); missing toolchain parts are installed, a missing program is
//! reported up front with the command that installs it. KVM is the exception: without it the
//! tests that boot guests are skipped, and listed by name at the end.

use std::process::Command;

use anyhow::{bail, Context, Result};
use xshell::Shell;

use crate::dist::RUNNER_HOST;
use crate::toolchain::{project_root, test_nightly, Toolchain, FOR_SYSROOT, RUST_SRC};
use crate::tools;

/// Programs the tests start, and the Debian package providing each.
const PROGRAMS: &[(&str, &str)] = &[
    ("nginx", "nginx-light"),
    ("clang", "clang"),
    ("llvm-ar", "llvm"),
    ("gdb", "gdb"),
    ("lldb", "lldb"),
];

pub fn run(sh: &Shell, cargo_test_args: &[String]) -> Result<()> {
    // The tests build sysroots with the pinned toolchain and the test nightly.
    for name in [None, Some(test_nightly()?)] {
        Toolchain::provision(sh, name.as_deref(), &[RUST_SRC], &[], FOR_SYSROOT)?;
    }
    let why = "the dist tests build the static hyperlight-run with it";
    Toolchain::provision(sh, None, &[], &[RUNNER_HOST], why)?;
    // The tests run guest tests through cargo-nextest too.
    tools::CARGO_NEXTEST.ensure(sh)?;
    let missing: Vec<_> = PROGRAMS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .collect();
    if !missing.is_empty() {
        let programs: Vec<_> = missing.iter().map(|(program, _)| *program).collect();
        let packages: Vec<_> = missing.iter().map(|(_, package)| *package).collect();
        bail!(
            "the tests need {}; install with `sudo apt-get install {}` (Debian/Ubuntu)",
            programs.join(", "),
            packages.join(" ")
        );
    }
    // Without KVM the tests that boot guests report themselves as skipped, by name: CI runs
    // on such a machine, and the rest of the suite still has to pass there.
    if let Some(why) = testkit::kvm_unavailable() {
        eprintln!("warning: {why}: the tests that boot guests will be reported as skipped");
    }
    testkit::clear_skipped().context("clearing the previous run's skipped tests")?;
    let status = Command::new("cargo")
        .current_dir(project_root())
        .args(["test", "--workspace"])
        .args(cargo_test_args)
        .status()
        .context("running cargo test")?;
    let skipped = testkit::skipped_tests().context("reading the skipped tests")?;
    if !skipped.is_empty() {
        println!("skipped: {} tests", skipped.len());
        for test in &skipped {
            println!("{test}");
        }
    }
    if !status.success() {
        // The suite's exit code is cargo test's.
        std::process::exit(status.code().unwrap_or(1));
    }
    Ok(())
}

fn on_path(program: &str) -> bool {
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}
