//! `hyperlight-run target add|list|remove`, rustup's `target` commands for this target, run
//! as the release's own binary (the stable dist's musl `hyperlight-run`) on a temporary
//! toolchain, against a real nginx serving the stable dist.

mod support;

use std::fs;
use std::process::{Command, Output};

use support::{assert_failure, serve_copy, server, stable_dist, text, Sandbox, COMPONENT};
use testkit::{assert_success, pinned_toolchain, rustc_field, TARGET};

/// How messages name a compiler: `1.95.0 (59807616e 2026-04-14)`.
fn named(toolchain: &str) -> String {
    let field = |key| rustc_field(toolchain, key);
    format!(
        "{} ({} {})",
        field("release"),
        &field("commit-hash")[..9],
        field("commit-date")
    )
}

/// `target list`'s expected output: every toolchain of the sandbox's rustup home, ours with
/// `ours`, the others not installed.
fn listing(sandbox: &Sandbox, ours: &str) -> String {
    let mut names: Vec<String> = fs::read_dir(sandbox.toolchain.rustup_home().join("toolchains"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let width = names.iter().map(String::len).max().unwrap();
    names
        .iter()
        .map(|name| {
            let status = if *name == sandbox.toolchain.name {
                ours
            } else {
                "not installed"
            };
            format!("{name:width$}  {status}\n")
        })
        .collect()
}

fn assert_said(output: &Output, what: &str, said: &str) {
    assert_success(output, what);
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(said),
        "{what}: stderr lacks {said:?}:\n{stderr}"
    );
}

#[test]
fn target_add_list_and_remove() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let url = nginx.url();
    let sandbox = Sandbox::new(&pinned_toolchain());
    let name = sandbox.toolchain.name.clone();
    let sysroot = sandbox.toolchain.sysroot();
    let run = |args: &[&str]| sandbox.hyperlight_run(args).output().unwrap();
    let before = sandbox.snapshot();

    let list = run(&["target", "list"]);
    assert_success(&list, "target list");
    assert_eq!(text(&list.stdout), listing(&sandbox, "not installed"));

    // Missing toolchains, and a TMPDIR that cannot hold the download, change nothing.
    for args in [
        vec![
            "target",
            "add",
            "--toolchain",
            "hyperlight-test-no-such-toolchain",
        ],
        vec![
            "target",
            "remove",
            "--toolchain",
            "hyperlight-test-no-such-toolchain",
        ],
    ] {
        let output = run(&args);
        let said = "install it with: rustup toolchain install hyperlight-test-no-such-toolchain";
        assert_failure(&output, 4, &[said], &sandbox, &before);
    }
    let file = sandbox.dir.path().join("a-file");
    fs::write(&file, "").unwrap();
    let output = sandbox
        .hyperlight_run(&["target", "add", "--toolchain", &name, "--dist-server", &url])
        .env("TMPDIR", &file)
        .output()
        .unwrap();
    let said = "set TMPDIR to a writable directory";
    assert_failure(&output, 8, &[said], &sandbox, &before);

    let add = ["target", "add", "--toolchain", &name, "--dist-server", &url];
    let target_dir = sysroot.join("lib/rustlib").join(TARGET);
    let said = format!("info: installed {TARGET} into {}\n", target_dir.display());
    assert_said(&run(&add), "target add", &said);
    let record = fs::read_to_string(sandbox.rustlib().join(format!("manifest-{COMPONENT}")));
    let expected: String = support::sysroot_files()
        .iter()
        .map(|f| format!("file:{f}\n"))
        .collect();
    assert_eq!(record.unwrap(), expected);
    assert!(
        !sandbox.runner().exists(),
        "target add installed the runner"
    );
    let settings = sandbox.cargo_home().join("hyperlight/settings.toml");
    assert_eq!(
        fs::read_to_string(&settings).unwrap(),
        format!("dist-server = \"{url}\"\n")
    );
    let said = format!(
        "info: {TARGET} for rustc {} is already installed in {}\n",
        rustc_field(&pinned_toolchain(), "release"),
        sysroot.display()
    );
    assert_said(&run(&add), "target add, again", &said);

    let list = run(&["target", "list"]);
    assert_success(&list, "target list");
    let ours = format!("installed (rustc {})", named(&pinned_toolchain()));
    assert_eq!(text(&list.stdout), listing(&sandbox, &ours));

    // Built by another rustc, as after `rustup update`.
    let nightly = Command::new("rustc").args(["+nightly", "-vV"]).output();
    let nightly = nightly.unwrap();
    assert_success(&nightly, "rustc +nightly -vV");
    support::replace_file(&target_dir.join("rustc-version"), &nightly.stdout);
    let list = run(&["target", "list"]);
    assert_success(&list, "target list");
    let stale = format!(
        "installed for rustc {}, not this toolchain's rustc {}: the next guest build \
         reinstalls it, or run `hyperlight-run target add --toolchain {name}`",
        named("nightly"),
        named(&pinned_toolchain())
    );
    assert_eq!(text(&list.stdout), listing(&sandbox, &stale));

    let remove = ["target", "remove", "--toolchain", &name];
    let said = format!("info: removed {TARGET} from {}\n", sysroot.display());
    assert_said(&run(&remove), "target remove", &said);
    let mut after = sandbox.snapshot();
    after.retain(|path, _| !path.starts_with("cargo-home"));
    assert!(
        after == before,
        "target remove did not restore the toolchain"
    );
    let said = format!("info: {TARGET} is not installed in {}\n", sysroot.display());
    assert_said(&run(&remove), "target remove, again", &said);

    // Without --dist-server, the server of the last install.
    let requests_before = nginx.access_log().lines().count();
    let said = format!("info: installed {TARGET} into {}\n", target_dir.display());
    let add = ["target", "add", "--toolchain", &name];
    assert_said(&run(&add), "target add from the recorded server", &said);
    let log = nginx.access_log();
    let requests: Vec<&str> = log.lines().skip(requests_before).collect();
    assert!(
        requests
            .iter()
            .any(|r| r.starts_with("GET /manifest.json 200")),
        "{requests:?}"
    );
}
