//! The installer under concurrent and interrupted runs: two installs into one toolchain at once
//! end as one correct install (the transaction holds a lock on the toolchain's `lib/rustlib`),
//! and each state a killed install can leave behind (a half-staged tree, the previous tree
//! moved aside, the new tree swapped in with stale records) is completed or undone by the next
//! run. A kill during the download is covered by install_sh.rs
//! (`install_killed_mid_download_leaves_the_previous_state`), hostile archives by
//! install_sh_archive_mutations.rs.

mod support;

use std::fs;
use std::process::{Output, Stdio};

use support::{
    assert_installed, runner_file, serve_copy, server, stable_dist, text, Sandbox, COMPONENT,
};
use testkit::{assert_success, pinned_toolchain, TARGET};

#[test]
fn concurrent_installs_into_one_toolchain_end_as_one_install() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    let spawn = || {
        sandbox
            .install_sh(&["-y", "--dist-server", &nginx.url()])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs: Vec<Output> = [first, second]
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        assert_success(output, "a concurrent install.sh");
    }
    // Each run reports an install or finds the other's: never a half-done one.
    for output in &outputs {
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains(&format!("info: installed {TARGET} into"))
                || stderr.contains("is already installed in"),
            "{stderr}"
        );
    }
    assert_installed(&sandbox, testkit::sysroot());
    assert_eq!(
        fs::read(sandbox.runner()).unwrap(),
        fs::read(stable_dist().join(runner_file(stable_dist()))).unwrap()
    );
    let mut bin: Vec<_> = fs::read_dir(sandbox.install_root().join("bin"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    bin.sort();
    assert_eq!(bin, ["hyperlight-cc", "hyperlight-run"]);
}

#[test]
fn what_a_killed_install_leaves_is_completed_or_undone_by_the_next_run() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    let rustlib = sandbox.rustlib();
    let target = rustlib.join(TARGET);
    let staged = rustlib.join(format!(".{TARGET}.new"));
    let previous = rustlib.join(format!(".{TARGET}.old"));
    let install = || {
        let output = sandbox.run(&["-y", "-q", "--no-runner", "--dist-server", &nginx.url()]);
        assert_success(&output, "install.sh");
        assert_installed(&sandbox, testkit::sysroot());
    };

    // Killed while staging, with an older install in place.
    sandbox.fake_previous_install();
    fs::create_dir_all(staged.join("lib")).unwrap();
    fs::write(staged.join("lib/libcore-half.rlib"), "half").unwrap();
    install();

    // Killed after the swap: the new tree is complete, the previous one still beside it and
    // the records are the previous install's.
    testkit::copy_tree(&target, &previous);
    let record = rustlib.join(format!("manifest-{COMPONENT}"));
    support::replace_file(
        &record,
        format!("file:lib/rustlib/{TARGET}/target.json\n").as_bytes(),
    );
    install();

    // Killed between the two renames: the previous tree moved aside, none in place.
    fs::rename(&target, &previous).unwrap();
    install();
}
