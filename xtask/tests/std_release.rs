//! x86_64-hyperlight-hermit as a release ships it (real nginx): `install.sh --target` installs
//! the prebuilt std sysroot on request; a std guest made by `hyperlight-run new --std` builds,
//! runs and tests with plain cargo; its rustc-wrapper reinstalls the target after a toolchain
//! update and installs it into a toolchain that lacks it; `--uninstall` restores the toolchain.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use support::{
    assert_said, replace_file, replace_manifest, serve_copy, server, stable_dist, text, Sandbox,
};
use testkit::{assert_success, file_contents, pinned_toolchain, STD_TARGET, TARGET};

/// The std sysroot as `cargo xtask sysroot` built it, file by file.
fn built_std_target() -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    file_contents(&testkit::std_sysroot().join("lib/rustlib").join(STD_TARGET))
}

#[test]
fn install_sh_installs_the_std_target_on_request_and_its_guests_heal_like_no_std_ones() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "release");
    let base = format!("{}/release", nginx.url());
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    let installed_dir = sandbox.rustlib().join(STD_TARGET);
    let release = testkit::rustc_field(&pinned_toolchain(), "release");

    let output = sandbox.run(&["-y", "--target", STD_TARGET, "--dist-server", &base]);
    assert_success(&output, "install.sh --target x86_64-hyperlight-hermit");
    assert_said(
        &output,
        "install.sh",
        &[
            format!(
                "info: installed {STD_TARGET} into {}\n",
                installed_dir.display()
            ),
            format!("{STD_TARGET} is ready for rustc {release}."),
            "\"-Zpanic-abort-tests\"".to_owned(),
            format!("{base}/cargo-config-std.toml"),
        ],
    );
    // Only what was asked for: x86_64-hyperlight-none comes by default, not beside it.
    assert!(!sandbox.rustlib().join(TARGET).exists());
    assert!(file_contents(&installed_dir) == built_std_target());
    let components = fs::read_to_string(sandbox.rustlib().join("components")).unwrap();
    assert!(components
        .lines()
        .any(|c| c == "rust-std-x86_64-hyperlight-hermit"));
    let list = sandbox
        .hyperlight_run(&["target", "list"])
        .output()
        .unwrap();
    assert_success(&list, "target list");
    let line = format!("  {STD_TARGET}: installed (rustc {release} (");
    assert!(text(&list.stdout).contains(&line), "{}", text(&list.stdout));

    // A std guest as `new --std` makes it builds, runs and tests with plain cargo.
    let project = sandbox.dir.path().join("std-guest");
    let mut new = Command::new(sandbox.runner());
    sandbox.env(&mut new);
    assert_success(
        &new.arg("new").arg("--std").arg(&project).output().unwrap(),
        "hyperlight-run new --std",
    );
    let build = sandbox.cargo(&project, "target", &["build"]);
    assert_success(&build, "cargo build of the std guest");
    assert!(
        !text(&build.stderr).contains("hyperlight-run:"),
        "{}",
        text(&build.stderr)
    );
    let test = "install_sh_installs_the_std_target_on_request: booting the std guest";
    if testkit::kvm_or_skip(test) {
        let run = sandbox.cargo(&project, "target", &["run", "--quiet"]);
        assert_success(&run, "cargo run of the std guest");
        assert_eq!(text(&run.stdout), "Hello from std-guest!\n");
        let tests = sandbox.cargo(&project, "target", &["test", "--quiet"]);
        assert_success(&tests, "cargo test of the std guest");
        let report = text(&tests.stdout);
        assert!(
            report.contains("test result: ok. 1 passed; 0 failed;"),
            "{report}"
        );
    }

    // After a toolchain update (the recorded rustc is another one), the first build of a cargo
    // that asks rustc for its version reinstalls the target from the release.
    let nightly = Command::new("rustc")
        .args([&format!("+{}", testkit::test_nightly()), "-vV"])
        .output()
        .unwrap();
    replace_file(&installed_dir.join("rustc-version"), &nightly.stdout);
    let healed = sandbox.cargo(&project, "target-after-update", &["build"]);
    assert_success(&healed, "cargo build after an update");
    let nightly_release = testkit::rustc_field(&testkit::test_nightly(), "release");
    assert_said(
        &healed,
        "cargo build after an update",
        &[
            format!("hyperlight-run: installed {STD_TARGET} for rustc {release} ("),
            format!("(the installed one was built by rustc {nightly_release} ("),
            format!("; prebuilt from {base})\n"),
        ],
    );
    assert!(file_contents(&installed_dir) == built_std_target());

    // A toolchain without it: the first rustc call for the target installs it.
    let removed = sandbox
        .hyperlight_run(&["target", "remove", STD_TARGET])
        .output()
        .unwrap();
    assert_success(&removed, "target remove");
    assert!(!installed_dir.exists());
    let fresh = sandbox.cargo(&project, "target-fresh", &["build"]);
    assert_success(&fresh, "cargo build without the target");
    assert_said(
        &fresh,
        "cargo build without the target",
        &[
            format!("hyperlight-run: installed {STD_TARGET} for rustc {release} ("),
            format!(") (the toolchain had none; prebuilt from {base})\n"),
        ],
    );
    assert!(file_contents(&installed_dir) == built_std_target());
    assert!(!sandbox.rustlib().join(TARGET).exists());

    // --uninstall removes every target and the runner: the toolchain is as before.
    let uninstall = sandbox.run(&["-y", "--uninstall"]);
    assert_success(&uninstall, "install.sh --uninstall");
    assert_said(
        &uninstall,
        "install.sh --uninstall",
        &[
            format!(
                "info: removed {STD_TARGET} from {}\n",
                sandbox.toolchain.sysroot().display()
            ),
            format!("info: removed {}\n", sandbox.runner().display()),
        ],
    );
    let mut after = sandbox.snapshot();
    assert_eq!(after.remove(Path::new("install-root/bin")).unwrap(), "dir");
    after.retain(|path, _| !path.starts_with("cargo-home"));
    assert!(after == before, "uninstall did not restore the toolchain");
}

#[test]
fn without_a_prebuilt_std_sysroot_no_build_names_the_target_and_installs_nothing() {
    let (_dir, nginx) = server();
    let served = serve_copy(&nginx, stable_dist(), "release");
    let base = format!("{}/release", nginx.url());
    let mut manifest = support::manifest(&served);
    manifest["targets"][STD_TARGET]["sysroots"] = serde_json::json!([]);
    replace_manifest(
        &served,
        serde_json::to_string_pretty(&manifest).unwrap().as_bytes(),
    );
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();

    let output = sandbox
        .hyperlight_run(&[
            "target",
            "add",
            STD_TARGET,
            "--no-build",
            "--dist-server",
            &base,
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(5), "{}", text(&output.stderr));
    assert_said(
        &output,
        "target add --no-build",
        &[
            format!(
                "error: no prebuilt {STD_TARGET} sysroot for your rustc {} (commit ",
                testkit::rustc_field(&pinned_toolchain(), "release")
            ),
            format!("{base} offers no {STD_TARGET} sysroots at all."),
            "build it on this machine (a few minutes)".to_owned(),
        ],
    );
    assert!(
        sandbox.snapshot() == before,
        "a refused install changed the toolchain"
    );
}
