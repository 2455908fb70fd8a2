//! `hyperlight-run doctor [--toolchain T]`: checks everything building and running a guest
//! needs, one line each, with the fix for what is missing.

use std::path::{Path, PathBuf};

use hyperlight_install::{runtime, Target};

use crate::toolchain::{install_fix, Installed, Toolchain};

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
    check_kvm(&mut report, kvm_device);

    let project = guest_project(&cwd).map(|dir| {
        let configs = cargo_configs(&dir);
        (dir, configs)
    });
    // The target the project builds for is the one it needs; without a project, the no_std one.
    let needed = project
        .as_ref()
        .and_then(|(_, configs)| nearest(configs, &["build", "target"])?.as_str())
        .and_then(Target::from_name)
        .unwrap_or(Target::None);
    let found = Toolchain::find(toolchain, &cwd);
    match &found {
        Err(err) => report.line(Verdict::Fail, "toolchain", &err.to_string()),
        Ok(found) => {
            for target in Target::ALL {
                check_target(&mut report, found, target, target == needed);
            }
        }
    }
    match &project {
        None => report.line(
            Verdict::Ok,
            "guest project",
            "not inside a cargo project; nothing to check",
        ),
        Some((dir, configs)) => {
            let nightly = found
                .as_ref()
                .is_ok_and(|t| t.version.release.contains("nightly"));
            check_project(&mut report, dir, configs, needed, nightly)
        }
    }
    check_runner_on_path(&mut report);
    check_c_tools(&mut report);
    i32::from(report.failed)
}

fn check_kvm(report: &mut Report, kvm_device: &Path) {
    match hyperlight_run::vcpu::open_kvm(kvm_device) {
        Ok(_) => report.line(
            Verdict::Ok,
            "KVM",
            &format!(
                "{} opened; API 12 with sync regs, immediate exit and user memory",
                kvm_device.display()
            ),
        ),
        Err(err) => report.line(Verdict::Fail, "KVM", &err.to_string()),
    }
}

/// cargo finds the runner (and the rustc-wrapper) by name.
fn check_runner_on_path(report: &mut Report) {
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
}

/// The guest config compiles C code with clang and archives it with llvm-ar.
fn check_c_tools(report: &mut Report) {
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
}

/// Whether `target` is installed in `found` for its compiler: a failure if the guest project
/// needs it, else a warning (std guests alone need x86_64-hyperlight-hermit).
fn check_target(report: &mut Report, found: &Toolchain, target: Target, needed: bool) {
    let what = format!(
        "{target} for toolchain {} ({})",
        found.rustup_name(),
        found.describe()
    );
    let fix = install_fix(&found.rustup_name(), target);
    let (missing, why) = match (needed, target) {
        (true, _) => (Verdict::Fail, ""),
        (false, Target::Hermit) => (Verdict::Warn, " (only std guests need it)"),
        (false, Target::None) => (Verdict::Warn, " (only no_std guests need it)"),
        (false, Target::Aarch64) => (Verdict::Warn, " (only AArch64 guests need it)"),
    };
    let installed = found.installed(target);
    match &installed {
        Installed::Yes => report.line(
            Verdict::Ok,
            &what,
            &format!("installed in {}", found.target_dir(target).display()),
        ),
        Installed::No => report.line(missing, &what, &format!("not installed{why}; {fix}")),
        Installed::ForAnotherRustc(other) => report.line(
            missing,
            &what,
            &format!("installed for another compiler, {other} (E0514 when building){why}; {fix}"),
        ),
    }
    if needed && target == Target::None && !matches!(installed, Installed::No) {
        check_runtime(report, &found.target_dir(target), &fix);
    }
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

/// The cargo config files that apply in `project`, nearest first.
fn cargo_configs(project: &Path) -> Vec<toml::Table> {
    project
        .ancestors()
        .flat_map(|dir| [dir.join(".cargo/config.toml"), dir.join(".cargo/config")])
        .filter_map(|path| std::fs::read_to_string(path).ok()?.parse().ok())
        .collect()
}

/// A setting from the nearest config file that has it, as cargo takes it.
fn nearest<'a>(configs: &'a [toml::Table], keys: &[&str]) -> Option<&'a toml::Value> {
    configs.iter().find_map(|config| {
        let (first, rest) = keys.split_first()?;
        rest.iter()
            .try_fold(config.get(*first)?, |value, key| value.get(key))
    })
}

/// The guest configuration cargo would see in `project`: the settings of the README's
/// `.cargo/config.toml` for `target`.
fn check_project(
    report: &mut Report,
    project: &Path,
    configs: &[toml::Table],
    target: Target,
    nightly: bool,
) {
    let what = format!("guest project {}", project.display());
    let fix = format!(
        "put the README's guest configuration (templates/{}) into .cargo/config.toml",
        target.guest_config_file()
    );
    let missing = missing_settings(configs, target, nightly);
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

/// The settings a guest project for `target` needs that its cargo `configs` lack.
fn missing_settings(configs: &[toml::Table], target: Target, nightly: bool) -> Vec<String> {
    let nearest = |keys: &[&str]| nearest(configs, keys);
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
    let name = target.name();
    let has_flag = |flag: &str| {
        [
            nearest(&["target", name, "rustflags"]),
            nearest(&["build", "rustflags"]),
        ]
        .into_iter()
        .flatten()
        .filter_map(toml::Value::as_array)
        .any(|flags| flags.iter().any(|f| f.as_str() == Some(flag)))
    };
    let mut checks = vec![
        (
            is(nearest(&["build", "target"]), name),
            format!("build.target = \"{name}\""),
        ),
        (
            is(nearest(&["target", name, "runner"]), "hyperlight-run"),
            "runner = \"hyperlight-run\"".to_owned(),
        ),
        (
            has_flag("-Zunstable-options"),
            "rustflags with -Zunstable-options".to_owned(),
        ),
        (
            nightly || is(nearest(&["env", "RUSTC_BOOTSTRAP"]), "1"),
            "[env] RUSTC_BOOTSTRAP = \"1\" (stable toolchains)".to_owned(),
        ),
    ];
    if target == Target::Hermit {
        checks.push((
            has_flag("-Zpanic-abort-tests"),
            "rustflags with -Zpanic-abort-tests (for `cargo test`)".to_owned(),
        ));
    }
    checks
        .into_iter()
        .filter(|(present, _)| !present)
        .map(|(_, setting)| setting)
        .collect()
}

fn which(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|path| path.is_file())
}
