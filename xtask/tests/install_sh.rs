//! The release's install.sh, run as users run it (`curl ... | sh -s -- -y`, or
//! `sh install.sh ...`), against a real nginx serving real `cargo xtask dist` output: the
//! end-to-end path (dist → publish → install → cargo build/run of the hello guest →
//! uninstall), the options and environment variables of README's "Installing from a release",
//! and each failure, with its exit code from README's table, which must leave the toolchain byte
//! for byte as it was (see support/mod.rs for how the developer's own toolchains are kept out
//! of reach).

mod support;

use std::fs;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{
    assert_failure, assert_install_fails, assert_installed, manifest, replace_file, runner_file,
    serve_copy, server, stable_dist, sysroot_tarball, text, xtask, Sandbox,
};
use testkit::{assert_success, pinned_toolchain, project_root, TempDir, TARGET};

// README's exit codes.
const EXIT_UNEXPECTED: i32 = 1;
const EXIT_USAGE: i32 = 2;
const EXIT_PLATFORM: i32 = 3;
const EXIT_TOOLCHAIN: i32 = 4;
const EXIT_NO_SYSROOT: i32 = 5;
const EXIT_DOWNLOAD: i32 = 6;
const EXIT_VERIFY: i32 = 7;
const EXIT_WRITE: i32 = 8;

/// The real toolchain's install records, to show the tests never touch it.
fn real_records() -> (String, bool) {
    let output = Command::new("rustc")
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

/// A URL on which nothing listens (a port just released by the OS).
fn refusing_url() -> String {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    format!("http://127.0.0.1:{port}")
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
    let runner = runner_file(stable_dist());

    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    // `sh install.sh`, with the install.sh the release serves.
    let served = fs::read(nginx.www().join("releases/install.sh")).unwrap();
    assert_eq!(served, fs::read(stable_dist().join("install.sh")).unwrap());
    let output = sandbox.run(&["-y", "--dist-server", &base]);
    assert_success(&output, "install.sh");
    let stderr = text(&output.stderr);
    let bin = sandbox.install_root().join("bin");
    for said in [
        format!("info: downloading {runner}\n"),
        format!(
            "info: installed {TARGET} into {}\n",
            sandbox.rustlib().join(TARGET).display()
        ),
        format!("info: installed hyperlight-run into {}\n", bin.display()),
        format!("warning: the dist server {base} is not HTTPS"),
        "RUSTC_BOOTSTRAP = \"1\"".to_owned(),
        format!("{base}/cargo-config.toml"),
        format!("warning: {} is not on PATH", bin.display()),
    ] {
        assert!(stderr.contains(&said), "stderr lacks {said:?}:\n{stderr}");
    }
    assert_installed(&sandbox, testkit::sysroot());
    assert_eq!(
        fs::read(sandbox.runner()).unwrap(),
        fs::read(stable_dist().join(&runner)).unwrap()
    );
    let mode = fs::metadata(sandbox.runner()).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    // The dist server is recorded for the builds that reinstall the target later.
    let settings =
        fs::read_to_string(sandbox.cargo_home().join("hyperlight/settings.toml")).unwrap();
    assert_eq!(settings, format!("dist-server = \"{base}\"\n"));
    let components = fs::read_to_string(sandbox.rustlib().join("components")).unwrap();

    // Idempotent, piped as `curl ... | sh -s -- -y` runs it: "already installed", and the
    // installed hyperlight-run is the release's, so only the manifest is downloaded.
    let requests_before = nginx.access_log().lines().count();
    let again = sandbox
        .curl_pipe_sh(
            &format!("{base}/install.sh"),
            &["-y", "--dist-server", &base],
        )
        .output()
        .unwrap();
    assert_success(&again, "second install.sh");
    let stderr = text(&again.stderr);
    assert!(
        stderr.contains(&format!(
            "info: {TARGET} for rustc {} is already installed in {}\n",
            testkit::rustc_field(&pinned_toolchain(), "release"),
            sandbox.toolchain.sysroot().display()
        )),
        "{stderr}"
    );
    assert!(
        stderr.contains("info: hyperlight-run is up to date in"),
        "{stderr}"
    );
    assert!(!stderr.contains("downloading"), "{stderr}");
    let requests: Vec<String> = nginx
        .access_log()
        .lines()
        .skip(requests_before)
        .map(str::to_owned)
        .collect();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /releases/install.sh 200"))
            && requests
                .iter()
                .any(|r| r.starts_with("GET /releases/manifest.json 200")),
        "{requests:?}"
    );
    assert!(
        requests
            .iter()
            .all(|r| !r.contains(".tar.gz") && !r.contains(&runner)),
        "the second run downloaded more than the manifest: {requests:?}"
    );
    assert_eq!(
        fs::read_to_string(sandbox.rustlib().join("components")).unwrap(),
        components
    );

    // The hello guest builds with plain cargo against the installed target and runs.
    let target_dir = sandbox.dir.path().join("target");
    let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
    let examples = project_root().join("examples");
    let cargo = |args: &[&str]| {
        sandbox
            .toolchain
            .command("cargo")
            .current_dir(&examples)
            .args(args)
            .env("CARGO_HOME", sandbox.cargo_home())
            .env("CARGO_TARGET_DIR", &target_dir)
            .env("PATH", &path)
            // The guest config's rustc-wrapper (the installed runner), not the developer's.
            .env_remove("RUSTC_WRAPPER")
            .output()
            .unwrap()
    };
    assert_success(&cargo(&["build", "-p", "hello"]), "cargo build -p hello");
    assert!(target_dir.join(TARGET).join("debug/hello").is_file());
    if testkit::kvm_or_skip("dist_publish_install_then_cargo_run_hello: cargo run of hello") {
        let run = cargo(&["run", "-q", "-p", "hello"]);
        assert_success(&run, "cargo run -p hello");
        assert!(
            text(&run.stdout).contains("Hello from a Hyperlight micro-VM!"),
            "{}",
            text(&run.stdout)
        );
    }

    // --uninstall removes exactly what was installed; the runner, which every toolchain's
    // target shares, only once no other toolchain has the target.
    let other = sandbox.add_other_toolchain_with_target();
    let uninstall = ["-y", "--uninstall", "--toolchain", &sandbox.toolchain.name];
    let removed = sandbox.run(&uninstall);
    assert_success(&removed, "install.sh --uninstall");
    let stderr = text(&removed.stderr);
    assert!(sandbox.runner().exists());
    for said in [
        format!(
            "info: removed {TARGET} from {}\n",
            sandbox.toolchain.sysroot().display()
        ),
        format!(
            "info: kept {}: the toolchain at {} still uses it\n",
            sandbox.runner().display(),
            other.canonicalize().unwrap().display()
        ),
    ] {
        assert!(stderr.contains(&said), "stderr lacks {said:?}:\n{stderr}");
    }
    fs::remove_dir_all(&other).unwrap();
    let removed = sandbox.run(&uninstall);
    assert_success(&removed, "install.sh --uninstall");
    assert!(
        text(&removed.stderr).contains(&format!("info: removed {}\n", sandbox.runner().display())),
        "{}",
        text(&removed.stderr)
    );
    assert!(!sandbox.runner().exists());
    // Back to the state before the install, but for the empty bin directory and the settings.
    let mut after = sandbox.snapshot();
    assert_eq!(after.remove(Path::new("install-root/bin")).unwrap(), "dir");
    after.retain(|path, _| !path.starts_with("cargo-home"));
    assert!(after == before, "uninstall did not restore the toolchain");
    assert_eq!(
        real_records(),
        real_before,
        "the real toolchain was modified"
    );
}

