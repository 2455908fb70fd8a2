//! The command line itself: help, version, option errors, KVM problems.

mod common;

use common::*;

#[test]
fn help_documents_options_and_exit_codes() {
    let output = run(["--help"]);
    assert_eq!(code(&output), 0);
    let text = stdout(&output);
    for needle in [
        "--memory",
        "--stack",
        "--timeout",
        "--env",
        "<GUEST-ELF>",
        "101",
        "124",
        "125",
        "134",
        "hyperlight-run: error:",
        "HYPERLIGHT_KVM_DEVICE",
    ] {
        assert!(text.contains(needle), "--help lacks {needle}:\n{text}");
    }
}

#[test]
fn version_prints_the_package_version() {
    let output = run(["--version"]);
    assert_eq!(code(&output), 0);
    assert_eq!(
        stdout(&output),
        format!("hyperlight-run {}\n", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn bad_runner_arguments_exit_2() {
    assert_eq!(code(&run(["--memory", "lots", "x"])), 2);
    assert_eq!(code(&run(["--timeout", "soon", "x"])), 2);
    assert_eq!(code(&run::<[&str; 0], &str>([])), 2);
}

#[test]
fn missing_kvm_device_says_what_to_do() {
    let elf = example("hello");
    let (output, _) = run_with_watchdog(
        runner()
            .env("HYPERLIGHT_KVM_DEVICE", "/nonexistent/kvm")
            .arg(&elf),
    );
    assert_eq!(code(&output), 125);
    let line = assert_single_error_line(&output);
    assert!(line.contains("/nonexistent/kvm does not exist"), "{line}");
    assert!(line.contains("kvm module"), "{line}");
}

#[test]
fn unreadable_kvm_device_mentions_the_kvm_group() {
    let dir = testkit::TempDir::new("kvm-perm");
    let device = dir.path().join("kvm");
    std::fs::write(&device, "").unwrap();
    std::fs::set_permissions(&device, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
    // Root opens any file, so as root the runner runs as `nobody`.
    // SAFETY: geteuid has no preconditions.
    let mut command = if unsafe { libc_geteuid() } == 0 {
        let mut setpriv = std::process::Command::new("setpriv");
        setpriv
            .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
            .arg(RUNNER);
        setpriv
    } else {
        runner()
    };
    let (output, _) = run_with_watchdog(
        command
            .env("HYPERLIGHT_KVM_DEVICE", &device)
            .arg(example("hello")),
    );
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    assert!(assert_single_error_line(&output).contains("`kvm` group"));
}

unsafe extern "C" {
    #[link_name = "geteuid"]
    fn libc_geteuid() -> u32;
}

#[test]
fn missing_guest_file_is_one_error_line() {
    let output = run(["/nonexistent/guest"]);
    assert_eq!(code(&output), 125);
    assert!(assert_single_error_line(&output).contains("/nonexistent/guest"));
}
