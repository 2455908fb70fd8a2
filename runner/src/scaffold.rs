//! `hyperlight-run new <PATH> [--name NAME] [--std]`: a guest crate that builds, runs and
//! tests as it is, pinned to a toolchain that has its target installed: a `#![no_std]` guest on
//! the runtime for x86_64-hyperlight-none, or with `--std` a std guest for
//! x86_64-hyperlight-hermit.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use hyperlight_install::runtime::REGISTRY;
use hyperlight_install::Target;

use crate::toolchain::{install_fix, Installed, Toolchain, ToolchainError};

/// Why `new` created nothing.
#[derive(Debug, thiserror::Error)]
pub enum ScaffoldError {
    #[error("{} already exists; `new` only creates a new directory", .0.display())]
    Exists(PathBuf),
    #[error(
        "`{0}` is not a valid package name (letters, digits, `-` and `_`, not starting with a \
         digit); pass one with --name"
    )]
    InvalidName(String),
    #[error("{} is not a directory", .0.display())]
    NoParent(PathBuf),
    #[error(transparent)]
    Toolchain(#[from] ToolchainError),
    #[error("no toolchain has {target} installed; {fix}")]
    NoToolchainWithTarget { target: Target, fix: String },
    #[error("cannot create {}: {source}", path.display())]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// The guest configuration every guest project of `target` carries (see the README): the
/// text of templates/`target.guest_config_file()`.
pub const fn cargo_config(target: Target) -> &'static str {
    match target {
        Target::None | Target::Aarch64 => include_str!("../../templates/cargo-config.toml"),
        Target::Hermit => include_str!("../../templates/cargo-config-std.toml"),
    }
}

/// Creates the project for `target` and returns what to tell the user.
pub fn create(path: &Path, name: Option<&str>, target: Target) -> Result<String, ScaffoldError> {
    if path.exists() || path.is_symlink() {
        return Err(ScaffoldError::Exists(path.to_path_buf()));
    }
    let name = match name {
        Some(name) => name.to_owned(),
        None => path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    check_crate_name(&name)?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if !parent.is_dir() {
        return Err(ScaffoldError::NoParent(parent.to_path_buf()));
    }
    let toolchain = toolchain_with_target(parent, target)?;
    let channel = toolchain.rustup_name();

    // Written beside the destination and renamed into place: no half-made project is left.
    let staging = parent.join(format!(".{name}.new-{}", std::process::id()));
    let files = match target.has_std() {
        false => no_std_files(&name),
        true => std_files(&name),
    };
    let result =
        write_project(&staging, files, target, &channel).and_then(|()| fs::rename(&staging, path));
    if let Err(source) = result {
        let _ = fs::remove_dir_all(&staging);
        return Err(ScaffoldError::Write {
            path: path.to_path_buf(),
            source,
        });
    }
    Ok(format!(
        "Created guest `{name}` in {} (toolchain {channel}).\nRun it with `cd {} && cargo run`, test it with `cargo test`.",
        path.display(),
        path.display()
    ))
}

/// A project's files that differ between targets: Cargo.toml, src/main.rs and the guest config.
type Files = [(&'static str, String); 3];

fn write_project(dir: &Path, files: Files, target: Target, channel: &str) -> std::io::Result<()> {
    let common = [
        (
            "rust-toolchain.toml",
            format!("# The toolchain {target} is installed in: its prebuilt libraries fit only this compiler.\n[toolchain]\nchannel = \"{channel}\"\n"),
        ),
        (".gitignore", "/target\n".to_owned()),
    ];
    for (file, contents) in files.into_iter().chain(common) {
        let path = dir.join(file);
        fs::create_dir_all(path.parent().unwrap())?;
        fs::write(&path, contents)?;
    }
    Ok(())
}

/// The requirement new projects put on the runtime: every version cargo considers compatible
/// with this one (`0.1` for 0.1.x), so any such installed runtime satisfies it.
fn runtime_requirement() -> String {
    let mut parts = hyperlight_rt::VERSION.split('.');
    match (parts.next(), parts.next()) {
        (Some("0"), Some(minor)) => format!("0.{minor}"),
        (major, _) => major.unwrap_or_default().to_owned(),
    }
}

fn no_std_files(name: &str) -> Files {
    let runtime = runtime_requirement();
    let manifest = format!(
        "[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
         [dependencies]\n# The guest runtime, from the registry that installing the target sets up in\n\
         # ~/.cargo/config.toml (see the target's README).\n\
         hyperlight-rt = {{ version = \"{runtime}\", registry = \"{REGISTRY}\" }}\n\n\
         # The target has no unwinding.\n[profile.dev]\npanic = \"abort\"\n\n[profile.release]\npanic = \"abort\"\n"
    );
    [
        ("Cargo.toml", manifest),
        ("src/main.rs", no_std_main_rs(name)),
        (".cargo/config.toml", cargo_config(Target::None).to_owned()),
    ]
}

/// A std guest: no dependency (the target links the Hermit ABI), plain `fn main` and `#[test]`.
fn std_files(name: &str) -> Files {
    let manifest =
        format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2021\"\n");
    let main_rs = format!(
        r#"fn main() {{
    println!("{{}}", greeting());
}}

fn greeting() -> &'static str {{
    "Hello from {name}!"
}}

// `cargo test` runs each test in its own micro-VM.
#[cfg(test)]
mod tests {{
    #[test]
    fn greets() {{
        assert_eq!(super::greeting(), "Hello from {name}!");
    }}
}}
"#
    );
    [
        ("Cargo.toml", manifest),
        ("src/main.rs", main_rs),
        (
            ".cargo/config.toml",
            cargo_config(Target::Hermit).to_owned(),
        ),
    ]
}

