//! What the self-healing build costs: the first `cargo build` of a guest after its toolchain
//! changed (the wrapper installs the target first: prebuilt from a local nginx, or built
//! locally from the sources the previous install left behind), against the same cold build
//! with the target already in place. Runs on a temporary copy of the pinned toolchain.

use std::path::Path;

use anyhow::{bail, Result};
use xshell::Shell;

use super::{median_time, Report};
use crate::sysroot;
use crate::toolchain::{project_root, Toolchain, TARGET};

const RUNS: usize = 3;

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Builds after a toolchain update");
    let toolchain = Toolchain::resolve(None)?;
    let scratch = project_root().join("target/bench/heal");
    if scratch.exists() {
        sh.remove_path(&scratch)?;
    }
    let built = sysroot::default_out(&toolchain);
    sysroot::build(sh, &toolchain, &built)?;
    let (dist, nginx) = super::dist::serve_dist(sh, &built, &scratch)?;
    let manifest = hyperlight_install::manifest::Manifest::parse(
        &std::fs::read(dist.join(hyperlight_install::manifest::MANIFEST))?,
        "manifest.json",
    )?;
    let runner = dist.join(&manifest.runner.expect("dist builds the runner").url);

    let machine = Machine::new(&scratch.join("machine"), &toolchain, &runner)?;
    let target_dir = machine.toolchain.sysroot().join("lib/rustlib").join(TARGET);
    let installed = built.join("lib/rustlib").join(TARGET);
    // The same cold build, three ways: target in place; missing, fetched from nginx; stale,
    // rebuilt from the sources left behind with the dist server unreachable.
    let case = |server: &str, before: &dyn Fn() -> Result<()>| {
        machine.set_dist_server(server)?;
        median_time(RUNS, || {
            before()?;
            machine.cold_build()
        })
    };
    let in_place = case(&nginx.url(), &|| copy_target(&installed, &target_dir))?;
    let fetched = case(&nginx.url(), &|| remove(&target_dir))?;
    let rebuilt = case("http://127.0.0.1:9", &|| {
        copy_target(&installed, &target_dir)?;
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
         rustc-wrapper, on a temporary copy of {} with the release's hyperlight-run; the target is \
         reinstalled before each one as described.",
        toolchain.name
    ));
    sh.remove_path(&scratch)?;
    Ok(())
}

/// A temporary toolchain copy, CARGO_HOME with the release's runner, and a hello guest.
struct Machine {
    toolchain: testkit::TempToolchain,
    home: std::path::PathBuf,
}

impl Machine {
    fn new(home: &Path, toolchain: &Toolchain, runner: &Path) -> Result<Machine> {
        let machine = Machine {
            toolchain: testkit::TempToolchain::copy_of(&toolchain.name, true),
            home: home.to_owned(),
        };
        let bin = machine.cargo_home().join("bin");
        std::fs::create_dir_all(&bin)?;
        std::fs::copy(runner, bin.join("hyperlight-run"))?;
        testkit::write_hello_guest(&home.join("guest"));
        Ok(machine)
    }

    /// The toolchain's own temporary cargo home (it shares the developer's download caches).
    fn cargo_home(&self) -> &Path {
        self.toolchain.cargo_home()
    }

    fn set_dist_server(&self, server: &str) -> Result<()> {
        let settings = self.cargo_home().join("hyperlight/settings.toml");
        std::fs::create_dir_all(settings.parent().unwrap())?;
        std::fs::write(settings, format!("dist-server = \"{server}\"\n"))?;
        Ok(())
    }

    fn cold_build(&self) -> Result<()> {
        let target = self.home.join("guest/target");
        if target.exists() {
            std::fs::remove_dir_all(&target)?;
        }
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.cargo_home().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let output = self
            .toolchain
            .command("cargo")
            .arg("build")
            .current_dir(self.home.join("guest"))
            .env("PATH", std::env::join_paths(dirs)?)
            .env("TMPDIR", &self.home)
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_BOOTSTRAP")
            .env_remove("HYPERLIGHT_DIST_SERVER")
            .output()?;
        if !output.status.success() {
            bail!(
                "cargo build of the guest failed: {}",
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
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