#[test]
fn an_installed_release_runner_is_run_without_a_download() {
    // Piped, with the server from HYPERLIGHT_DIST_SERVER instead of --dist-server.
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.install_release_runner();
    let output = sandbox
        .curl_pipe_sh(&format!("{}/install.sh", nginx.url()), &["-y"])
        .env("HYPERLIGHT_DIST_SERVER", nginx.url())
        .output()
        .unwrap();
    assert_success(&output, "curl | sh -s -- -y");
    assert_installed(&sandbox, testkit::sysroot());
    let requests: Vec<String> = nginx.access_log().lines().map(str::to_owned).collect();
    assert!(
        requests
            .iter()
            .all(|r| !r.contains(&runner_file(stable_dist()))),
        "the installed runner was the release's, yet it was downloaded: {requests:?}"
    );
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with(&format!("GET /{}", sysroot_tarball(stable_dist())))),
        "{requests:?}"
    );
}

#[test]
fn quiet_keeps_only_warnings_and_no_runner_leaves_the_runner_alone() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    let output = sandbox.run(&["-y", "-q", "--no-runner", "--dist-server", &nginx.url()]);
    assert_success(&output, "install.sh -q --no-runner");
    assert_eq!(text(&output.stdout), "");
    let stderr = text(&output.stderr);
    assert!(
        stderr.lines().all(|line| line.starts_with("warning: ")),
        "-q printed more than warnings:\n{stderr}"
    );
    assert!(stderr.contains("is not HTTPS"), "{stderr}");
    assert_installed(&sandbox, testkit::sysroot());
    assert!(!sandbox.install_root().exists(), "--no-runner installed it");

    // --uninstall --no-runner keeps an installed runner even when no toolchain has the target.
    sandbox.install_release_runner();
    let output = sandbox.run(&["-y", "-q", "--uninstall", "--no-runner"]);
    assert_success(&output, "install.sh --uninstall --no-runner");
    assert!(!sandbox.rustlib().join(TARGET).exists());
    assert!(sandbox.runner().is_file());
}

