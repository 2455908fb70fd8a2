//! The Rust toolchain a sysroot is built for and installed into.
//!
//! A prebuilt sysroot only works with the exact rustc that built it (E0514 otherwise), so a
//! toolchain is identified by what `rustc -vV` prints, not by its rustup name.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

pub use hyperlight_install::rustc::RustcVersion;
pub use hyperlight_install::TARGET;

/// A rustup toolchain name (`1.95.0`, `nightly`, ...) and what its rustc says about itself.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub name: String,
    pub version: RustcVersion,
    pub sysroot: PathBuf,
}

impl Toolchain {
    /// `name` of `None` means the toolchain pinned by the repository's rust-toolchain.toml.
    pub fn resolve(sh: &Shell, name: Option<&str>) -> Result<Toolchain> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => pinned_toolchain()?,
        };
        let verbose = cmd!(sh, "rustc +{name} -vV").read().with_context(|| {
            format!("toolchain `{name}` is not usable; install it with `rustup toolchain install {name}`")
        })?;
        let version = RustcVersion::parse(&verbose)?;
        let sysroot = cmd!(sh, "rustc +{name} --print sysroot").read()?.into();
        Ok(Toolchain {
            name,
            version,
            sysroot,
        })
    }

    /// Where rust-src puts the standard library's sources inside this toolchain.
    pub fn rust_src(&self) -> PathBuf {
        self.sysroot.join("lib/rustlib/src/rust")
    }

    pub fn has_rust_src(&self) -> bool {
        self.rust_src().join("library/Cargo.lock").is_file()
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
