//! `cargo xtask test`: the whole test suite, after making sure everything it runs against is
//! there. Tests use real components (KVM, nginx, clang and llvm-ar, the pinned stable and the
//! test nightly toolchains); a missing one is reported up front with the command that installs
//! it.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::toolchain::{pinned_toolchain, project_root, test_nightly};

/// Programs the tests start, and the Debian package providing each.
const PROGRAMS: &[(&str, &str)] = &[
    ("nginx", "nginx-light"),
    ("clang", "clang"),
    ("llvm-ar", "llvm"),
];

pub fn run(sh: &Shell, cargo_test_args: &[String]) -> Result<()> {
    let pinned = pinned_toolchain()?;
    // The toolchains the tests build with, each with the rust-src `cargo xtask sysroot` needs.
    let nightly = test_nightly()?;
    // Each is idempotent and quick when already present (no download then).
    if cmd!(sh, "rustc +{nightly} -V")
        .quiet()
        .ignore_stdout()
        .ignore_stderr()
        .run()
        .is_err()
    {
        cmd!(
            sh,
            "rustup toolchain install {nightly} --profile minimal --component rust-src"
        )
        .run()?;
    }
    for toolchain in [pinned.as_str(), nightly.as_str()] {
        cmd!(sh, "rustup component add rust-src --toolchain {toolchain}")
            .quiet()
            .ignore_stdout()
            .run()?;
    }
    // The dist tests package the static musl runner.
    cmd!(
        sh,
        "rustup target add x86_64-unknown-linux-musl --toolchain {pinned}"
    )
    .quiet()
    .ignore_stdout()
    .run()?;
    let missing: Vec<_> = PROGRAMS
        .iter()
        .filter(|(program, _)| !on_path(program))
        .collect();
    if !missing.is_empty() {
        let programs: Vec<_> = missing.iter().map(|(program, _)| *program).collect();
        let packages: Vec<_> = missing.iter().map(|(_, package)| *package).collect();
        bail!(
            "the tests need {}; install with `sudo apt-get install {}` (Debian/Ubuntu)",
            programs.join(" and "),
            packages.join(" ")
        );
    }
    if !Path::new("/dev/kvm").exists() {
        bail!("the tests boot guests with KVM but /dev/kvm does not exist; enable virtualization (see README, Troubleshooting)");
    }
    let _dir = sh.push_dir(project_root());
    cmd!(sh, "cargo test --workspace {cargo_test_args...}").run()?;
    Ok(())
}

fn on_path(program: &str) -> bool {
    let search = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&search)
        .chain(["/usr/sbin".into(), "/sbin".into()])
        .any(|dir| dir.join(program).is_file())
}
