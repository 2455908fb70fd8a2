//! `hyperlight-run` as the guest config's `rustc-wrapper`: cargo runs every rustc of a guest
//! project as `hyperlight-run <rustc> <args>`.
//!
//! Each cargo invocation starts with `rustc -vV`. There the wrapper checks that the toolchain has
//! the target, built by exactly that rustc, and installs it when not (after `rustup update`, a
//! new rust-toolchain.toml, a fresh toolchain): prebuilt from the dist server of the last
//! install, else built on this machine from an installed copy's sources. Cargo hides what that
//! call prints on success, so the one line saying what happened is left in a notice that the
//! next compilation for the target prints (cargo shows a compilation's stderr). Every other call
//! is handed straight to rustc with `exec`, costing only this process's start.

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
use hyperlight_install::toolchain::{target_dir, Selector, Toolchain};
use hyperlight_install::ui::Ui;
use hyperlight_install::{runner, TARGET};

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
    if compiles_for_target(rest) {
        print_notice(&rustc);
    }
    let err = Command::new(program).args(rest).exec();
    let _ = writeln!(
        std::io::stderr(),
        "hyperlight-run: error: cannot run {}: {err}",
        Path::new(program).display()
    );
    127
}

/// Runs `rustc -vV` for cargo, then makes sure the target fits that rustc.
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
            if let Err(err) = ensure_target(rustc, version) {
                let _ = writeln!(
                    std::io::stderr(),
                    "hyperlight-run: error: {TARGET} is not installed for this toolchain and \
                     installing it failed: {err}\n       fix: run `hyperlight-run target add` \
                     in this project (it says what is missing), or install from a release"
                );
                return err.exit_code().max(1);
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

fn ensure_target(rustc: &Path, version: RustcVersion) -> Result<(), InstallError> {
    let sysroot = match sysroot_of(rustc) {
        Some(sysroot) => sysroot,
        None => Toolchain::find(Selector::Rustc(rustc.to_owned()))?.sysroot,
    };
    let recorded = target_dir(&sysroot).join("rustc-version");
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
        sysroot,
    };
    let why = match previous.as_deref().map(RustcVersion::parse) {
        Some(Ok(old)) => format!("the installed one was built by rustc {old}"),
        _ => "the toolchain had none".to_owned(),
    };
    let ui = Ui::new(true);
    tell_terminal(&format!(
        "hyperlight-run: installing {TARGET} for rustc {} ({why})",
        toolchain.version
    ));
    let how = install(&toolchain, &ui)?;
    let notice = format!(
        "hyperlight-run: installed {TARGET} for rustc {} ({why}; {how})\n",
        toolchain.version
    );
    let _ = fs::write(notice_path(&toolchain.sysroot), notice);
    Ok(())
}

/// Prebuilt from the dist server when it has one; else built from the release's sources, or,
/// when the server cannot be reached, from the sources of an installed copy on this machine.
fn install(toolchain: &Toolchain, ui: &Ui) -> Result<String, InstallError> {
    let server = settings::dist_server();
    let fetched = Release::fetch(&server, ui);
    let release = match fetched {
        Ok(release) => release,
        Err(err @ (InstallError::Network { .. } | InstallError::Http { .. })) => {
            let Some(source) = local_source(&toolchain.sysroot) else {
                return Err(err);
            };
            add::build_and_install(toolchain, ui, |_| Ok(source.clone()))?;
            return Ok(format!(
                "built on this machine from {}, as {server} could not be reached",
                source.display()
            ));
        }
        Err(err) => return Err(err),
    };
    let options = add::Options {
        toolchain,
        release: &release,
        no_build: false,
    };
    Ok(match add::add(&options, ui, &|_| Ok(()))? {
        Installed::BuiltLocally => format!("built on this machine from {server}'s sources"),
        Installed::Prebuilt | Installed::AlreadyInstalled => format!("prebuilt from {server}"),
    })
}

/// An installed target directory whose sources can rebuild it: this toolchain's own (rustup
/// leaves it behind on update), else another toolchain's.
fn local_source(sysroot: &Path) -> Option<PathBuf> {
    std::iter::once(sysroot.to_path_buf())
        .chain(runner::toolchains_with_target())
        .map(|sysroot| target_dir(&sysroot))
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

/// A long install should not look like a hang to someone watching; cargo holds our stderr.
fn tell_terminal(message: &str) {
    if let Ok(mut tty) = fs::OpenOptions::new().write(true).open("/dev/tty") {
        let _ = writeln!(tty, "{message}");
    }
}

/// `lib/rustlib/.x86_64-hyperlight-none.notice`: outside the target's directory, so it is no
/// installed file.
fn notice_path(sysroot: &Path) -> PathBuf {
    sysroot
        .join("lib/rustlib")
        .join(format!(".{TARGET}.notice"))
}

fn compiles_for_target(args: &[OsString]) -> bool {
    args.windows(2)
        .any(|pair| pair[0] == "--target" && pair[1] == TARGET)
}

/// Prints and removes the notice a version query left (once: the rename claims it).
fn print_notice(rustc: &Path) {
    let Some(sysroot) = sysroot_of(rustc) else {
        return;
    };
    let notice = notice_path(&sysroot);
    let claimed = notice.with_extension(format!("notice.{}", std::process::id()));
    if fs::rename(&notice, &claimed).is_ok() {
        if let Ok(text) = fs::read_to_string(&claimed) {
            let _ = std::io::stderr().write_all(text.as_bytes());
        }
        let _ = fs::remove_file(&claimed);
    }
}
