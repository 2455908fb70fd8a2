//! `hyperlight-run` as the guest config's `rustc-wrapper`: cargo runs every rustc of a guest
//! project as `hyperlight-run <rustc> <args>`.
//!
//! Each cargo invocation with a new or changed rustc starts with `rustc -vV`. There the wrapper
//! checks that every target the toolchain has was built by exactly that rustc, and reinstalls
//! those that were not (after `rustup update`). A call for one of the targets (`--target NAME`)
//! that the toolchain does not have at all (a fresh toolchain, a new rust-toolchain.toml)
//! installs it first. Installing takes the prebuilt sysroot from the dist server of the last
//! install, else builds it on this machine from an installed copy's sources. Cargo keeps what
//! these calls print to itself, and replays what a compilation printed whenever that unit is
//! fresh, so the one line saying what happened goes straight to cargo's own stderr. Every call
//! is then handed to rustc with `exec`, costing this process's start and, for the targets' own
//! calls, one `stat`.

use std::ffi::OsString;
use std::fs;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use hyperlight_install::add::{self, Installed, Release};
use hyperlight_install::error::InstallError;
use hyperlight_install::rustc::RustcVersion;
use hyperlight_install::settings;
use hyperlight_install::toolchain::{Selector, Toolchain};
use hyperlight_install::ui::Ui;
use hyperlight_install::{runner, Target};

/// The compilers cargo puts first when it runs rustc through a wrapper (clippy's driver comes
/// before rustc under `cargo clippy`).
const COMPILERS: &[&str] = &["rustc", "clippy-driver"];

/// Whether `hyperlight-run` was started as a rustc wrapper: its first argument is a compiler.
pub fn is_wrapper_call(first: &Path) -> bool {
    first
        .file_name()
        .and_then(|name| name.to_str())
        .is_some_and(|name| COMPILERS.contains(&name))
}

pub fn main(args: Vec<OsString>) -> i32 {
    let (program, rest) = args.split_first().expect("a compiler argument");
    let rustc = args
        .iter()
        .map(PathBuf::from)
        .find(|arg| arg.file_name().is_some_and(|name| name == "rustc"))
        .unwrap_or_else(|| PathBuf::from(program));
    if rest.len() == 1 && rest[0] == "-vV" {
        return version_query(program, rest, &rustc);
    }
    if let Some(target) = target_of(rest) {
        if let Err(code) = install_if_missing(program, &rustc, target) {
            return code;
        }
    }
    let err = Command::new(program).args(rest).exec();
    let _ = writeln!(
        std::io::stderr(),
        "hyperlight-run: error: cannot run {}: {err}",
        Path::new(program).display()
    );
    127
}

/// The target of ours a rustc call compiles for (`--target NAME` or `--target=NAME`).
fn target_of(args: &[OsString]) -> Option<Target> {
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        let name = if arg == "--target" {
            args.next()?.to_str()?
        } else {
            match arg.to_str().and_then(|arg| arg.strip_prefix("--target=")) {
                Some(name) => name,
                None => continue,
            }
        };
        return Target::from_name(name);
    }
    None
}

/// Installs `target` before a call for it when the toolchain does not have it at all;
/// `Err` holds the exit code of a failed install.
fn install_if_missing(program: &OsString, rustc: &Path, target: Target) -> Result<(), i32> {
    if uses_own_sysroot() {
        return Ok(());
    }
    // A rustc outside a toolchain directory is left to the `-vV` check.
    let Some(sysroot) = sysroot_of(rustc) else {
        return Ok(());
    };
    if recorded_version(&sysroot, target).exists() {
        return Ok(());
    }
    let output = Command::new(program).arg("-vV").output();
    let Some(version) = output
        .ok()
        .filter(|output| output.status.success())
        .and_then(|output| RustcVersion::parse(&String::from_utf8_lossy(&output.stdout)).ok())
    else {
        // rustc itself will say what is wrong with it.
        return Ok(());
    };
    ensure_target(rustc, &sysroot, version, target).map_err(|err| report_failure(target, &err))
}

fn recorded_version(sysroot: &Path, target: Target) -> PathBuf {
    target.dir(sysroot).join("rustc-version")
}

/// Says that installing `target` failed and how to fix it; returns the exit code.
fn report_failure(target: Target, err: &InstallError) -> i32 {
    let add = crate::target::add_command(target);
    let _ = writeln!(
        std::io::stderr(),
        "hyperlight-run: error: {target} is not installed for this toolchain and installing it \
         failed: {err}\n       fix: run `{add}` in this project (it says what is missing), or \
         install from a release"
    );
    err.exit_code().max(1)
}

/// Runs `rustc -vV` for cargo, then makes sure the targets the toolchain has fit that rustc.
fn version_query(program: &OsString, rest: &[OsString], rustc: &Path) -> i32 {
    let output = match Command::new(program).args(rest).output() {
        Ok(output) => output,
        Err(err) => {
            let _ = writeln!(
                std::io::stderr(),
                "hyperlight-run: error: cannot run {}: {err}",
                Path::new(program).display()
            );
            return 127;
        }
    };
    let _ = std::io::stderr().write_all(&output.stderr);
    if output.status.success() && !uses_own_sysroot() {
        let verbose = String::from_utf8_lossy(&output.stdout);
        if let Ok(version) = RustcVersion::parse(&verbose) {
            if let Err((target, err)) = heal_installed(rustc, version) {
                return report_failure(target, &err);
            }
        }
    }
    let _ = std::io::stdout().write_all(&output.stdout);
    output.status.code().unwrap_or(1)
}

