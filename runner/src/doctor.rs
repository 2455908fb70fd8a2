//! `hyperlight-run doctor [--toolchain T]`: checks everything building and running a guest
//! needs, one line each, with the fix for what is missing.

use std::path::{Path, PathBuf};

use hyperlight_install::runtime;

use crate::toolchain::{install_fix, Installed, Toolchain, TARGET};

enum Verdict {
    Ok,
    /// Needed to build or run a guest: makes the exit code non-zero.
    Fail,
    /// Needed only by some guests.
    Warn,
}

struct Report {
    failed: bool,
}

impl Report {
    fn line(&mut self, verdict: Verdict, what: &str, detail: &str) {
        let tag = match verdict {
            Verdict::Ok => "ok  ",
            Verdict::Fail => {
                self.failed = true;
                "FAIL"
            }
            Verdict::Warn => "warn",
        };
        println!("{tag}  {what}: {detail}");
    }
}

/// Prints the checks and returns the exit code: 0 only when a guest can be built and run.
pub fn run(toolchain: Option<&str>, kvm_device: &Path) -> i32 {
    let mut report = Report { failed: false };
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));

    match hyperlight_run::vcpu::open_kvm(kvm_device) {
        Ok(_) => report.line(
            Verdict::Ok,
            "KVM",
            &format!(
                "{} opened; API 12 with sync regs, immediate exit and user memory",
                kvm_device.display()
            ),
        ),
        Err(message) => report.line(Verdict::Fail, "KVM", &message),
    }

    let found = Toolchain::find(toolchain, &cwd);
    match &found {
        Err(message) => report.line(Verdict::Fail, "toolchain", message),
        Ok(found) => {
            let what = format!(
                "{TARGET} for toolchain {} ({})",
                found.rustup_name(),
                found.describe()
            );
            let fix = install_fix(&found.rustup_name());
            match found.installed() {
                Installed::Yes => report.line(
                    Verdict::Ok,
                    &what,
                    &format!("installed in {}", found.target_dir().display()),
                ),
                Installed::No => {
                    report.line(Verdict::Fail, &what, &format!("not installed; {fix}"))
                }
                Installed::ForAnotherRustc(other) => report.line(
                    Verdict::Fail,
                    &what,
                    &format!(
                        "installed for another compiler, {other} (E0514 when building); {fix}"
                    ),
                ),
            }
            if !matches!(found.installed(), Installed::No) {
                check_runtime(&mut report, &found.target_dir(), &fix);
            }
        }
    }

    match guest_project(&cwd) {
        None => report.line(
            Verdict::Ok,
            "guest project",
            "not inside a cargo project; nothing to check",
        ),
        Some(project) => {
            let nightly = found
                .as_ref()
                .is_ok_and(|t| t.field("release").is_some_and(|r| r.contains("nightly")));
            check_project(&mut report, &project, nightly)
        }
    }

    match which("hyperlight-run") {
        Some(path) => report.line(
            Verdict::Ok,
            "hyperlight-run",
            &format!("on PATH at {}", path.display()),
        ),
        None => report.line(
            Verdict::Fail,
            "hyperlight-run",
            "not on PATH, so `cargo run` cannot find the runner; add ~/.cargo/bin to PATH",
        ),
    }
    // The guest config compiles C code with clang and archives it with llvm-ar.
    let c_tools = ["clang", "llvm-ar"].map(|tool| (tool, which(tool)));
    let missing: Vec<&str> = c_tools
        .iter()
        .filter(|(_, path)| path.is_none())
        .map(|(tool, _)| *tool)
        .collect();
    if missing.is_empty() {
        let paths: Vec<String> = c_tools
            .iter()
            .filter_map(|(_, path)| Some(path.as_ref()?.display().to_string()))
            .collect();
        let detail = format!("{} (for guests with C code)", paths.join(", "));
        report.line(Verdict::Ok, "clang, llvm-ar", &detail);
    } else {
        let detail = format!(
            "{} not found; only guests with C code need them (official Hyperlight guests do): \
             `sudo apt-get install clang llvm`",
            missing.join(" and ")
        );
        report.line(Verdict::Warn, "clang, llvm-ar", &detail);
    }
    i32::from(report.failed)
}