#[test]
fn the_runner_goes_where_cargo_install_puts_binaries() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let runner = runner_file(stable_dist());
    let release_runner = fs::read(stable_dist().join(&runner)).unwrap();
    let sandbox = Sandbox::new(&pinned_toolchain());
    let args = ["-y", "-q", "--dist-server", &nginx.url()];

    // Without CARGO_INSTALL_ROOT: $CARGO_HOME/bin.
    let output = sandbox
        .install_sh(&args)
        .env_remove("CARGO_INSTALL_ROOT")
        .output()
        .unwrap();
    assert_success(&output, "install.sh without CARGO_INSTALL_ROOT");
    let bin = sandbox.cargo_home().join("bin/hyperlight-run");
    assert_eq!(fs::read(bin).unwrap(), release_runner);
    assert!(!sandbox.install_root().exists());

    // Without CARGO_HOME either: ~/.cargo/bin, and the settings in ~/.cargo too.
    let home = sandbox.dir.path().join("home");
    let in_home = || {
        sandbox
            .install_sh(&args)
            .env_remove("CARGO_INSTALL_ROOT")
            .env_remove("CARGO_HOME")
            .env("HOME", &home)
            .output()
            .unwrap()
    };
    assert_success(&in_home(), "install.sh without CARGO_HOME");
    assert_eq!(
        fs::read(home.join(".cargo/bin/hyperlight-run")).unwrap(),
        release_runner
    );
    assert!(home.join(".cargo/hyperlight/settings.toml").is_file());
    // install.sh finds it there too: the next run downloads no installer.
    let requests_before = nginx.access_log().lines().count();
    assert_success(&in_home(), "install.sh without CARGO_HOME, again");
    let log = nginx.access_log();
    let requests: Vec<&str> = log.lines().skip(requests_before).collect();
    assert!(
        requests.iter().all(|r| !r.contains(&runner)),
        "{requests:?}"
    );
}

#[test]
fn the_toolchain_is_the_rustc_selected_here_or_rustc() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    // A default toolchain that does not exist: were rust-toolchain.toml ignored, rustup would
    // fail instead of reaching one of the developer's toolchains (linked into the home).
    let settings = sandbox.toolchain.rustup_home().join("settings.toml");
    let rest: String = fs::read_to_string(&settings)
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.starts_with("default_toolchain"))
        .map(|line| format!("{line}\n"))
        .collect();
    let default = "default_toolchain = \"hyperlight-test-no-default\"\n";
    replace_file(&settings, format!("{default}{rest}").as_bytes());
    let project = sandbox.dir.path().join("guest");
    fs::create_dir_all(&project).unwrap();
    fs::write(
        project.join("rust-toolchain.toml"),
        format!("[toolchain]\nchannel = \"{}\"\n", sandbox.toolchain.name),
    )
    .unwrap();
    let output = sandbox
        .install_sh(&["-y", "-q", "--no-runner", "--dist-server", &nginx.url()])
        .current_dir(&project)
        .env_remove("RUSTUP_TOOLCHAIN")
        .output()
        .unwrap();
    assert_success(&output, "install.sh under rust-toolchain.toml");
    assert_installed(&sandbox, testkit::sysroot());

    // A plain rustc (not rustup's proxy) through $RUSTC; rustup's selection names no toolchain.
    let rustc = sandbox.toolchain.sysroot().join("bin/rustc");
    let mut print = Command::new(&rustc);
    sandbox.env(&mut print).args(["--print", "sysroot"]);
    let printed = print.output().unwrap();
    assert_eq!(
        text(&printed.stdout).trim(),
        sandbox.toolchain.sysroot().display().to_string(),
        "the temporary rustc must report its own sysroot, not a real toolchain's"
    );
    let plain = |args: &[&str]| {
        sandbox
            .install_sh(args)
            .env("RUSTC", &rustc)
            .env("RUSTUP_TOOLCHAIN", "hyperlight-test-no-such-toolchain")
            .output()
            .unwrap()
    };
    // The runner is not installed, so install.sh downloads the installer even to uninstall.
    let uninstall = [
        "-y",
        "--uninstall",
        "--no-runner",
        "--dist-server",
        &nginx.url(),
    ];
    let output = plain(&uninstall);
    assert_success(&output, "install.sh --uninstall with RUSTC");
    let said = format!(
        "info: removed {TARGET} from {}\n",
        sandbox.toolchain.sysroot().display()
    );
    assert!(
        text(&output.stderr).contains(&said),
        "{}",
        text(&output.stderr)
    );
    assert!(!sandbox.rustlib().join(TARGET).exists());
    let output = plain(&["-y", "-q", "--no-runner", "--dist-server", &nginx.url()]);
    assert_success(&output, "install.sh with RUSTC");
    assert_installed(&sandbox, testkit::sysroot());
}

