//! What the self-healing build costs: the first `cargo build` of a guest after its toolchain
//! changed (the wrapper installs the target first: prebuilt from a local nginx, or built
//! locally from the sources the previous install left behind), against the same cold build
//! with the target already in place. Runs on a temporary copy of the pinned toolchain.

use std::path::Path;
use std::process::Command;

use anyhow::{bail, Result};
use hyperlight_install::Target;
use testkit::UserMachine;
use xshell::Shell;

use super::{median, median_time, time_process, Report};
use crate::sysroot;
use crate::toolchain::{project_root, Toolchain, TARGET};

const RUNS: usize = 3;
const CALL_RUNS: usize = 200;
/// What a build that needs nothing may pay per rustc call for the self-healing check.
const CALL_GOAL_MS: f64 = 1.0;

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Builds after a toolchain update");
    let toolchain = Toolchain::resolve(None)?;
    let scratch = project_root().join("target/bench/heal");
    if scratch.exists() {
        sh.remove_path(&scratch)?;
    }
    let built = sysroot::default_out(&toolchain);
    sysroot::build(sh, &toolchain, Target::None, &built)?;
    let (dist, nginx) = super::dist::serve_dist(sh, &built, &scratch)?;
    let manifest = hyperlight_install::manifest::Manifest::parse(
        &std::fs::read(dist.join(hyperlight_install::manifest::MANIFEST))?,
        "manifest.json",
    )?;
    let runner = dist.join(&manifest.runner.expect("dist builds the runner").url);
    let machine = UserMachine::new(&toolchain.name, &runner, &nginx.url());
    let installed = built.join("lib/rustlib").join(TARGET);
    measure_builds(report, &machine, &installed, &nginx.url(), &toolchain.name)?;
    measure_calls(report, &machine, &installed)?;
    sh.remove_path(&scratch)?;
    Ok(())
}

/// The same cold build, three ways: target in place; missing, fetched from `server`; stale,
/// rebuilt from the sources left behind with the dist server unreachable.
fn measure_builds(
    report: &mut Report,
    machine: &UserMachine,
    installed: &Path,
    server: &str,
    toolchain: &str,
) -> Result<()> {
    let target_dir = machine.target_dir();
    let case = |server: &str, before: &dyn Fn() -> Result<()>| {
        machine.set_dist_server(server);
        median_time(RUNS, || {
            before()?;
            cold_build(machine)
        })
    };
    let in_place = case(server, &|| copy_target(installed, &target_dir))?;
    let fetched = case(server, &|| remove(&target_dir))?;
    let rebuilt = case("http://127.0.0.1:9", &|| {
        copy_target(installed, &target_dir)?;
        // What `rustup update` leaves: the previous compiler's record.
        std::fs::write(target_dir.join("rustc-version"), "release: 0.0.0\n")?;
        Ok(())
    })?;
    let secs = |d: std::time::Duration| d.as_secs_f64();
    for (what, time) in [
        (
            "first `cargo build` after an update, prebuilt fetched from a local nginx",
            fetched,
        ),
        (
            "first `cargo build` after an update, built locally (dist server unreachable)",
            rebuilt,
        ),
    ] {
        report.row(
            what,
            format!(
                "{:.1} s ({:.1}× the same cold build with the target in place, {:.1} s)",
                secs(time),
                secs(time) / secs(in_place),
                secs(in_place)
            ),
            "none",
            None,
        );
    }
    report.note(&format!(
        "Median of {RUNS} cold debug builds of the hello guest through the guest config's \
         rustc-wrapper, on a temporary copy of {toolchain} with the release's hyperlight-run; the \
         target is reinstalled before each one as described."
    ));
    Ok(())
}

/// What every rustc call of a build that needs nothing pays for the wrapper.
fn measure_calls(report: &mut Report, machine: &UserMachine, installed: &Path) -> Result<()> {
    copy_target(installed, &machine.target_dir())?;
    let rustc = machine.toolchain.sysroot().join("bin/rustc");
    let wrapper = machine.cargo_home().join("bin/hyperlight-run");
    for (what, args) in [
        ("`rustc -vV`, the target checked", &["-vV"][..]),
        (
            "a call for the target (`rustc --target x86_64-hyperlight-none --print cfg`), its \
             presence checked, exec'd",
            &["--target", TARGET, "-Zunstable-options", "--print", "cfg"][..],
        ),
        (
            "any other rustc call (`rustc --version`), exec'd",
            &["--version"][..],
        ),
    ] {
        let (mut direct, mut wrapped) = (Vec::new(), Vec::new());
        for _ in 0..CALL_RUNS {
            let mut plain = Command::new(&rustc);
            let mut through = Command::new(&wrapper);
            through.arg(&rustc);
            for command in [&mut plain, &mut through] {
                command.args(args).env("RUSTC_BOOTSTRAP", "1");
            }
            direct.push(time_process(&mut plain)?);
            wrapped.push(time_process(&mut through)?);
        }
        let (direct, wrapped) = (median(direct), median(wrapped));
        let overhead_ms = (wrapped.as_secs_f64() - direct.as_secs_f64()) * 1e3;
        report.row(
            &format!("wrapper cost per rustc call, target in place: {what}"),
            format!(
                "{overhead_ms:+.2} ms ({:.2} ms through hyperlight-run / {:.2} ms direct)",
                wrapped.as_secs_f64() * 1e3,
                direct.as_secs_f64() * 1e3
            ),
            &format!("≤ {CALL_GOAL_MS} ms"),
            Some(overhead_ms <= CALL_GOAL_MS),
        );
    }
    report.note(&format!(
        "Per call: median of {CALL_RUNS} alternating runs of the toolchain's own rustc, directly \
         and through hyperlight-run as cargo runs its rustc-wrapper, whole process."
    ));
    Ok(())
}

/// A cold `cargo build` of the machine's guest.
fn cold_build(machine: &UserMachine) -> Result<()> {
    remove(&machine.project().join("target"))?;
    let output = machine.command("cargo").arg("build").output()?;
    if !output.status.success() {
        bail!(
            "cargo build of the guest failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

fn remove(dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir)?;
    }
    Ok(())
}

fn copy_target(from: &Path, to: &Path) -> Result<()> {
    remove(to)?;
    hyperlight_install::build::copy_tree(from, to)
}
