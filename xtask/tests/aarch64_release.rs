//! aarch64-hyperlight-none as a release ships it (real nginx): `install.sh --target` installs
//! the prebuilt sysroot on request; a no_std crate builds for it with plain cargo and the guest
//! config, and `cargo run` gets the runner's refusal; the rustc-wrapper reinstalls the target
//! after a toolchain update; `--uninstall` restores the toolchain.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Output;

use support::{assert_said, replace_file, serve_copy, server, stable_dist, text, Sandbox};
use testkit::{assert_success, file_contents, pinned_toolchain, project_root, AARCH64_TARGET};

/// The sysroot as `cargo xtask sysroot` built it, file by file.
fn built_target() -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    file_contents(
        &testkit::aarch64_sysroot()
            .join("lib/rustlib")
            .join(AARCH64_TARGET),
    )
}

/// tests/nostd-alloc with the guest config, in `dir`.
fn project(dir: &Path) -> PathBuf {
    let project = dir.join("nostd-alloc");
    let source = project_root().join("tests/nostd-alloc");
    fs::create_dir_all(project.join("src")).unwrap();
    fs::create_dir_all(project.join(".cargo")).unwrap();
    fs::copy(source.join("Cargo.toml"), project.join("Cargo.toml")).unwrap();
    fs::copy(source.join("src/main.rs"), project.join("src/main.rs")).unwrap();
    fs::copy(
        project_root().join("templates/cargo-config.toml"),
        project.join(".cargo/config.toml"),
    )
    .unwrap();
    project
}

/// `cargo ARGS --target aarch64-hyperlight-none` in `project`: see [`Sandbox::cargo`].
fn cargo(sandbox: &Sandbox, project: &Path, target_dir: &str, args: &[&str]) -> Output {
    let args = [args, &["--target", AARCH64_TARGET]].concat();
    sandbox.cargo(project, target_dir, &args)
}

#[test]
fn install_sh_installs_the_aarch64_target_on_request_and_its_builds_heal() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "release");
    let base = format!("{}/release", nginx.url());
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    let installed_dir = sandbox.rustlib().join(AARCH64_TARGET);
    let release = testkit::rustc_field(&pinned_toolchain(), "release");

    let output = sandbox.run(&["-y", "--target", AARCH64_TARGET, "--dist-server", &base]);
    assert_success(&output, "install.sh --target aarch64-hyperlight-none");
    assert_said(
        &output,
        "install.sh",
        &[
            format!(
                "info: installed {AARCH64_TARGET} into {}\n",
                installed_dir.display()
            ),
            format!("{AARCH64_TARGET} is ready for rustc {release}."),
            "    [build]\n    target = \"aarch64-hyperlight-none\"\n".to_owned(),
            "    [target.aarch64-hyperlight-none]\n    runner = \"hyperlight-run\"\n".to_owned(),
            format!("{base}/cargo-config.toml"),
        ],
    );
    // Only what was asked for.
    assert!(!sandbox.rustlib().join(testkit::TARGET).exists());
    assert!(file_contents(&installed_dir) == built_target());
    let components = fs::read_to_string(sandbox.rustlib().join("components")).unwrap();
    assert!(components
        .lines()
        .any(|c| c == "rust-std-aarch64-hyperlight-none"));
    let list = sandbox
        .hyperlight_run(&["target", "list"])
        .output()
        .unwrap();
    assert_success(&list, "target list");
    let line = format!("  {AARCH64_TARGET}: installed (rustc {release} (");
    assert!(text(&list.stdout).contains(&line), "{}", text(&list.stdout));

    // A no_std crate builds with plain cargo; `cargo run` hands it to hyperlight-run, which
    // refuses it.
    let project = project(sandbox.dir.path());
    let build = cargo(&sandbox, &project, "target", &["build"]);
    assert_success(&build, "cargo build for aarch64-hyperlight-none");
    assert!(
        !text(&build.stderr).contains("hyperlight-run:"),
        "{}",
        text(&build.stderr)
    );
    let run = cargo(&sandbox, &project, "target", &["run"]);
    assert_eq!(run.status.code(), Some(125), "{}", text(&run.stderr));
    let elf = sandbox
        .dir
        .path()
        .join("target")
        .join(AARCH64_TARGET)
        .join("debug/nostd-alloc");
    assert_said(
        &run,
        "cargo run",
        &[format!(
            "hyperlight-run: error: cannot load {}: an AArch64 guest (aarch64-hyperlight-none); \
             hyperlight-run boots x86-64 guests only, on an x86-64 host\n",
            elf.display()
        )],
    );

    // After a toolchain update (the recorded rustc is another one), the first build reinstalls
    // the target from the release.
    let nightly = std::process::Command::new("rustc")
        .args([&format!("+{}", testkit::test_nightly()), "-vV"])
        .output()
        .unwrap();
    replace_file(&installed_dir.join("rustc-version"), &nightly.stdout);
    let healed = cargo(&sandbox, &project, "target-after-update", &["build"]);
    assert_success(&healed, "cargo build after an update");
    let nightly_release = testkit::rustc_field(&testkit::test_nightly(), "release");
    assert_said(
        &healed,
        "cargo build after an update",
        &[
            format!("hyperlight-run: installed {AARCH64_TARGET} for rustc {release} ("),
            format!("(the installed one was built by rustc {nightly_release} ("),
            format!("; prebuilt from {base})\n"),
        ],
    );
    assert!(file_contents(&installed_dir) == built_target());

    // --uninstall removes every target and the runner: the toolchain is as before.
    let uninstall = sandbox.run(&["-y", "--uninstall"]);
    assert_success(&uninstall, "install.sh --uninstall");
    assert_said(
        &uninstall,
        "install.sh --uninstall",
        &[format!(
            "info: removed {AARCH64_TARGET} from {}\n",
            sandbox.toolchain.sysroot().display()
        )],
    );
    let mut after = sandbox.snapshot();
    assert_eq!(after.remove(Path::new("install-root/bin")).unwrap(), "dir");
    after.retain(|path, _| !path.starts_with("cargo-home"));
    assert!(after == before, "uninstall did not restore the toolchain");
}