#[test]
fn nightly_toolchains_install_their_own_sysroot() {
    let nightly_sysroot = testkit::sysroot_for("nightly");
    let dist = TempDir::new("dist-with-nightly");
    let output = xtask()
        .args(["dist", "--no-runner", "--sysroot"])
        .arg(&nightly_sysroot)
        .arg("--include")
        .arg(stable_dist())
        .arg("--out")
        .arg(dist.path())
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask dist (nightly and stable)");
    let (_dir, nginx) = server();
    serve_copy(&nginx, dist.path(), "");
    let sandbox = Sandbox::new("nightly");
    let output = sandbox
        .curl_pipe_sh(&format!("{}/install.sh", nginx.url()), &["-y"])
        .env("HYPERLIGHT_DIST_SERVER", nginx.url())
        .output()
        .unwrap();
    assert_success(&output, "install.sh on nightly");
    assert_installed(&sandbox, &nightly_sysroot);
    let recorded =
        fs::read_to_string(sandbox.rustlib().join(TARGET).join("rustc-version")).unwrap();
    assert_eq!(
        recorded.lines().find(|l| l.starts_with("commit-hash: ")),
        Some(
            format!(
                "commit-hash: {}",
                testkit::rustc_field("nightly", "commit-hash")
            )
            .as_str()
        )
    );
}

#[test]
fn template_install_sh_refuses_to_run() {
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    let mut sh = Command::new("sh");
    sandbox.env(&mut sh);
    let output = sh
        .arg(project_root().join("install.sh"))
        .args(["-y", "--dist-server", &refusing_url()])
        .output()
        .unwrap();
    assert_failure(
        &output,
        EXIT_UNEXPECTED,
        &[
            "error: this install.sh is the template in the repository, not a release's\n",
            "       use the install.sh a release serves, or build one with: cargo xtask dist\n",
        ],
        &sandbox,
        &before,
    );
}

#[test]
fn a_tampered_installer_is_refused_and_never_run() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let served = serve_copy(&nginx, dist, "tampered");
    let runner = runner_file(dist);
    let size = fs::metadata(dist.join(&runner)).unwrap().len() as usize;
    // A script of exactly the installer's size, so that only the sha256 can tell.
    let sandbox = Sandbox::new(&pinned_toolchain());
    let marker = sandbox.dir.path().join("tampered-installer-ran");
    let mut script = format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display()).into_bytes();
    script.resize(size, b'#');
    replace_file(&served.join(&runner), &script);
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();
    let output = sandbox.run(&["-y", "--dist-server", &format!("{}/tampered", nginx.url())]);
    assert_failure(
        &output,
        EXIT_VERIFY,
        &[
            &format!("error: {runner} is corrupt: its sha256 does not match this install.sh\n"),
            &format!(
                "       expected sha256 {}\n",
                manifest(dist)["runner"]["sha256"].as_str().unwrap()
            ),
            &format!("       actual sha256   {}\n", support::sha256(&script)),
            "       nothing was installed or run;",
        ],
        &sandbox,
        &before,
    );
    assert!(!marker.exists(), "install.sh ran the tampered installer");
    // The marker does show a run: the served file, run, creates it.
    let ran = Command::new("sh")
        .arg(served.join(&runner))
        .status()
        .unwrap();
    assert!(ran.success() && marker.exists());
}

#[test]
fn a_truncated_installer_is_refused() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let served = serve_copy(&nginx, dist, "short");
    let runner = runner_file(dist);
    let bytes = fs::read(dist.join(&runner)).unwrap();
    replace_file(&served.join(&runner), &bytes[..bytes.len() / 2]);
    assert_install_fails(
        &["-y", "--dist-server", &format!("{}/short", nginx.url())],
        EXIT_DOWNLOAD,
        &[&format!(
            "error: {runner} is truncated or too long: got {} bytes, expected {}\n",
            bytes.len() / 2,
            bytes.len()
        )],
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
    assert_install_fails(
        &[
            "-y",
            "-q",
            "--dist-server",
            &format!("{}/corrupt", nginx.url()),
        ],
        EXIT_VERIFY,
        &[
            &format!("error: {tarball} is corrupt: its sha256 does not match the manifest\n"),
            &format!("       expected sha256 {expected}\n"),
            &format!("       actual sha256   {}\n", support::sha256(&bytes)),
            "       nothing was installed;",
        ],
    );
}

