//! install.sh against a real nginx serving real `cargo xtask dist` output: the end-to-end path
//! (dist → publish → install → cargo build/run of the hello guest → uninstall) and each
//! failure, which must leave the toolchain byte for byte as it was (see support/mod.rs for how
//! the developer's own toolchain is kept out of reach).

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    assert_failure, assert_install_fails, manifest, replace_file, serve_copy, server, stable_dist,
    sysroot_tarball, text, xtask, Sandbox, COMPONENT,
};
use testkit::{assert_success, pinned_toolchain, project_root, TARGET};

const EXIT_NO_SYSROOT: i32 = 5;
const EXIT_DOWNLOAD: i32 = 6;
const EXIT_VERIFY: i32 = 7;

/// The real toolchain's install records, to show the tests never touch it.
fn real_records() -> (String, bool) {
    let output = std::process::Command::new("rustc")
        .args([&format!("+{}", pinned_toolchain()), "--print", "sysroot"])
        .output()
        .unwrap();
    let sysroot = text(&output.stdout).trim().to_owned();
    let rustlib = Path::new(&sysroot).join("lib/rustlib");
    (
        fs::read_to_string(rustlib.join("components")).unwrap_or_default(),
        rustlib.join(TARGET).exists(),
    )
}

#[test]
fn dist_publish_install_then_cargo_run_hello() {
    let real_before = real_records();
    let (_dir, nginx) = server();
    let base = format!("{}/releases", nginx.url());
    let published = xtask()
        .args(["publish", "--to", &base, "--dir"])
        .arg(stable_dist())
        .output()
        .unwrap();
    assert_success(&published, "cargo xtask publish");

    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    let output = sandbox.run(&["-y", "--dist-server", &base]);
    assert_success(&output, "install.sh");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("installed x86_64-hyperlight-none into"),
        "{stderr}"
    );
    assert!(
        stderr.contains("RUSTC_BOOTSTRAP"),
        "guest config not printed:\n{stderr}"
    );

    // The records are rust-installer's, the same as `cargo xtask install` writes.
    let rustlib = sandbox.rustlib();
    let record = fs::read_to_string(rustlib.join(format!("manifest-{COMPONENT}"))).unwrap();
    let lines: Vec<&str> = record.lines().collect();
    let mut sorted = lines.clone();
    sorted.sort();
    assert_eq!(lines, sorted);
    let expected: Vec<String> = support::sysroot_files()
        .iter()
        .map(|f| format!("file:{f}"))
        .collect();
    assert_eq!(lines, expected);
    for line in &lines {
        let path = line.strip_prefix("file:").unwrap();
        assert!(path.starts_with("lib/rustlib/x86_64-hyperlight-none/"));
        assert!(sandbox.toolchain.sysroot().join(path).is_file(), "{line}");
    }
    let components = fs::read_to_string(rustlib.join("components")).unwrap();
    assert_eq!(components.lines().filter(|c| *c == COMPONENT).count(), 1);
    assert!(sandbox.runner().is_file());

    // Idempotent: "already installed", and no tarball is downloaded again. This run is piped,
    // as `curl ... | sh -s -- -y` runs it.
    let requests_before = nginx.access_log().lines().count();
    let mut piped = sandbox
        .sh()
        .args(["-s", "--", "-y", "--dist-server", &base])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let script = fs::read(project_root().join("install.sh")).unwrap();
    piped.stdin.take().unwrap().write_all(&script).unwrap();
    let again = piped.wait_with_output().unwrap();
    assert_success(&again, "second install.sh");
    assert!(
        text(&again.stderr).contains("is already installed"),
        "{}",
        text(&again.stderr)
    );
    let new_requests: Vec<String> = nginx
        .access_log()
        .lines()
        .skip(requests_before)
        .map(str::to_owned)
        .collect();
    assert!(
        new_requests.iter().all(|r| !r.contains(".tar.gz")),
        "second run downloaded tarballs: {new_requests:?}"
    );
    assert_eq!(
        fs::read_to_string(rustlib.join("components")).unwrap(),
        components
    );

    // The hello guest builds with plain cargo against the installed target and runs.
    let target_dir = sandbox.dir.path().join("target");
    let path = format!(
        "{}:{}",
        sandbox.install_root().join("bin").display(),
        std::env::var("PATH").unwrap()
    );
    let examples = project_root().join("examples");
    let build = sandbox
        .toolchain
        .command("cargo")
        .current_dir(&examples)
        .args(["build", "-p", "hello"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_success(&build, "cargo build -p hello");
    let run = sandbox
        .toolchain
        .command("cargo")
        .current_dir(&examples)
        .args(["run", "-q", "-p", "hello"])
        .env("CARGO_TARGET_DIR", &target_dir)
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_success(&run, "cargo run -p hello");
    assert!(
        text(&run.stdout).contains("Hello from a Hyperlight micro-VM!"),
        "{}",
        text(&run.stdout)
    );

    // --uninstall removes exactly what was installed; the runner, which every toolchain's
    // target shares, only once no other toolchain has the target.
    let other = sandbox.add_other_toolchain_with_target();
    let uninstall = ["-y", "--uninstall", "--toolchain", &sandbox.toolchain.name];
    let removed = sandbox.run(&uninstall);
    assert_success(&removed, "install.sh --uninstall");
    assert!(sandbox.runner().exists());
    assert!(
        text(&removed.stderr).contains(&format!(
            "kept {}: the toolchain at {} still uses it\n",
            sandbox.runner().display(),
            other.canonicalize().unwrap().display()
        )),
        "{}",
        text(&removed.stderr)
    );
    fs::remove_dir_all(&other).unwrap();
    let removed = sandbox.run(&uninstall);
    assert_success(&removed, "install.sh --uninstall");
    assert!(!sandbox.runner().exists(), "{}", text(&removed.stderr));
    let mut after = sandbox.snapshot();
    after.remove(Path::new("bin"));
    assert!(after == before, "uninstall did not restore the toolchain");
    assert_eq!(
        real_records(),
        real_before,
        "the real toolchain was modified"
    );
}

#[test]
fn corrupted_tarball_names_file_and_both_hashes() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let served = serve_copy(&nginx, dist, "corrupt");
    let tarball = sysroot_tarball(dist);
    let mut bytes = fs::read(served.join(&tarball)).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    replace_file(&served.join(&tarball), &bytes);
    let expected = manifest(dist)["sysroots"][0]["sha256"]
        .as_str()
        .unwrap()
        .to_owned();
    let actual = support::sha256(&bytes);
    assert_install_fails(
        &[
            "-y",
            "-q",
            "--dist-server",
            &format!("{}/corrupt", nginx.url()),
        ],
        EXIT_VERIFY,
        &[&tarball, &expected, &actual, "corrupt"],
    );
}

