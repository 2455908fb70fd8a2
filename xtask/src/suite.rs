//! `cargo xtask test`: the whole test suite, after making sure everything it runs against is
//! there. Tests use real components (KVM, nginx, clang and llvm-ar, the pinned stable and the
//! test nightly toolchains); missing toolchain parts are installed, a missing program is
//! reported up front with the command that installs it.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::{cmd, Shell};

use crate::dist::RUNNER_HOST;
use crate::toolchain::{project_root, test_nightly, Toolchain, FOR_SYSROOT, RUST_SRC};

/// Programs the tests start, and the Debian package providing each.
const PROGRAMS: &[(&str, &str)] = &[
    ("nginx", "nginx-light"),
    ("clang", "clang"),
    ("llvm-ar", "llvm"),
];

pub fn run(sh: &Shell, cargo_test_args: &[String]) -> Result<()> {
    // The tests build sysroots with the pinned toolchain and the test nightly.
    for name in [None, Some(test_nightly()?)] {
        Toolchain::provision(sh, name.as_deref(), &[RUST_SRC], &[], FOR_SYSROOT)?;
    }
    let why = "the dist tests build the static hyperlight-run with it";
    Toolchain::provision(sh, None, &[], &[RUNNER_HOST], why)?;
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