#[test]
fn manifest_not_matching_its_sha256_is_refused() {
    let (_dir, nginx) = server();
    let served = serve_copy(&nginx, stable_dist(), "badmanifest");
    // The signature vouches for the manifest; its .sha256 line is another file's.
    let json = fs::read(served.join("manifest.json")).unwrap();
    let other = "0".repeat(64);
    replace_file(
        &served.join("manifest.json.sha256"),
        format!("{other}  manifest.json\n").as_bytes(),
    );
    let url = format!("{}/badmanifest", nginx.url());
    assert_install_fails(
        &["-y", "--dist-server", &url],
        EXIT_VERIFY,
        &[&format!(
            "error: {url}/manifest.json: sha256 is {}, but its .sha256 file says {other}",
            support::sha256(&json),
        )],
    );
}

/// Whoever controls the dist server can replace the manifest and its .sha256 together; the
/// signature is what stops them.
#[test]
fn a_replaced_manifest_without_the_release_signature_is_refused() {
    let (_dir, nginx) = server();
    let key = support::release_key().public_key();
    let other = hyperlight_install::signature::SigningKey::from_seed([7; 32]);
    // The attacker's manifest: the release's, pointing at a tarball of their choosing.
    let mut forged = manifest(stable_dist());
    forged["sysroots"][0]["sha256"] = "0".repeat(64).into();
    let forged = serde_json::to_string_pretty(&forged).unwrap() + "\n";
    let cases: [(&str, Option<String>, String); 2] = [
        (
            "foreign",
            Some(hyperlight_install::signature::sign(
                forged.as_bytes(),
                &other,
            )),
            format!(
                "is signed by key {}, but this installer trusts only key {key}",
                other.public_key()
            ),
        ),
        (
            "unsigned",
            None,
            "comes without manifest.json.sig: the release is unsigned".to_owned(),
        ),
    ];
    for (name, sig, said) in cases {
        let served = serve_copy(&nginx, stable_dist(), name);
        replace_file(&served.join("manifest.json"), forged.as_bytes());
        replace_file(
            &served.join("manifest.json.sha256"),
            format!("{}  manifest.json\n", support::sha256(forged.as_bytes())).as_bytes(),
        );
        match sig {
            Some(sig) => replace_file(&served.join("manifest.json.sig"), sig.as_bytes()),
            None => fs::remove_file(served.join("manifest.json.sig")).unwrap(),
        }
        let url = format!("{}/{name}", nginx.url());
        assert_install_fails(&["-y", "--dist-server", &url], EXIT_VERIFY, &[&said]);
        let requests = nginx.access_log();
        assert!(
            !requests.contains(&format!("GET /{name}/rust-std-")),
            "{name}: a tarball was downloaded: {requests}"
        );
    }
}

#[test]
fn malformed_manifest_is_refused() {
    let (_dir, nginx) = server();
    let served = serve_copy(&nginx, stable_dist(), "malformed");
    let json = fs::read(served.join("manifest.json")).unwrap();
    let cut = &json[..json.len() / 2];
    support::replace_manifest(&served, cut);
    let url = format!("{}/malformed", nginx.url());
    assert_install_fails(
        &["-y", "--dist-server", &url],
        EXIT_VERIFY,
        &[&format!(
            "error: {url}/manifest.json is not a valid manifest (EOF while parsing"
        )],
    );
}

#[test]
fn http_404_is_reported_with_the_url() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    let url = |name: &str| format!("{}/{name}", nginx.url());
    let served = serve_copy(&nginx, dist, "missing");
    let tarball = sysroot_tarball(dist);
    fs::remove_file(served.join(&tarball)).unwrap();
    assert_install_fails(
        &["-y", "--dist-server", &url("missing")],
        EXIT_DOWNLOAD,
        &[&format!(
            "error: download of {}/{tarball} failed: HTTP 404 (not found); check --dist-server",
            url("missing")
        )],
    );
    // The installer's first download, the manifest.
    let served = serve_copy(&nginx, dist, "nomanifest");
    fs::remove_file(served.join("manifest.json")).unwrap();
    assert_install_fails(
        &["-y", "--dist-server", &url("nomanifest")],
        EXIT_DOWNLOAD,
        &[&format!(
            "error: download of {}/manifest.json failed: HTTP 404 (not found)",
            url("nomanifest")
        )],
    );
    // install.sh's own download, the installer, from a server with nothing at all.
    assert_install_fails(
        &["-y", "--dist-server", &url("nothing")],
        EXIT_DOWNLOAD,
        &[
            &format!(
                "error: download of {}/{} failed: HTTP 404 (not found)\n",
                url("nothing"),
                runner_file(dist)
            ),
            "       check --dist-server / HYPERLIGHT_DIST_SERVER",
        ],
    );
}

#[test]
fn http_500_is_reported_as_a_server_error() {
    let (_dir, nginx) = server();
    let dist = stable_dist();
    serve_copy(&nginx, dist, "");
    // nginx answers 500 for every tarball under /tar500/ and serves the rest normally.
    let url = format!("{}/tar500", nginx.url());
    assert_install_fails(
        &["-y", "--dist-server", &url],
        EXIT_DOWNLOAD,
        &[&format!(
            "error: download of {url}/{} failed: HTTP 500 (server error); the dist server has a \
             problem: try again later",
            sysroot_tarball(dist)
        )],
    );
}

