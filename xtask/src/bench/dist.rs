//! The distribution's figures: how big each no_std target's sysroot component is next to
//! rustup's own rust-std for the built-in target it is based on (same toolchain, re-packed the
//! same way at the same gzip level), and how long `install.sh` takes to install from a local
//! nginx.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};
use hyperlight_install::Target;
use xshell::Shell;

use super::{median_time, Report};
use crate::dist::component::{self, Tarball, GZIP_LEVEL};
use crate::sysroot;
use crate::toolchain::{project_root, Toolchain};
use hyperlight_install::manifest::MANIFEST;
use testkit::nginx::Nginx;

const SIZE_GOAL: f64 = 1.05;
const INSTALL_RUNS: usize = 3;
/// Our no_std targets and the built-in target each is based on.
const BASELINES: [(Target, &str); 2] = [
    (Target::None, "x86_64-unknown-none"),
    (Target::Aarch64, "aarch64-unknown-none"),
];

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Distribution");
    let toolchain = Toolchain::resolve(None)?;
    let scratch = project_root().join("target/bench/dist");
    if scratch.exists() {
        sh.remove_path(&scratch)?;
    }
    let built = sysroot::default_out(&toolchain);
    let mut sizes = Vec::new();
    for (target, builtin) in BASELINES {
        sysroot::build(sh, &toolchain, target, &built)?;
        sizes.push(measure_size(
            sh, report, &toolchain, &built, &scratch, target, builtin,
        )?);
    }
    report.note(&format!(
        "Both tarballs of each pair are written by the same code (rust-installer layout, sorted \
         entries, gzip level {GZIP_LEVEL} via flate2); rustup's rust-std is taken from the \
         toolchain's lib/rustlib/<target>. Ours hold picolibc's prebuilt objects and headers."
    ));
    measure_install(sh, report, &toolchain, &built, &scratch, sizes[0])
}

/// `target`'s component size against rustup's rust-std for `builtin`, packed alike; returns
/// ours, packed and unpacked.
fn measure_size(
    sh: &Shell,
    report: &mut Report,
    toolchain: &Toolchain,
    built: &Path,
    scratch: &Path,
    target: Target,
    builtin: &str,
) -> Result<(u64, u64)> {
    let sizes = scratch.join("sizes");
    sh.create_dir(&sizes)?;
    let ours = component::sysroot_tarball(built, &toolchain.version, target, &sizes)?;
    let ours_unpacked = dir_size(&target.dir(built))?;
    report.row(
        &format!(
            "{target} sysroot component tar.gz ({})",
            toolchain.version.release
        ),
        format!(
            "{:.1} MB ({:.1} MB unpacked)",
            mb(ours.size),
            mb(ours_unpacked)
        ),
        "",
        None,
    );
    let builtin_dir = toolchain.sysroot.join("lib/rustlib").join(builtin);
    if !builtin_dir.is_dir() {
        report.row(
            &format!("size ratio ({target} / {builtin})"),
            format!(
                "not measured: rustup's {builtin} is not installed (`rustup target add {builtin} \
                 --toolchain {}`)",
                toolchain.name
            ),
            &format!("≤ {SIZE_GOAL}×"),
            None,
        );
        return Ok((ours.size, ours_unpacked));
    }
    let builtin_size = repack_rust_std(&toolchain.sysroot, builtin)?;
    let builtin_unpacked = dir_size(&builtin_dir)?;
    let ratio = ours.size as f64 / builtin_size as f64;
    report.row(
        &format!("rustup's rust-std {builtin}, re-packed alike"),
        format!(
            "{:.1} MB ({:.1} MB unpacked)",
            mb(builtin_size),
            mb(builtin_unpacked)
        ),
        "",
        None,
    );
    report.row(
        &format!("size ratio ({target} / {builtin})"),
        format!("{ratio:.2}×"),
        &format!("≤ {SIZE_GOAL}×"),
        Some(ratio <= SIZE_GOAL),
    );
    Ok((ours.size, ours_unpacked))
}

/// A full install.sh run from a local nginx into a scratch sysroot, then a second one.
fn measure_install(
    sh: &Shell,
    report: &mut Report,
    toolchain: &Toolchain,
    built: &Path,
    scratch: &Path,
    (packed, unpacked): (u64, u64),
) -> Result<()> {
    let (dist, nginx) = serve_dist(sh, built, scratch)?;
    let mut run = 0;
    let mut last = None;
    let install = median_time(INSTALL_RUNS, || {
        run += 1;
        let fake = FakeToolchain::new(&scratch.join(format!("install-{run}")), toolchain)?;
        fake.install_sh(&dist, &nginx.url())?;
        last = Some(fake);
        Ok(())
    })?;
    let fake = last.expect("median_time runs at least once");
    let again = median_time(INSTALL_RUNS, || fake.install_sh(&dist, &nginx.url()))?;
    report.row(
        "`sh install.sh -y` from a local nginx (sysroot + runner, median)",
        format!("{:.2} s", install.as_secs_f64()),
        "none",
        None,
    );
    report.row(
        "second run, already installed (median)",
        format!("{:.2} s", again.as_secs_f64()),
        "none",
        None,
    );
    report.note(&format!(
        "Median of {INSTALL_RUNS} installs into fresh scratch sysroots (a `rustc` shim answering \
         `--print sysroot`), downloading {:.1} MB over loopback, verifying every sha256, \
         unpacking and swapping in. A second run downloads only the manifest and its signature, \
         and hashes the installed files ({:.1} MB) to compare them with the manifest's \
         installed-sha256, about half of its time.",
        mb(packed),
        mb(unpacked)
    ));
    Ok(())
}