#[test]
fn manifest_not_matching_its_sha256_is_refused() {
    let (_dir, nginx) = server();
    let served = serve_copy(&nginx, stable_dist(), "badmanifest");
    let mut json = fs::read(served.join("manifest.json")).unwrap();
    json.extend_from_slice(b" ");
    replace_file(&served.join("manifest.json"), &json);
    assert_install_fails(
        &[
            "-y",
            "--dist-server",
            &format!("{}/badmanifest", nginx.url()),
        ],
        EXIT_VERIFY,
        &[
            "manifest.json",
            "does not match manifest.json.sha256",
            &support::sha256(&json),
        ],
    );
}

#[test]
fn http_404_is_reported_with_the_url() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let served = serve_copy(&nginx, dist, "missing");
    let tarball = sysroot_tarball(dist);
    fs::remove_file(served.join(&tarball)).unwrap();
    assert_install_fails(
        &["-y", "--dist-server", &format!("{}/missing", nginx.url())],
        EXIT_DOWNLOAD,
        &[&format!("{}/missing/{tarball}", nginx.url()), "HTTP 404"],
    );
    // A dist server with nothing at all fails on the manifest, the same way.
    assert_install_fails(
        &["-y", "--dist-server", &format!("{}/nothing", nginx.url())],
        EXIT_DOWNLOAD,
        &["manifest.json failed: HTTP 404"],
    );
}

#[test]
fn http_500_is_reported_as_a_server_error() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    serve_copy(&nginx, dist, "");
    // nginx answers 500 for every tarball under /tar500/ and serves the manifest normally.
    assert_install_fails(
        &["-y", "--dist-server", &format!("{}/tar500", nginx.url())],
        EXIT_DOWNLOAD,
        &[&sysroot_tarball(dist), "HTTP 500", "server error"],
    );
}

#[test]
fn truncated_download_is_refused() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let served = serve_copy(&nginx, dist, "truncated");
    let tarball = sysroot_tarball(dist);
    let bytes = fs::read(served.join(&tarball)).unwrap();
    replace_file(&served.join(&tarball), &bytes[..bytes.len() / 3]);
    assert_install_fails(
        &["-y", "--dist-server", &format!("{}/truncated", nginx.url())],
        EXIT_DOWNLOAD,
        &[&tarball, "truncated", &format!("expected {}", bytes.len())],
    );
}