#[test]
fn refused_connections_are_download_failures() {
    // install.sh's own download of the installer.
    let url = refusing_url();
    assert_install_fails(
        &["-y", "--dist-server", &url],
        EXIT_DOWNLOAD,
        &[
            &format!(
                "error: download of {url}/{} failed: ",
                runner_file(stable_dist())
            ),
            "       check your connection and the dist server",
        ],
    );
    // The installer's, with the release's runner installed already.
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    sandbox.install_release_runner();
    let before = sandbox.snapshot();
    let output = sandbox.run(&["-y", "--dist-server", &url]);
    assert_failure(
        &output,
        EXIT_DOWNLOAD,
        &[
            &format!("error: download of {url}/manifest.json failed: "),
            "Connection refused",
            "check your connection and the dist server",
        ],
        &sandbox,
        &before,
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
        &[&format!(
            "error: {tarball} is truncated or too long: got {} bytes, expected {}",
            bytes.len() / 3,
            bytes.len()
        )],
    );
}

#[test]
fn no_build_without_a_prebuilt_sysroot_lists_the_available_ones_and_the_fix() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "stable-only");
    let url = format!("{}/stable-only", nginx.url());
    let sandbox = Sandbox::new("nightly");
    let before = sandbox.snapshot();
    // The sandbox's toolchain is a copy of nightly: the same compiler.
    let ours = |key| testkit::rustc_field("nightly", key);
    let pinned = |key| testkit::rustc_field(&pinned_toolchain(), key);
    let output = sandbox.run(&["-y", "--no-build", "--dist-server", &url]);
    let release = pinned("release");
    assert_failure(
        &output,
        EXIT_NO_SYSROOT,
        &[
            &format!(
                "error: no prebuilt {TARGET} sysroot for your rustc {} (commit {}, {})\n",
                ours("release"),
                &ours("commit-hash")[..9],
                ours("commit-date")
            ),
            &format!("       {url} has {TARGET} sysroots for:\n"),
            &format!(
                "         rustc {release} (commit {}, {})\n",
                &pinned("commit-hash")[..9],
                pinned("commit-date")
            ),
            "run again without --no-build to build it on this machine",
            &format!(
                "([toolchain] channel = \"{release}\") and install with --toolchain {release}"
            ),
        ],
        &sandbox,
        &before,
    );
}

#[test]
fn bad_usage_exits_2_and_help_lists_every_option_and_exit_code() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let url = nginx.url();
    let url = url.as_str();
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();
    for (args, downloader, said) in [
        (
            vec!["--bogus", "--dist-server", url],
            None,
            "error: unexpected argument '--bogus' found",
        ),
        (
            vec!["-y", "--dist-server"],
            None,
            "error: --dist-server needs a value (see --help)",
        ),
        (
            vec!["-y", "--dist-server", "ftp://127.0.0.1/"],
            None,
            "error: --dist-server must be an https:// (or http://) URL, not 'ftp://127.0.0.1'",
        ),
        (
            vec!["-y", "--dist-server", url],
            Some("ftp"),
            "error: HYPERLIGHT_DOWNLOADER must be curl or wget, not 'ftp'",
        ),
    ] {
        let mut command = sandbox.install_sh(&args);
        if let Some(downloader) = downloader {
            command.env("HYPERLIGHT_DOWNLOADER", downloader);
        }
        let output = command.output().unwrap();
        assert_failure(&output, EXIT_USAGE, &[said], &sandbox, &before);
    }

    let output = sandbox.run(&["--help", "--dist-server", url]);
    assert_success(&output, "install.sh --help");
    let help = text(&output.stdout);
    for option in [
        "-y",
        "-q",
        "--toolchain <T>",
        "--dist-server <URL>",
        "--no-build",
        "--no-runner",
        "--uninstall",
        "HYPERLIGHT_DIST_SERVER",
        "RUSTC",
        "CARGO_INSTALL_ROOT, CARGO_HOME",
        "Exit codes:",
    ] {
        assert!(help.contains(option), "--help lacks {option}:\n{help}");
    }
    for code in 0..=8 {
        assert!(
            help.contains(&format!("\n  {code}  ")),
            "--help lacks exit code {code}:\n{help}"
        );
    }
    assert!(sandbox.snapshot() == before, "--help changed something");
}

#[test]
fn without_a_terminal_it_asks_for_y() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();
    let mut command = sandbox.install_sh(&["--dist-server", &nginx.url()]);
    command.stdin(Stdio::null());
    // A session of its own has no controlling terminal, even when the tests run in one.
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() == -1 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let output = command.output().unwrap();
    assert_failure(
        &output,
        EXIT_USAGE,
        &["error: no terminal to ask for confirmation; run again with -y (e.g. `sh -s -- -y`)"],
        &sandbox,
        &before,
    );
}

