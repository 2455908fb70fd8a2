//! Guests keep building when the toolchain changes under them: the guest config's rustc-wrapper
//! (`hyperlight-run`) installs the target for a toolchain that never had it or has one built by
//! another rustc (what `rustup update` leaves behind), prebuilt from the dist server of the last
//! install, else built on this machine; and an installer facing a release without a sysroot for
//! its rustc builds one. Everything runs against temporary toolchain copies, a temporary
//! CARGO_HOME and a real nginx on 127.0.0.1.

mod support;

use std::fs;
use std::process::Output;

use support::{serve_copy, server, stable_dist, text, xtask};
use testkit::{assert_success, files_under, pinned_toolchain, TempDir, UserMachine, TARGET};

/// A user's machine whose runner is the release's and whose last install was from `dist_server`.
fn machine(dist_server: &str) -> UserMachine {
    UserMachine::new(&pinned_toolchain(), support::release_runner(), dist_server)
}

fn cargo_build(machine: &UserMachine) -> Output {
    machine.command("cargo").arg("build").output().unwrap()
}

/// The target as `rustup update` leaves it: the directory and records of an install made
/// for another rustc (the test nightly's sysroot stands in for the old compiler's).
fn leave_an_install_for_another_rustc(machine: &UserMachine) {
    machine
        .toolchain
        .add_target_from(&testkit::sysroot_for(&testkit::test_nightly()));
    let rustlib = machine.toolchain.sysroot().join("lib/rustlib");
    let mut records = String::new();
    for file in files_under(&machine.target_dir()) {
        let relative = file.strip_prefix(machine.toolchain.sysroot()).unwrap();
        records.push_str(&format!("file:{}\n", relative.display()));
    }
    fs::write(
        rustlib.join("manifest-rust-std-x86_64-hyperlight-none"),
        records,
    )
    .unwrap();
    let mut components = fs::read_to_string(rustlib.join("components")).unwrap();
    components.push_str("rust-std-x86_64-hyperlight-none\n");
    let path = rustlib.join("components");
    fs::remove_file(&path).unwrap();
    fs::write(path, components).unwrap();
}

/// Asserts the target now fits this toolchain's rustc exactly.
fn assert_target_fits(machine: &UserMachine) {
    assert_eq!(
        fs::read_to_string(machine.target_dir().join("rustc-version")).unwrap(),
        machine.rustc_version()
    );
}

/// Boots the built hello guest, where KVM is available.
fn run_hello(machine: &UserMachine, test: &str) {
    if testkit::kvm_or_skip(&format!("{test}: booting the guest")) {
        let output = machine.command("cargo").arg("run").output().unwrap();
        assert_success(&output, "cargo run");
        assert_eq!(text(&output.stdout), "Hello from a Hyperlight micro-VM!\n");
    }
}

#[test]
fn a_toolchain_that_never_had_the_target_gets_it_on_first_build() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "release");
    let server_url = format!("{}/release", nginx.url());
    let machine = machine(&server_url);
    assert!(!machine.target_dir().exists());

    let output = cargo_build(&machine);
    assert_success(&output, "cargo build");
    let stderr = text(&output.stderr);
    let installed = format!(
        "hyperlight-run: installed {TARGET} for rustc {} (",
        testkit::rustc_field(&pinned_toolchain(), "release")
    );
    assert!(stderr.contains(&installed), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "(the toolchain had none; prebuilt from {server_url})"
        )),
        "{stderr}"
    );
    assert_target_fits(&machine);

    // Nothing to do the next time: no notice, no request.
    let requests = nginx.access_log().lines().count();
    fs::write(
        machine.project().join("src/main.rs"),
        fs::read_to_string(machine.project().join("src/main.rs")).unwrap() + "\n",
    )
    .unwrap();
    let again = cargo_build(&machine);
    assert_success(&again, "second cargo build");
    assert!(
        !text(&again.stderr).contains("hyperlight-run:"),
        "{}",
        text(&again.stderr)
    );
    assert_eq!(nginx.access_log().lines().count(), requests);
    run_hello(
        &machine,
        "a_toolchain_that_never_had_the_target_gets_it_on_first_build",
    );
}

