//! Official Hyperlight guests with plain cargo on stable: the demo guest `cargo hyperlight new`
//! writes (hyperlight-guest-bin 0.18 with its default features, so hyperlight-libc compiles
//! picolibc with the real clang and runs bindgen) builds with `cargo build` on the pinned
//! toolchain against nothing but the installed target and templates/cargo-config.toml, and
//! `hyperlight-run` refuses the result with exit code 126.
//!
//! One cold build of the demo guest (a few minutes on 2 cores) serves all the checks, so they
//! are one test. The install goes into a `TempToolchain` without rust-src.

use std::fs;
use std::path::Path;
use std::process::Command;

mod support;

use object::{Object, ObjectSection, ObjectSymbol};
use testkit::{assert_success, pinned_toolchain, project_root, TempDir, TempToolchain, TARGET};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn official_demo_guest_builds_with_plain_cargo_on_stable_and_the_runner_refuses_it() {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    let install = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["install", "--no-runner", "--prefix"])
        .arg(toolchain.sysroot())
        .env("CARGO_HOME", toolchain.cargo_home())
        .output()
        .unwrap();
    assert_success(
        &install,
        "cargo xtask install --no-runner --prefix <temporary toolchain>",
    );
    let include = toolchain
        .sysroot()
        .join("lib/rustlib")
        .join(TARGET)
        .join("include");
    for header in ["stdio.h", "stdlib.h", "picolibc.h"] {
        assert!(include.join(header).is_file(), "{header} is installed");
    }

    let work = TempDir::new("official");
    let project = work.path().join("official-demo");
    let generate = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["compat", "--generate"])
        .arg(&project)
        .output()
        .unwrap();
    assert_success(&generate, "cargo xtask compat --generate");
    assert_eq!(
        fs::read(project.join("Cargo.lock")).unwrap(),
        fs::read(project_root().join("tests/official-demo/Cargo.lock")).unwrap(),
        "the recorded lock file pins the build"
    );
    fs::create_dir_all(project.join(".cargo")).unwrap();
    fs::copy(
        project_root().join("templates/cargo-config.toml"),
        project.join(".cargo/config.toml"),
    )
    .unwrap();

    // The command the issue names (the template's `[build] target` makes `--target` optional);
    // the test's own environment must not stand in for the template's.
    let build = toolchain
        .command("cargo")
        .args(["build", "--locked", "--target", TARGET])
        .current_dir(&project)
        .env_remove("RUSTC_BOOTSTRAP")
        .env_remove("RUSTC")
        // The template's rustc-wrapper (tested in self_heal.rs) is off: the target is in place.
        .env("RUSTC_WRAPPER", "")
        .output()
        .unwrap();
    assert_success(&build, "plain cargo build of the official demo guest");
    let log = text(&build.stderr);
    assert!(
        log.contains("Compiling hyperlight-libc v0.18.0"),
        "the C library is built:\n{log}"
    );
    assert!(!log.contains("Compiling core"), "no -Zbuild-std:\n{log}");

    let elf = project
        .join("target")
        .join(TARGET)
        .join("debug/official-demo");
    check_official_guest(&elf);

    let run = Command::new(support::release_runner())
        .arg(&elf)
        .output()
        .unwrap();
    let stderr = text(&run.stderr);
    assert_eq!(run.status.code(), Some(126), "{stderr}");
    assert!(
        stderr.contains("is an official Hyperlight guest")
            && stderr.contains("Hyperlight host, version 0.18.0"),
        "{stderr}"
    );
    assert!(run.stdout.is_empty());
}

/// A static PIE entered at `entrypoint`, carrying the version note and picolibc's code.
fn check_official_guest(path: &Path) {
    let bytes = fs::read(path).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    assert_eq!(elf.kind(), object::ObjectKind::Dynamic, "a PIE");
    let entry = elf
        .symbols()
        .find(|s| s.name() == Ok("entrypoint"))
        .expect("an `entrypoint` symbol");
    assert_eq!(elf.entry(), entry.address());
    assert!(
        elf.symbols().any(|s| s.name() == Ok("_rand_next")),
        "picolibc (random.c) is linked in"
    );
    let note = elf
        .section_by_name(".note.hyperlight-version")
        .expect("the hyperlight version note")
        .data()
        .unwrap();
    assert_eq!(&note[12..23], b"Hyperlight\0");
    assert_eq!(&note[24..31], b"0.18.0\0");
}