#[test]
fn a_read_only_toolchain_is_refused_before_the_sysroot_is_downloaded() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();
    let rustlib = sandbox.rustlib();
    let args = ["-y", "--dist-server", &nginx.url()];
    let output = if unsafe { libc::geteuid() } == 0 {
        // Permissions do not stop root: a read-only bind mount, in a mount namespace of the
        // installer's own, does.
        let mut command = Command::new("unshare");
        sandbox.env(&mut command);
        command
            .args([
                "--mount",
                "sh",
                "-c",
                "mount --bind -o ro \"$0\" \"$0\" && exec \"$@\"",
            ])
            .arg(&rustlib)
            .arg("sh")
            .arg(stable_dist().join("install.sh"))
            .args(args)
            .output()
            .unwrap()
    } else {
        fs::set_permissions(&rustlib, fs::Permissions::from_mode(0o555)).unwrap();
        let output = sandbox.run(&args);
        fs::set_permissions(&rustlib, fs::Permissions::from_mode(0o755)).unwrap();
        output
    };
    assert_failure(
        &output,
        EXIT_TOOLCHAIN,
        &[&format!("error: cannot write to {} (", rustlib.display())],
        &sandbox,
        &before,
    );
    let log = nginx.access_log();
    assert!(
        !log.contains(".tar.gz"),
        "downloaded before checking: {log}"
    );
}

#[test]
fn a_missing_toolchain_is_named_with_the_fix() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    assert_install_fails(
        &[
            "-y",
            "--toolchain",
            "hyperlight-test-no-such-toolchain",
            "--dist-server",
            &nginx.url(),
        ],
        EXIT_TOOLCHAIN,
        &["install it with: rustup toolchain install hyperlight-test-no-such-toolchain"],
    );
}

#[test]
fn failing_writes_exit_8() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();
    // No directory can be made below a regular file, whoever runs the installer.
    let file = sandbox.dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let output = sandbox
        .install_sh(&["-y", "--dist-server", &nginx.url()])
        .env("TMPDIR", &file)
        .output()
        .unwrap();
    assert_failure(
        &output,
        EXIT_WRITE,
        &["error: cannot create a temporary directory (set TMPDIR to a writable one)"],
        &sandbox,
        &before,
    );

    // The runner's directory: checked before the toolchain is touched.
    let output = sandbox
        .install_sh(&["-y", "--dist-server", &nginx.url()])
        .env("CARGO_INSTALL_ROOT", &file)
        .output()
        .unwrap();
    let said = format!(
        "error: cannot write {}: Not a directory (os error 20); set CARGO_INSTALL_ROOT or \
         CARGO_HOME to a writable directory, or pass --no-runner",
        file.join("bin").display()
    );
    assert_failure(&output, EXIT_WRITE, &[&said], &sandbox, &before);
    assert_eq!(fs::read(&file).unwrap(), b"");
    assert!(fs::read_dir(sandbox.tmp()).unwrap().next().is_none());
}

/// Bytes received so far on the established TCP connections to `port` (from the kernel's
/// tcp_info, as `ss` shows it): a download in progress, seen from the client side.
fn bytes_received_from(port: u16) -> u64 {
    let output = Command::new("ss")
        .args([
            "-Htin",
            "state",
            "established",
            "dport",
            "=",
            &format!(":{port}"),
        ])
        .output()
        .unwrap();
    assert_success(&output, "ss");
    text(&output.stdout)
        .split_whitespace()
        .filter_map(|field| field.strip_prefix("bytes_received:")?.parse::<u64>().ok())
        .sum()
}

