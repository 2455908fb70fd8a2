//! The Rust toolchain a sysroot is built for and installed into.
//!
//! A prebuilt sysroot only works with the exact rustc that built it (E0514 otherwise), so a
//! toolchain is identified by what `rustc -vV` prints, not by its rustup name.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hyperlight_install::toolchain::{self as installer, Selector};

pub use hyperlight_install::rustc::RustcVersion;
pub use hyperlight_install::TARGET;

/// A rustup toolchain by the name it was asked for (`1.95.0`, `nightly`, ...); everything else
/// (version, sysroot, rust-src) is the installer's view of it, through `Deref`.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub name: String,
    found: installer::Toolchain,
}

impl Toolchain {
    /// `name` of `None` means the toolchain pinned by the repository's rust-toolchain.toml.
    pub fn resolve(name: Option<&str>) -> Result<Toolchain> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => pinned_toolchain()?,
        };
        let found = installer::Toolchain::find(Selector::Rustup(name.clone())).with_context(|| {
            format!("toolchain `{name}` is not usable; install it with `rustup toolchain install {name}`")
        })?;
        Ok(Toolchain { name, found })
    }
}

impl Deref for Toolchain {
    type Target = installer::Toolchain;

    fn deref(&self) -> &installer::Toolchain {
        &self.found
    }
}

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The `channel` of rust-toolchain.toml: the toolchain everything defaults to.
pub fn pinned_toolchain() -> Result<String> {
    let path = project_root().join("rust-toolchain.toml");
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    for line in text.lines() {
        if let Some(value) = line.trim().strip_prefix("channel") {
            let value = value.trim_start().trim_start_matches('=').trim();
            return Ok(value.trim_matches('"').to_owned());
        }
    }
    bail!("{} has no `channel = \"...\"` line", path.display())
}