/// The cargo config through which guest projects' `registry = "hyperlight"` dependencies reach
/// the runtime installed with the target (see hyperlight_install::runtime).
fn check_runtime(report: &mut Report, target_dir: &Path, fix: &str) {
    let what = "runtime crates";
    let status = hyperlight_install::runner::cargo_home()
        .and_then(|cargo_home| runtime::status(&cargo_home, target_dir));
    let status = match status {
        Ok(status) => status,
        Err(err) => return report.line(Verdict::Fail, what, &format!("{err:#}")),
    };
    let registry = runtime::REGISTRY;
    if status.problems.is_empty() {
        let detail = format!(
            "registry `{registry}` in {} serves {}",
            status.config.display(),
            status.served.join(", ")
        );
        report.line(Verdict::Ok, what, &detail);
    } else {
        let detail = format!(
            "{} (in {}), so guest projects cannot resolve their `registry = \"{registry}\"` \
             dependencies; installing the target writes these, so {fix}",
            status.problems.join("; "),
            status.config.display()
        );
        report.line(Verdict::Fail, what, &detail);
    }
}

/// The directory of the nearest Cargo.toml at or above `dir`.
fn guest_project(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .find(|d| d.join("Cargo.toml").is_file())
        .map(Path::to_path_buf)
}

/// The guest configuration cargo would see in `project`: the settings of the README's
/// `.cargo/config.toml`, each taken from the nearest config file that has it, as cargo does.
fn check_project(report: &mut Report, project: &Path, nightly: bool) {
    let configs: Vec<toml::Table> = project
        .ancestors()
        .flat_map(|dir| [dir.join(".cargo/config.toml"), dir.join(".cargo/config")])
        .filter_map(|path| std::fs::read_to_string(path).ok()?.parse().ok())
        .collect();
    let nearest = |keys: &[&str]| -> Option<&toml::Value> {
        configs.iter().find_map(|config| {
            let (first, rest) = keys.split_first()?;
            rest.iter()
                .try_fold(config.get(*first)?, |value, key| value.get(key))
        })
    };
    let is = |value: Option<&toml::Value>, expected: &str| match value {
        Some(toml::Value::String(text)) => text == expected,
        // `KEY = { value = "..." }` in [env]; `runner = ["hyperlight-run", ...]`.
        Some(toml::Value::Table(table)) => {
            table.get("value").and_then(toml::Value::as_str) == Some(expected)
        }
        Some(toml::Value::Array(items)) => {
            items.first().and_then(toml::Value::as_str) == Some(expected)
        }
        _ => false,
    };
    let has_flag = |value: Option<&toml::Value>| {
        value.and_then(toml::Value::as_array).is_some_and(|flags| {
            flags
                .iter()
                .any(|f| f.as_str() == Some("-Zunstable-options"))
        })
    };
    let target = ["target", TARGET];
    let checks = [
        (
            is(nearest(&["build", "target"]), TARGET),
            "build.target = \"x86_64-hyperlight-none\"",
        ),
        (
            is(nearest(&[target[0], target[1], "runner"]), "hyperlight-run"),
            "runner = \"hyperlight-run\"",
        ),
        (
            has_flag(nearest(&[target[0], target[1], "rustflags"]))
                || has_flag(nearest(&["build", "rustflags"])),
            "rustflags with -Zunstable-options",
        ),
        (
            nightly || is(nearest(&["env", "RUSTC_BOOTSTRAP"]), "1"),
            "[env] RUSTC_BOOTSTRAP = \"1\" (stable toolchains)",
        ),
    ];
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(present, _)| !present)
        .map(|(_, setting)| *setting)
        .collect();
    let what = format!("guest project {}", project.display());
    let fix = "put the README's guest configuration (templates/cargo-config.toml) into .cargo/config.toml";
    if configs.is_empty() {
        report.line(
            Verdict::Fail,
            &what,
            &format!("no .cargo/config.toml; {fix}"),
        );
    } else if missing.is_empty() {
        report.line(
            Verdict::Ok,
            &what,
            "its cargo config sets the target, the runner and the flags",
        );
    } else {
        report.line(
            Verdict::Fail,
            &what,
            &format!("its cargo config lacks {}; {fix}", missing.join(", ")),
        );
    }
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
