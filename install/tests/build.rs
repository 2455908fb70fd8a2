//! The installer's sysroot build, fed an installed target directory as its source tree (what
//! the self-healing wrapper does after `rustup update`): it gives byte for byte what
//! `cargo xtask sysroot` built from the checkout, and leaves the source as it was.
//!
//! The toolchain is the developer's pinned one, only read: the build writes into temporary
//! directories, and the test refuses to run rather than let rustup add rust-src to it.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use hyperlight_install::build::{build_sysroot, copy_tree, Progress};
use hyperlight_install::toolchain::{Selector, Toolchain};
use hyperlight_install::Target;
use testkit::{file_contents, pinned_toolchain, TempDir, TARGET};

/// Sets the modes of every directory below and including `dir`: read-only while the test
/// runs, writable again when dropped so the temporary directory can be removed.
struct ReadOnly(PathBuf);

impl ReadOnly {
    fn new(dir: &Path) -> ReadOnly {
        set_dir_modes(dir, 0o555);
        ReadOnly(dir.to_path_buf())
    }
}

impl Drop for ReadOnly {
    fn drop(&mut self) {
        set_dir_modes(&self.0, 0o755);
    }
}

fn set_dir_modes(dir: &Path, mode: u32) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            set_dir_modes(&path, mode);
        } else {
            fs::set_permissions(&path, fs::Permissions::from_mode(0o444)).unwrap();
        }
    }
    fs::set_permissions(dir, fs::Permissions::from_mode(mode)).unwrap();
}

#[test]
fn rebuild_from_an_installed_target_directory_is_identical_and_leaves_it_alone() {
    let built = testkit::sysroot().join("lib/rustlib").join(TARGET);
    let toolchain = Toolchain::find(Selector::Rustup(pinned_toolchain())).unwrap();
    assert!(
        toolchain.has_rust_src(),
        "the pinned toolchain has no rust-src (cargo xtask test adds it)"
    );
    let dir = TempDir::new("rebuild");
    let source = dir.path().join("installed").join(TARGET);
    copy_tree(&built, &source).unwrap();
    let _read_only = ReadOnly::new(&source);
    let before = file_contents(&source);

    let (out, work) = (dir.path().join("out"), dir.path().join("work"));
    let mut steps = Vec::new();
    let mut cargo_lines = Vec::new();
    build_sysroot(
        &source,
        &toolchain,
        Target::None,
        &out,
        &work,
        |progress| match progress {
            Progress::Step(line) => steps.push(line.to_owned()),
            Progress::Cargo(line) => cargo_lines.push(line.to_owned()),
        },
    )
    .unwrap();

    assert_eq!(steps, Vec::<String>::new(), "rust-src was there already");
    assert!(
        cargo_lines
            .iter()
            .any(|line| line.contains("Compiling core")),
        "cargo's progress reaches the caller: {cargo_lines:?}"
    );
    assert!(file_contents(&source) == before, "the source tree changed");
    let (expected, rebuilt) = (
        file_contents(&built),
        file_contents(&out.join("lib/rustlib").join(TARGET)),
    );
    assert_eq!(
        rebuilt.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    // picolibc's prebuilt objects depend on no rustc: the rebuild keeps them.
    assert!(
        rebuilt.keys().any(|path| path.starts_with("c-objects")),
        "the rebuilt target has prebuilt C objects"
    );
    for (path, bytes) in &expected {
        assert!(
            rebuilt[path] == *bytes,
            "{} differs from the one cargo xtask sysroot built",
            path.display()
        );
    }
}

/// A build that fails says so with cargo's last lines, and leaves `out` as it was.
#[test]
fn a_failed_build_quotes_cargo_and_writes_nothing() {
    let toolchain = Toolchain::find(Selector::Rustup(pinned_toolchain())).unwrap();
    assert!(
        toolchain.has_rust_src(),
        "the pinned toolchain has no rust-src"
    );
    let dir = TempDir::new("broken-spec");
    let source = dir.path().join("source");
    let checkout = testkit::project_root().join("sysroot");
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs"] {
        copy_tree(&checkout.join(file), &source.join("src/sysroot").join(file)).unwrap();
    }
    // No llvm-target: rustc refuses the spec before building anything.
    fs::write(source.join("target.json"), "{\"arch\": \"x86_64\"}").unwrap();
    let out = dir.path().join("out");

    let mut lines = 0;
    let err = build_sysroot(
        &source,
        &toolchain,
        Target::None,
        &out,
        &dir.path().join("work"),
        |_| lines += 1,
    )
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.starts_with(&format!(
            "building core, alloc and compiler_builtins for {TARGET} with rustc {} failed",
            toolchain.version
        )),
        "{message}"
    );
    assert!(
        message.contains("error loading target specification"),
        "cargo's own words: {message}"
    );
    assert!(lines > 0, "cargo's stderr reached the callback");
    assert!(!out.exists());
}

/// A rustc rustup does not manage, without the standard library's sources: the build stops
/// before doing anything, with one line saying what is missing and where it was looked for.
#[test]
fn a_plain_rustc_without_rust_src_is_told_what_is_missing() {
    let dir = TempDir::new("plain-rustc");
    // What such a toolchain is to the installer: its rustc's version and sysroot, here a sysroot
    // outside any rustup home, with lib/rustlib but no lib/rustlib/src.
    let sysroot = dir.path().join("rust");
    fs::create_dir_all(sysroot.join("lib/rustlib")).unwrap();
    let pinned = Toolchain::find(Selector::Rustup(pinned_toolchain())).unwrap();
    let toolchain = Toolchain {
        selector: Selector::Rustc(sysroot.join("bin/rustc")),
        version: pinned.version,
        sysroot: sysroot.clone(),
    };
    assert_eq!(toolchain.rustup_name(), None);
    let out = dir.path().join("out");
    let source = testkit::sysroot().join("lib/rustlib").join(TARGET);
    let mut progress = Vec::new();
    let err = build_sysroot(
        &source,
        &toolchain,
        Target::None,
        &out,
        &dir.path().join("work"),
        |p| progress.push(format!("{p:?}")),
    )
    .unwrap_err();
    assert_eq!(
        format!("{err:#}"),
        format!(
            "building core and alloc needs the standard library's sources, which {} lacks ({}/lib/rustlib/src/rust does not exist) and which only rustup can add here",
            sysroot.display(),
            sysroot.display()
        )
    );
    assert_eq!(progress, Vec::<String>::new());
    assert!(!out.exists() && !dir.path().join("work").exists());
}
