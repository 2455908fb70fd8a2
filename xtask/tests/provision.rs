//! Set-up commands provision the toolchain they build with: `cargo xtask install` into a rustup
//! toolchain without rust-src adds it through rustup, says so, and installs. The toolchain is a temporary
//! copy of the pinned one in its own RUSTUP_HOME, so rustup adds rust-src to the copy only.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use testkit::{assert_success, pinned_toolchain, TempDir, TempToolchain, TARGET};

/// The files directly in `lib/rustlib` of the real toolchain `name`: rustup's records of it,
/// the files a write through a link from the copy would change.
fn records(name: &str) -> BTreeMap<PathBuf, Vec<u8>> {
    let output = Command::new("rustc")
        .args([&format!("+{name}"), "--print", "sysroot"])
        .output()
        .unwrap();
    assert_success(&output, "rustc --print sysroot");
    let rustlib = Path::new(String::from_utf8(output.stdout).unwrap().trim()).join("lib/rustlib");
    fs::read_dir(rustlib)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.is_file())
        .map(|path| (path.clone(), fs::read(&path).unwrap()))
        .collect()
}

#[test]
fn install_adds_missing_rust_src_and_says_so() {
    let real = pinned_toolchain();
    let before = records(&real);
    let toolchain = TempToolchain::rustup_copy_without_rust_src(&real);
    let rust_src = toolchain
        .sysroot()
        .join("lib/rustlib/src/rust/library/Cargo.lock");
    assert!(!rust_src.exists());
    let scratch = TempDir::new("provision");
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["install", "--no-runner", "--toolchain", &toolchain.name])
        .env("RUSTUP_HOME", toolchain.rustup_home())
        .env("CARGO_HOME", toolchain.cargo_home())
        .env("CARGO_TARGET_DIR", scratch.path().join("target"))
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask install");
    let stderr = String::from_utf8_lossy(&output.stderr);
    let said = format!(
        "info: adding rust-src to toolchain {} (needed to build core and alloc)\n",
        toolchain.name
    );
    assert!(stderr.starts_with(&said), "{stderr}");
    assert_eq!(stderr.matches("info: adding").count(), 1, "{stderr}");
    assert!(rust_src.is_file(), "rust-src is in the copy");
    let libs = toolchain
        .sysroot()
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib");
    assert!(
        fs::read_dir(libs).unwrap().any(|e| e
            .unwrap()
            .file_name()
            .to_string_lossy()
            .starts_with("libcore-")),
        "the sysroot was built and installed into the copy"
    );
    assert!(
        records(&real) == before,
        "the real toolchain {real}'s records changed"
    );
}