/// A release of the sysroot `built` (`cargo xtask dist` into `scratch/dist`), served by a local
/// nginx.
pub fn serve_dist(sh: &Shell, built: &Path, scratch: &Path) -> Result<(PathBuf, Nginx)> {
    let dist = scratch.join("dist");
    crate::dist::run(
        sh,
        crate::dist::DistOptions {
            sysroots: vec![built.to_owned()],
            targets: vec![Target::None],
            out: Some(dist.clone()),
            ..Default::default()
        },
    )?;
    let nginx = Nginx::start(&scratch.join("nginx"))?;
    for entry in std::fs::read_dir(&dist)? {
        let path = entry?.path();
        std::fs::copy(&path, nginx.www().join(path.file_name().unwrap()))?;
    }
    if !nginx.www().join(MANIFEST).is_file() {
        bail!("dist wrote no {MANIFEST}");
    }
    Ok((dist, nginx))
}

pub(super) fn mb(bytes: u64) -> f64 {
    bytes as f64 / 1e6
}

pub(super) fn dir_size(dir: &Path) -> Result<u64> {
    let mut total = 0;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        total += if entry.file_type()?.is_dir() {
            dir_size(&entry.path())?
        } else {
            entry.metadata()?.len()
        };
    }
    Ok(total)
}

/// rustup's rust-std for `target`, re-packed as our component is; returns the tarball size.
pub(super) fn repack_rust_std(sysroot: &Path, target: &str) -> Result<u64> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeMap<String, PathBuf>) -> Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                walk(&path, root, out)?;
            } else {
                out.insert(path.strip_prefix(root)?.display().to_string(), path);
            }
        }
        Ok(())
    }
    let mut files = BTreeMap::new();
    walk(
        &sysroot.join("lib/rustlib").join(target),
        sysroot,
        &mut files,
    )?;
    let component = format!("rust-std-{target}");
    let mut tarball = Tarball::default();
    tarball.add("components", format!("{component}\n").into_bytes(), false);
    tarball.add("rust-installer-version", b"3\n".to_vec(), false);
    let manifest_in: String = files.keys().map(|p| format!("file:{p}\n")).collect();
    tarball.add(
        &format!("{component}/manifest.in"),
        manifest_in.into_bytes(),
        false,
    );
    for (relative, path) in files {
        tarball.add(
            &format!("{component}/{relative}"),
            std::fs::read(path)?,
            false,
        );
    }
    Ok(tarball.to_tar_gz(&format!("{component}-bench"))?.len() as u64)
}

/// A scratch sysroot and a `rustc` shim pointing at it, so the installer never touches a real
/// toolchain.
struct FakeToolchain {
    dir: PathBuf,
}

impl FakeToolchain {
    fn new(dir: &Path, toolchain: &Toolchain) -> Result<FakeToolchain> {
        let sysroot = dir.join("sysroot");
        std::fs::create_dir_all(sysroot.join("lib/rustlib"))?;
        std::fs::create_dir_all(dir.join("tmp"))?;
        let real = toolchain.sysroot.join("bin/rustc");
        let shim = dir.join("rustc");
        std::fs::write(
            &shim,
            format!(
                "#!/bin/sh\nif [ \"$*\" = \"--print sysroot\" ]; then echo '{}'; exit 0; fi\nexec '{}' \"$@\"\n",
                sysroot.display(),
                real.display()
            ),
        )?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&shim, std::fs::Permissions::from_mode(0o755))?;
        Ok(FakeToolchain {
            dir: dir.to_owned(),
        })
    }

    /// Runs the install.sh that `dist` wrote (the repository's is a template).
    fn install_sh(&self, dist: &Path, server: &str) -> Result<()> {
        let output = Command::new("sh")
            .arg(dist.join("install.sh"))
            .args(["-y", "-q", "--dist-server", server])
            .env("RUSTC", self.dir.join("rustc"))
            .env("CARGO_HOME", self.dir.join("cargo"))
            .env("CARGO_INSTALL_ROOT", self.dir.join("cargo"))
            .env("TMPDIR", self.dir.join("tmp"))
            .env_remove("HYPERLIGHT_DIST_SERVER")
            .output()
            .context("running install.sh")?;
        if !output.status.success() {
            bail!(
                "install.sh failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            );
        }
        Ok(())
    }
}
