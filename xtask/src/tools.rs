//! Cargo subcommands the project's commands run, each at a pinned version, installed with
//! `cargo install --locked` into `target/tools` (never into the user's `~/.cargo/bin`).

use std::path::PathBuf;

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

use crate::toolchain::project_root;

/// A cargo subcommand at a pinned version.
pub struct Tool {
    /// The crate, which is also the binary's name.
    pub name: &'static str,
    pub version: &'static str,
}

/// The runner the tests drive std and no_std guest tests through, as many teams run tests.
pub const CARGO_NEXTEST: Tool = Tool {
    name: "cargo-nextest",
    version: "0.9.151",
};

/// The directory `cargo install --root` gets.
pub fn root() -> PathBuf {
    project_root().join("target/tools")
}

impl Tool {
    /// The tool's binary, installed first if it is missing or another version.
    pub fn ensure(&self, sh: &Shell) -> Result<PathBuf> {
        let Tool { name, version } = self;
        let root = root();
        let binary = root.join("bin").join(name);
        // `cargo-X --version` answers for cargo subcommands called directly.
        let subcommand = name.trim_start_matches("cargo-");
        let installed = cmd!(sh, "{binary} {subcommand} --version")
            .quiet()
            .ignore_stderr()
            .read()
            .unwrap_or_default();
        if !installed.contains(version) {
            eprintln!("installing {name} {version} into {}", root.display());
            cmd!(
                sh,
                "cargo install --locked --root {root} {name} --version {version}"
            )
            .run()
            .with_context(|| format!("installing {name} {version} (needs crates.io)"))?;
        }
        Ok(binary)
    }
}
