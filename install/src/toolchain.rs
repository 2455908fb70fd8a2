//! The Rust toolchain an install is for: its rustc, what that rustc says about itself, and its
//! sysroot, whether it is a rustup toolchain or a plain rustc.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::rustc::RustcVersion;

/// How to reach a toolchain's compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selector {
    /// A rustup toolchain by name: `rustc +NAME`.
    Rustup(String),
    /// This rustc (a path, or a name looked up on PATH), as selected in the current directory
    /// (rust-toolchain.toml and overrides count when it is rustup's proxy).
    Rustc(PathBuf),
}

#[derive(Debug, Clone)]
pub struct Toolchain {
    pub selector: Selector,
    pub version: RustcVersion,
    pub sysroot: PathBuf,
}

impl Toolchain {
    pub fn find(selector: Selector) -> Result<Toolchain> {
        let verbose = rustc_output(&selector, &["-vV"])?;
        let version = RustcVersion::parse(&verbose)?;
        let sysroot = PathBuf::from(rustc_output(&selector, &["--print", "sysroot"])?.trim());
        if !sysroot.join("lib/rustlib").is_dir() {
            bail!(
                "{} has no lib/rustlib: {} does not look like a Rust toolchain",
                sysroot.display(),
                selector
            );
        }
        Ok(Toolchain {
            selector,
            version,
            sysroot,
        })
    }

    /// The rustup toolchain name, when this is a rustup toolchain: the given name, or the
    /// sysroot's directory under `<rustup home>/toolchains`.
    pub fn rustup_name(&self) -> Option<String> {
        match &self.selector {
            Selector::Rustup(name) => Some(name.clone()),
            Selector::Rustc(_) => {
                let parent = self.sysroot.parent()?;
                (parent.file_name()? == "toolchains")
                    .then(|| self.sysroot.file_name()?.to_str().map(str::to_owned))
                    .flatten()
            }
        }
    }

    /// The toolchain's own cargo (a sysroot's `bin/cargo`), else cargo on PATH.
    pub fn cargo(&self) -> PathBuf {
        let own = self.sysroot.join("bin/cargo");
        if own.is_file() {
            own
        } else {
            PathBuf::from("cargo")
        }
    }

    /// The toolchain's own rustc.
    pub fn rustc(&self) -> PathBuf {
        self.sysroot.join("bin/rustc")
    }

    /// Where rust-src puts the standard library's sources.
    pub fn rust_src(&self) -> PathBuf {
        self.sysroot.join("lib/rustlib/src/rust")
    }

    pub fn has_rust_src(&self) -> bool {
        self.rust_src().join("library/Cargo.lock").is_file()
    }

    /// Adds rust-src through rustup when it is missing; `say` is told before it starts. A
    /// toolchain rustup does not manage gets an error naming what is missing.
    pub fn ensure_rust_src(&self, say: impl FnOnce(&str)) -> Result<()> {
        if self.has_rust_src() {
            return Ok(());
        }
        let Some(name) = self.rustup_name() else {
            bail!(
                "building core and alloc needs the standard library's sources, which {} lacks \
                 ({} does not exist) and which only rustup can add here",
                self.sysroot.display(),
                self.rust_src().display()
            );
        };
        say(&format!(
            "adding rust-src to toolchain {name} (core and alloc are built from it)"
        ));
        let status = Command::new("rustup")
            .args(["component", "add", "rust-src", "--toolchain", &name])
            .status()
            .context("running rustup")?;
        if !status.success() || !self.has_rust_src() {
            bail!("`rustup component add rust-src --toolchain {name}` failed ({status})");
        }
        Ok(())
    }

    pub fn target_dir(&self) -> PathBuf {
        target_dir(&self.sysroot)
    }
}

/// `<sysroot>/lib/rustlib/x86_64-hyperlight-none`, the directory this project owns in a sysroot.
pub fn target_dir(sysroot: &Path) -> PathBuf {
    crate::Target::None.dir(sysroot)
}

impl std::fmt::Display for Selector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Selector::Rustup(name) => write!(f, "toolchain `{name}`"),
            Selector::Rustc(path) => write!(f, "`{}`", path.display()),
        }
    }
}

fn rustc_output(selector: &Selector, args: &[&str]) -> Result<String> {
    let mut command = match selector {
        Selector::Rustup(name) => {
            let mut command = Command::new("rustc");
            command.arg(format!("+{name}"));
            command
        }
        Selector::Rustc(path) => Command::new(path),
    };
    let output = command
        .args(args)
        .output()
        .with_context(|| format!("cannot run {selector}"))?;
    if !output.status.success() {
        bail!(
            "`rustc {}` of {selector} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}