#[test]
fn install_killed_mid_download_leaves_the_previous_state() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    // The release's runner is installed: install.sh runs it without a download, and the
    // installer's own download is the one killed.
    sandbox.install_release_runner();
    let before = sandbox.snapshot();

    // /slow/ is throttled to 64 KiB/s: the sysroot tarball takes minutes.
    let slow = format!("{}/slow", nginx.url());
    let mut child = sandbox
        .install_sh(&["-y", "-q", "--dist-server", &slow])
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    let downloading = loop {
        // Well past the manifest (the only other download): tarball bytes.
        let received = bytes_received_from(nginx.port);
        if received > 512 * 1024 || Instant::now() > deadline {
            break received > 512 * 1024;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "install.sh ended early"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(downloading, "the download never started");
    let killed = Command::new("kill")
        .args(["-s", "KILL", "--", &format!("-{}", child.id())])
        .status()
        .unwrap();
    assert!(killed.success());
    child.wait().unwrap();
    assert!(
        sandbox.snapshot() == before,
        "a killed install changed the toolchain"
    );

    // The next run (fast server this time) installs.
    let output = sandbox.run(&["-y", "-q", "--dist-server", &nginx.url()]);
    assert_success(&output, "install.sh after a killed one");
    assert_installed(&sandbox, testkit::sysroot());
}

/// `dir/name`: links to every program on PATH except `left_out`, and the `extra` scripts.
fn path_without(dir: &Path, name: &str, left_out: &[&str], extra: &[(&str, &str)]) -> PathBuf {
    let bin = dir.join(name);
    fs::create_dir_all(&bin).unwrap();
    for (name, script) in extra {
        fs::write(bin.join(name), script).unwrap();
        fs::set_permissions(bin.join(name), fs::Permissions::from_mode(0o755)).unwrap();
    }
    for entry_dir in std::env::split_paths(&std::env::var_os("PATH").unwrap()) {
        let Ok(entries) = fs::read_dir(&entry_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if left_out.iter().any(|l| name == *l) || bin.join(&name).exists() {
                continue;
            }
            std::os::unix::fs::symlink(entry.path(), bin.join(&name)).unwrap();
        }
    }
    bin
}

#[test]
fn wget_is_forced_or_the_fallback_and_a_missing_downloader_exits_3() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    let path = |name: &str, left_out: &[&str], extra: &[(&str, &str)]| {
        path_without(sandbox.dir.path(), name, left_out, extra)
    };
    let run = |path: &Path, downloader: Option<&str>, server: &str| {
        let mut command = sandbox.install_sh(&["-y", "-q", "--no-runner"]);
        command
            .env("PATH", path)
            .env("HYPERLIGHT_DIST_SERVER", server);
        if let Some(downloader) = downloader {
            command.env("HYPERLIGHT_DOWNLOADER", downloader);
        }
        command.output().unwrap()
    };
    let url = nginx.url();
    let nothing = format!("{url}/nothing");

    let no_downloader = path("no-downloader", &["curl", "wget"], &[]);
    let output = run(&no_downloader, None, &url);
    let said = "error: this installer needs curl or wget; install one and run again";
    assert_failure(&output, EXIT_PLATFORM, &[said], &sandbox, &before);
    let output = run(&no_downloader, Some("curl"), &url);
    let said = "error: this installer needs 'curl'; install it with your package manager";
    assert_failure(&output, EXIT_PLATFORM, &[said], &sandbox, &before);

    // Without curl, wget: its HTTP errors are reported as curl's are.
    let no_curl = path("no-curl", &["curl"], &[]);
    let output = run(&no_curl, None, &nothing);
    let said = format!(
        "error: download of {nothing}/{} failed: HTTP 404 (not found)",
        runner_file(stable_dist())
    );
    assert_failure(&output, EXIT_DOWNLOAD, &[&said], &sandbox, &before);
    assert_success(&run(&no_curl, None, &url), "install.sh with wget only");
    assert_installed(&sandbox, testkit::sysroot());

    // HYPERLIGHT_DOWNLOADER=wget: a curl that fails shows it is not used.
    let output = sandbox.run(&[
        "-y",
        "-q",
        "--uninstall",
        "--no-runner",
        "--dist-server",
        &url,
    ]);
    assert_success(&output, "install.sh --uninstall");
    let failing_curl = path(
        "failing-curl",
        &["curl"],
        &[("curl", "#!/bin/sh\nexit 99\n")],
    );
    assert_success(
        &run(&failing_curl, Some("wget"), &url),
        "install.sh with HYPERLIGHT_DOWNLOADER=wget",
    );
    assert_installed(&sandbox, testkit::sysroot());
}

#[test]
fn other_platforms_are_refused_before_anything_is_touched() {
    let sandbox = Sandbox::new(&pinned_toolchain());
    let before = sandbox.snapshot();
    for (os, arch, message) in [
        (
            "Darwin",
            "arm64",
            "Hyperlight guests run on KVM, so only x86-64 Linux is supported (this is Darwin \
             arm64)",
        ),
        (
            "Linux",
            "aarch64",
            "only x86-64 Linux is supported (this is Linux aarch64)",
        ),
    ] {
        // A `uname` of another machine first on PATH.
        let script = format!(
            "#!/bin/sh\ncase \"$1\" in -s) echo {os} ;; -m) echo {arch} ;; *) echo {os} ;; esac\n"
        );
        let name = format!("uname-{os}-{arch}");
        let path = path_without(sandbox.dir.path(), &name, &["uname"], &[("uname", &script)]);
        let output = sandbox
            .install_sh(&["-y", "--dist-server", &refusing_url()])
            .env("PATH", path)
            .output()
            .unwrap();
        assert_failure(&output, EXIT_PLATFORM, &[message], &sandbox, &before);
    }
}