#[test]
fn rustc_without_a_prebuilt_sysroot_gets_the_available_ones_and_the_fix() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "stable-only");
    let sandbox = Sandbox::new("nightly");
    let before = sandbox.snapshot();
    // The sandbox's toolchain is a copy of nightly: the same compiler.
    let field = |key| testkit::rustc_field("nightly", key);
    let output = sandbox.run(&[
        "-y",
        "--dist-server",
        &format!("{}/stable-only", nginx.url()),
    ]);
    let pinned = pinned_toolchain();
    assert_failure(
        &output,
        EXIT_NO_SYSROOT,
        &[
            &format!(
                "no prebuilt {TARGET} sysroot for your rustc {}",
                field("release")
            ),
            &field("commit-hash"),
            &format!("rustc {pinned} ("),
            &format!("channel = \"{pinned}\""),
            "cargo xtask install --toolchain",
        ],
        &sandbox,
        &before,
    );
}

#[test]
fn install_killed_mid_download_leaves_the_previous_state() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    serve_copy(&nginx, dist, "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();

    // /slow/ is throttled to 64 KiB/s: the tarball download takes minutes.
    let slow = format!("{}/slow", nginx.url());
    let mut child = sandbox
        .install_sh(&["-y", "-q", "--dist-server", &slow])
        .process_group(0)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let tarball = sysroot_tarball(dist);
    let deadline = Instant::now() + Duration::from_secs(60);
    let downloading = loop {
        let partial = fs::read_dir(sandbox.dir.path().join("tmp"))
            .unwrap()
            .filter_map(|e| fs::metadata(e.unwrap().path().join(&tarball)).ok())
            .any(|m| m.len() > 64 * 1024);
        if partial || Instant::now() > deadline {
            break partial;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "install.sh ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(downloading, "the download never started");
    let killed = std::process::Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    assert!(
        sandbox.snapshot() == before,
        "a killed install changed the toolchain"
    );

    // The next run (fast server this time) recovers and installs.
    let output = sandbox.run(&["-y", "-q", "--dist-server", &nginx.url()]);
    assert_success(&output, "install.sh after a killed one");
    let target_json = sandbox.rustlib().join(TARGET).join("target.json");
    assert!(!fs::read_to_string(target_json).unwrap().contains("old"));
}

#[test]
fn help_documents_flags_and_exit_codes() {
    let output = std::process::Command::new("sh")
        .arg(project_root().join("install.sh"))
        .arg("--help")
        .output()
        .unwrap();
    assert_success(&output, "install.sh --help");
    let help = text(&output.stdout);
    for flag in [
        "-y",
        "-q",
        "--toolchain T",
        "--dist-server URL",
        "--no-runner",
        "--uninstall",
        "HYPERLIGHT_DIST_SERVER",
        "EXIT CODES",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
    let bad = std::process::Command::new("sh")
        .arg(project_root().join("install.sh"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(2));
    assert!(text(&bad.stderr).contains("unknown option '--bogus'"));
}

#[test]
fn wget_is_the_fallback_downloader() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let served = serve_copy(&nginx, dist, "wget");
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    let output = sandbox
        .install_sh(&["-y", "--dist-server", &format!("{}/nothing", nginx.url())])
        .env("HYPERLIGHT_DOWNLOADER", "wget")
        .output()
        .unwrap();
    assert_failure(
        &output,
        EXIT_DOWNLOAD,
        &["manifest.json failed: HTTP 404"],
        &sandbox,
        &before,
    );

    let output = sandbox
        .install_sh(&["-y", "--dist-server", &format!("{}/wget", nginx.url())])
        .env("HYPERLIGHT_DOWNLOADER", "wget")
        .output()
        .unwrap();
    assert_success(&output, "install.sh with wget");
    assert!(sandbox.runner().is_file());
    assert!(served.join(sysroot_tarball(dist)).is_file());
    let log = nginx.access_log();
    assert!(log.contains("GET /wget/rust-std-"), "{log}");
}

#[test]
fn other_platforms_are_refused_before_anything_is_touched() {
    let sandbox = Sandbox::new(&testkit::pinned_toolchain());
    let before = sandbox.snapshot();
    for (os, arch, message) in [
        (
            "Darwin",
            "arm64",
            "only x86-64 Linux is supported (this is Darwin arm64)",
        ),
        (
            "Linux",
            "aarch64",
            "only x86-64 Linux is supported (this is Linux aarch64)",
        ),
    ] {
        // A `uname` of another machine first on PATH.
        let fake_bin = sandbox.dir.path().join(format!("uname-{os}-{arch}"));
        fs::create_dir_all(&fake_bin).unwrap();
        let uname = fake_bin.join("uname");
        fs::write(&uname, format!("#!/bin/sh\ncase \"$1\" in -s) echo {os} ;; -m) echo {arch} ;; *) echo {os} ;; esac\n")).unwrap();
        fs::set_permissions(&uname, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        let path = std::env::join_paths(
            std::iter::once(fake_bin)
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        let output = sandbox
            .install_sh(&["-y", "--dist-server", "http://127.0.0.1:9"])
            .env("PATH", path)
            .output()
            .unwrap();
        assert_failure(&output, 3, &[message], &sandbox, &before);
    }
}