fn no_std_main_rs(name: &str) -> String {
    format!(
        r#"#![no_std]
#![no_main]
// `cargo test` runs the tests below, each in its own micro-VM.
#![cfg_attr(test, feature(custom_test_frameworks), test_runner(hyperlight_rt::test_runner), reexport_test_harness_main = "test_main")]

use hyperlight_rt::println;

hyperlight_rt::main!(main);

fn main() {{
    println!("{{}}", greeting());
}}

fn greeting() -> &'static str {{
    "Hello from {name}!"
}}

#[cfg(test)]
mod tests {{
    // As libtest's #[test]: it takes #[ignore] and #[should_panic(expected = "...")] too, and a
    // time limit: #[hyperlight_rt::test(timeout = "500ms")].
    #[hyperlight_rt::test]
    fn greets() {{
        assert_eq!(super::greeting(), "Hello from {name}!");
    }}
}}
"#
    )
}

/// cargo's rules for a package name, so the project builds as created.
fn check_crate_name(name: &str) -> Result<(), ScaffoldError> {
    let valid = !name.is_empty()
        && !name.starts_with(|c: char| c.is_ascii_digit())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if valid {
        Ok(())
    } else {
        Err(ScaffoldError::InvalidName(name.to_owned()))
    }
}

/// The toolchain active in `dir` if `target` is installed there, else the first rustup
/// toolchain that has it.
fn toolchain_with_target(dir: &Path, target: Target) -> Result<Toolchain, ScaffoldError> {
    let has_target = |toolchain: &Toolchain| {
        matches!(toolchain.installed(target), Installed::Yes)
            && (target != Target::None || toolchain.runtime_dir().is_dir())
    };
    let active = Toolchain::find(None, dir)?;
    if has_target(&active) {
        return Ok(active);
    }
    let listed = Command::new("rustup").args(["toolchain", "list"]).output();
    let names = listed
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for name in names
        .lines()
        .filter_map(|line| line.split_whitespace().next())
    {
        if let Ok(toolchain) = Toolchain::find(Some(name), dir) {
            if has_target(&toolchain) {
                return Ok(toolchain);
            }
        }
    }
    Err(ScaffoldError::NoToolchainWithTarget {
        target,
        fix: install_fix(&active.rustup_name(), target),
    })
}
