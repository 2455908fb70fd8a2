//! Guests keep building when the toolchain changes under them: the guest config's rustc-wrapper
//! (`hyperlight-run`) installs the target for a toolchain that never had it or has one built by
//! another rustc (what `rustup update` leaves behind), prebuilt from the dist server of the last
//! install, else built on this machine; and an installer facing a release without a sysroot for
//! its rustc builds one. Everything runs against temporary toolchain copies, a temporary
//! CARGO_HOME and a real nginx on 127.0.0.1.

mod support;

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{serve_copy, server, stable_dist, text, xtask};
use testkit::{assert_success, pinned_toolchain, TempDir, TempToolchain, TARGET};

/// A user's machine around a temporary toolchain: CARGO_HOME with the release's hyperlight-run
/// on PATH and the dist server a previous install recorded, and a guest project.
struct Machine {
    toolchain: TempToolchain,
    home: TempDir,
}

impl Machine {
    fn new(dist_server: &str) -> Machine {
        let machine = Machine {
            toolchain: TempToolchain::copy_of(&pinned_toolchain(), true),
            home: TempDir::new("heal-home"),
        };
        let bin = machine.cargo_home().join("bin");
        fs::create_dir_all(&bin).unwrap();
        let runner = runner_of(stable_dist());
        fs::copy(&runner, bin.join("hyperlight-run")).unwrap();
        let settings = machine.cargo_home().join("hyperlight/settings.toml");
        fs::create_dir_all(settings.parent().unwrap()).unwrap();
        fs::write(settings, format!("dist-server = \"{dist_server}\"\n")).unwrap();
        testkit::write_hello_guest(&machine.project());
        machine
    }

    /// The toolchain's own temporary cargo home, which shares the developer's download caches:
    /// building core and alloc resolves the standard library's crates.io dependencies offline.
    fn cargo_home(&self) -> PathBuf {
        self.toolchain.cargo_home().to_owned()
    }

    fn project(&self) -> PathBuf {
        self.home.path().join("guest")
    }

    fn target_dir(&self) -> PathBuf {
        self.toolchain.sysroot().join("lib/rustlib").join(TARGET)
    }

    /// `program` in the guest project, with this machine's environment.
    fn command(&self, program: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.cargo_home().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let mut command = self.toolchain.command(program);
        command
            .current_dir(self.project())
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("TMPDIR", self.home.path())
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_BOOTSTRAP")
            .env_remove("HYPERLIGHT_DIST_SERVER")
            .env_remove("CARGO_INSTALL_ROOT");
        command
    }

    fn cargo_build(&self) -> Output {
        self.command("cargo").arg("build").output().unwrap()
    }

    fn rustc_version(&self) -> String {
        let output = self.command("rustc").arg("-vV").output().unwrap();
        text(&output.stdout)
    }

    /// The target as `rustup update` leaves it: the directory and records of an install made
    /// for another rustc (the test nightly's sysroot stands in for the old compiler's).
    fn leave_an_install_for_another_rustc(&self) {
        self.toolchain
            .add_target_from(&testkit::sysroot_for(&testkit::test_nightly()));
        let rustlib = self.toolchain.sysroot().join("lib/rustlib");
        let mut records = String::new();
        for file in files_under(&self.target_dir()) {
            let relative = file.strip_prefix(self.toolchain.sysroot()).unwrap();
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
    fn assert_target_fits(&self) {
        assert_eq!(
            fs::read_to_string(self.target_dir().join("rustc-version")).unwrap(),
            self.rustc_version()
        );
    }
}

/// The release's hyperlight-run in a dist directory.
fn runner_of(dist: &Path) -> PathBuf {
    let manifest = support::manifest(dist);
    dist.join(manifest["runner"]["url"].as_str().unwrap())
}

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Boots the built hello guest, where KVM is available.
fn run_hello(machine: &Machine, test: &str) {
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
    let machine = Machine::new(&server_url);
    assert!(!machine.target_dir().exists());

    let output = machine.cargo_build();
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
    machine.assert_target_fits();

    // Nothing to do the next time: no notice, no request.
    let requests = nginx.access_log().lines().count();
    fs::write(
        machine.project().join("src/main.rs"),
        fs::read_to_string(machine.project().join("src/main.rs")).unwrap() + "\n",
    )
    .unwrap();
    let again = machine.cargo_build();
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
    let machine = Machine::new(&server_url);
    machine.leave_an_install_for_another_rustc();

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

    let output = machine.cargo_build();
    assert_success(&output, "cargo build after the update");
    let stderr = text(&output.stderr);
    let nightly = testkit::rustc_field(&testkit::test_nightly(), "release");
    assert!(
        stderr.contains(&format!("the installed one was built by rustc {nightly}"))
            && stderr.contains(&format!("prebuilt from {server_url}")),
        "{stderr}"
    );
    machine.assert_target_fits();
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
    let machine = Machine::new(&unreachable);
    machine.leave_an_install_for_another_rustc();
    let output = machine.cargo_build();
    assert_success(&output, "cargo build with the dist server unreachable");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("as {unreachable} could not be reached")),
        "{stderr}"
    );
    machine.assert_target_fits();
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
    let machine = Machine::new(&server_url);
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
    machine.assert_target_fits();
    let build = machine.cargo_build();
    assert_success(&build, "cargo build");
    assert!(!text(&build.stderr).contains("hyperlight-run:"));
    run_hello(
        &machine,
        "an_installer_facing_a_release_without_this_rustc_builds_the_sysroot",
    );
}
