//! The Rust toolchains `new` and `doctor` look at: which one cargo will use, and whether a
//! target is installed in it for its exact compiler.

use std::path::{Path, PathBuf};
use std::process::Command;

use hyperlight_install::rustc::RustcVersion;
use hyperlight_install::Target;

/// A toolchain as rustup names it (`None`: whatever `rustc` resolves to here).
pub struct Toolchain {
    pub name: Option<String>,
    /// Where the toolchain was looked up (rust-toolchain.toml files apply from there).
    dir: PathBuf,
    /// `rustc -vV`.
    pub version: RustcVersion,
    pub sysroot: PathBuf,
}

/// Why a toolchain could not be asked what it is.
#[derive(Debug, thiserror::Error)]
pub enum ToolchainError {
    #[error("cannot run rustc ({0}); install Rust with rustup (https://rustup.rs)")]
    NoRustc(std::io::Error),
    #[error("`rustc {command}` failed: {stderr}")]
    Failed { command: String, stderr: String },
    #[error(transparent)]
    Version(#[from] hyperlight_install::rustc::MissingField),
}

/// How the target stands in a toolchain.
pub enum Installed {
    Yes,
    No,
    /// Installed, but built by another compiler: this `release` and `commit-hash`.
    ForAnotherRustc(String),
}

impl Toolchain {
    /// `name` of `None` is the toolchain active in `dir` (rust-toolchain.toml, overrides).
    pub fn find(name: Option<&str>, dir: &Path) -> Result<Toolchain, ToolchainError> {
        let rustc = |args: &[&str]| {
            let mut command = Command::new("rustc");
            if let Some(name) = name {
                command.arg(format!("+{name}"));
            }
            let output = command
                .args(args)
                .current_dir(dir)
                .output()
                .map_err(ToolchainError::NoRustc)?;
            if !output.status.success() {
                return Err(ToolchainError::Failed {
                    command: args.join(" "),
                    stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
                });
            }
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        };
        let version = RustcVersion::parse(&rustc(&["-vV"])?)?;
        Ok(Toolchain {
            name: name.map(str::to_owned),
            dir: dir.to_path_buf(),
            version,
            sysroot: PathBuf::from(rustc(&["--print", "sysroot"])?.trim()),
        })
    }

    /// The rustup name of this toolchain without the host triple (`1.95.0`, `nightly`): the
    /// given name, else what `rustup show active-toolchain` says, else the sysroot's name.
    pub fn rustup_name(&self) -> String {
        let host = format!("-{}", self.version.host);
        let active = || {
            let output = Command::new("rustup")
                .args(["show", "active-toolchain"])
                .current_dir(&self.dir)
                .output()
                .ok()?;
            let text = String::from_utf8_lossy(&output.stdout).into_owned();
            output
                .status
                .success()
                .then(|| text.split_whitespace().next().map(str::to_owned))
                .flatten()
        };
        let name = self
            .name
            .clone()
            .or_else(active)
            .or_else(|| {
                self.sysroot
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
            })
            .unwrap_or_default();
        name.strip_suffix(&host).map_or(name.clone(), str::to_owned)
    }

    pub fn target_dir(&self, target: Target) -> PathBuf {
        target.dir(&self.sysroot)
    }

    /// The guest runtime's sources, installed with x86_64-hyperlight-none.
    pub fn runtime_dir(&self) -> PathBuf {
        self.target_dir(Target::None).join("src/hyperlight-rt")
    }

    /// Whether `target` is installed for this exact compiler (and, for x86_64-hyperlight-none,
    /// with the runtime's sources that `new` and guest projects need).
    pub fn installed(&self, target: Target) -> Installed {
        match std::fs::read_to_string(self.target_dir(target).join("rustc-version")) {
            Err(_) => Installed::No,
            Ok(built_by) if built_by == self.version.verbose => Installed::Yes,
            Ok(built_by) => Installed::ForAnotherRustc(match RustcVersion::parse(&built_by) {
                Ok(other) => describe(&other),
                Err(_) => "? (?)".to_owned(),
            }),
        }
    }

    pub fn describe(&self) -> String {
        describe(&self.version)
    }
}

/// `release (commit-hash)`, how doctor names a compiler.
fn describe(version: &RustcVersion) -> String {
    format!("{} ({})", version.release, version.commit_hash)
}

/// The command that installs `target` into `toolchain`.
pub fn install_fix(toolchain: &str, target: Target) -> String {
    let add = crate::target::add_command(target);
    let xtask_target = match target {
        Target::None => String::new(),
        other => format!(" --target {other}"),
    };
    format!(
        "install it: `{add} --toolchain {toolchain}` (a guest build \
         through the guest config's rustc-wrapper does it too), or `cargo xtask install \
         --toolchain {toolchain}{xtask_target}` in a clone of the project"
    )
}