#[test]
fn after_rustup_update_plain_cargo_build_reinstalls_the_target() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "release");
    let server_url = format!("{}/release", nginx.url());
    let machine = machine(&server_url);
    leave_an_install_for_another_rustc(&machine);

    // Without the wrapper the stale libraries are what rustc finds.
    let stale = machine
        .command("cargo")
        .arg("check")
        .env("RUSTC_WRAPPER", "")
        .output()
        .unwrap();
    assert!(!stale.status.success());
    assert!(
        text(&stale.stderr).contains("E0514"),
        "{}",
        text(&stale.stderr)
    );

    let output = cargo_build(&machine);
    assert_success(&output, "cargo build after the update");
    let stderr = text(&output.stderr);
    let nightly = testkit::rustc_field(&testkit::test_nightly(), "release");
    assert!(
        stderr.contains(&format!("the installed one was built by rustc {nightly}"))
            && stderr.contains(&format!("prebuilt from {server_url}")),
        "{stderr}"
    );
    assert_target_fits(&machine);
    run_hello(
        &machine,
        "after_rustup_update_plain_cargo_build_reinstalls_the_target",
    );
}

#[test]
fn offline_after_an_update_the_target_is_rebuilt_from_the_sources_left_behind() {
    // Nothing listens on this port: the dist server cannot be reached.
    let unreachable = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", listener.local_addr().unwrap())
    };
    let machine = machine(&unreachable);
    leave_an_install_for_another_rustc(&machine);
    let output = cargo_build(&machine);
    assert_success(&output, "cargo build with the dist server unreachable");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("as {unreachable} could not be reached")),
        "{stderr}"
    );
    assert_target_fits(&machine);
    // The local build is the release's build: the same bytes as the prebuilt libraries.
    let prebuilt = testkit::sysroot()
        .join("lib/rustlib")
        .join(TARGET)
        .join("lib");
    for library in files_under(&prebuilt) {
        let installed = machine
            .target_dir()
            .join("lib")
            .join(library.file_name().unwrap());
        assert_eq!(fs::read(&installed).unwrap(), fs::read(&library).unwrap());
    }
}

#[test]
fn an_installer_facing_a_release_without_this_rustc_builds_the_sysroot() {
    // A release that has only the test nightly's sysroot.
    let (_dir, nginx) = server();
    let nightly_dist = TempDir::new("dist-nightly-only");
    let output = xtask()
        .arg("dist")
        .arg("--sysroot")
        .arg(testkit::sysroot_for(&testkit::test_nightly()))
        .arg("--out")
        .arg(nightly_dist.path())
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask dist (nightly only)");
    serve_copy(&nginx, nightly_dist.path(), "release");
    let server_url = format!("{}/release", nginx.url());
    let machine = machine(&server_url);
    let install_sh = nightly_dist.path().join("install.sh");

    let refused = machine
        .command("sh")
        .arg(&install_sh)
        .args(["-y", "--no-build", "--dist-server", &server_url])
        .output()
        .unwrap();
    assert_eq!(refused.status.code(), Some(5), "{}", text(&refused.stderr));
    assert!(text(&refused.stderr).contains("no prebuilt x86_64-hyperlight-none sysroot"));
    assert!(!machine.target_dir().exists());

    let output = machine
        .command("sh")
        .arg(&install_sh)
        .args(["-y", "--dist-server", &server_url])
        .output()
        .unwrap();
    assert_success(&output, "install.sh building locally");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("has no prebuilt x86_64-hyperlight-none for rustc")
            && stderr.contains("building it on this machine"),
        "{stderr}"
    );
    assert_target_fits(&machine);
    let build = cargo_build(&machine);
    assert_success(&build, "cargo build");
    assert!(!text(&build.stderr).contains("hyperlight-run:"));
    run_hello(
        &machine,
        "an_installer_facing_a_release_without_this_rustc_builds_the_sysroot",
    );
}