/// A build that passes its own `--sysroot` (the project's test fixtures do) does not use the
/// toolchain's target, so the toolchain is left alone.
fn uses_own_sysroot() -> bool {
    ["RUSTFLAGS", "CARGO_ENCODED_RUSTFLAGS"]
        .iter()
        .filter_map(std::env::var_os)
        .any(|flags| flags.to_string_lossy().contains("--sysroot"))
}

/// The sysroot of a toolchain's `bin/rustc`, without running it.
fn sysroot_of(rustc: &Path) -> Option<PathBuf> {
    let rustc = rustc.canonicalize().ok()?;
    let sysroot = rustc.parent()?.parent()?.to_path_buf();
    sysroot.join("lib/rustlib").is_dir().then_some(sysroot)
}

/// Reinstalls each target the toolchain of `rustc` has that another rustc built.
fn heal_installed(rustc: &Path, version: RustcVersion) -> Result<(), (Target, InstallError)> {
    let sysroot = match sysroot_of(rustc) {
        Some(sysroot) => sysroot,
        None => {
            let toolchain = Toolchain::find(Selector::Rustc(rustc.to_owned()));
            toolchain.map_err(|err| (Target::None, err.into()))?.sysroot
        }
    };
    for target in installed_targets(&sysroot) {
        ensure_target(rustc, &sysroot, version.clone(), target).map_err(|err| (target, err))?;
    }
    Ok(())
}

/// The targets whose directory `sysroot` has, maybe built by another rustc.
fn installed_targets(sysroot: &Path) -> Vec<Target> {
    Target::ALL
        .into_iter()
        .filter(|target| target.dir(sysroot).exists())
        .collect()
}

/// Makes sure `target` in `sysroot`, the toolchain of `rustc`, was built by exactly `version`.
fn ensure_target(
    rustc: &Path,
    sysroot: &Path,
    version: RustcVersion,
    target: Target,
) -> Result<(), InstallError> {
    let recorded = recorded_version(sysroot, target);
    if fs::read_to_string(&recorded).is_ok_and(|built_by| built_by == version.verbose) {
        return Ok(());
    }
    // Builds running side by side wait here, and all but the first find the work done.
    let _lock = lock(&sysroot.join("lib"))?;
    let previous = fs::read_to_string(&recorded).ok();
    if previous.as_deref() == Some(version.verbose.as_str()) {
        return Ok(());
    }
    let toolchain = Toolchain {
        selector: Selector::Rustc(rustc.to_owned()),
        version,
        sysroot: sysroot.to_owned(),
    };
    let why = match previous.as_deref().map(RustcVersion::parse) {
        Some(Ok(old)) => format!("the installed one was built by rustc {old}"),
        _ => "the toolchain had none".to_owned(),
    };
    let how = install(&toolchain, target, &Ui::new(true))?;
    tell_cargo_user(&format!(
        "hyperlight-run: installed {target} for rustc {} ({why}; {how})",
        toolchain.version
    ));
    Ok(())
}

/// Prebuilt from the dist server when it has one, else built from the release's sources; when
/// the server cannot be reached or fails otherwise, built from the sources of an installed copy
/// on this machine (only local files are used then).
fn install(toolchain: &Toolchain, target: Target, ui: &Ui) -> Result<String, InstallError> {
    let server = settings::dist_server();
    let remote = Release::fetch(&server, ui).and_then(|release| {
        let options = add::Options {
            toolchain,
            target,
            release: &release,
            no_build: false,
        };
        add::add(&options, ui, &|_| Ok(()))
    });
    match remote {
        Ok(Installed::BuiltLocally) => Ok(format!("built on this machine from {server}'s sources")),
        Ok(Installed::Prebuilt | Installed::AlreadyInstalled) => {
            Ok(format!("prebuilt from {server}"))
        }
        Err(err) => {
            let Some(source) = local_source(&toolchain.sysroot, target) else {
                return Err(err);
            };
            add::build_and_install(toolchain, target, ui, |_| Ok(source.clone()))?;
            let why = match err {
                InstallError::Network { .. } | InstallError::Http { .. } => {
                    "could not be reached".to_owned()
                }
                other => format!("failed ({other})"),
            };
            Ok(format!(
                "built on this machine from {}, as {server} {why}",
                source.display()
            ))
        }
    }
}

/// An installed directory of `target` whose sources can rebuild it: this toolchain's own
/// (rustup leaves it behind on update), else another toolchain's.
fn local_source(sysroot: &Path, target: Target) -> Option<PathBuf> {
    std::iter::once(sysroot.to_path_buf())
        .chain(runner::toolchains_with_target(target))
        .map(|sysroot| target.dir(&sysroot))
        .find(|dir| {
            dir.join("src/sysroot/Cargo.toml").is_file() && dir.join("target.json").is_file()
        })
}

/// Blocks until this process holds the lock on `dir`.
fn lock(dir: &Path) -> Result<fs::File, InstallError> {
    let file = fs::File::open(dir).map_err(|err| InstallError::Write {
        path: dir.to_owned(),
        reason: err.to_string(),
    })?;
    file.lock().map_err(|err| InstallError::Write {
        path: dir.to_owned(),
        reason: err.to_string(),
    })?;
    Ok(file)
}

/// Writes `line` to cargo's own stderr (the terminal or log the user sees), which the
/// stderr cargo gave this call is not.
fn tell_cargo_user(line: &str) {
    let cargo_stderr = format!("/proc/{}/fd/2", std::os::unix::process::parent_id());
    match fs::OpenOptions::new().append(true).open(cargo_stderr) {
        Ok(mut stderr) => {
            let _ = writeln!(stderr, "{line}");
        }
        Err(_) => {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
    }
}
