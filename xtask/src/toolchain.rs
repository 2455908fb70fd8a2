//! The Rust toolchain a sysroot is built for and installed into.
//!
//! A prebuilt sysroot only works with the exact rustc that built it (E0514 otherwise), so a
//! toolchain is identified by what `rustc -vV` prints, not by its rustup name.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use xshell::{cmd, Shell};

pub const TARGET: &str = "x86_64-hyperlight-none";

/// A rustup toolchain name (`1.95.0`, `nightly`, ...) and what its rustc says about itself.
#[derive(Debug, Clone)]
pub struct Toolchain {
    pub name: String,
    pub version: RustcVersion,
    pub sysroot: PathBuf,
}

/// The parts of `rustc -vV` that decide whether a sysroot fits a compiler.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RustcVersion {
    pub release: String,
    pub commit_hash: String,
    pub commit_date: String,
    pub host: String,
    /// `rustc -vV` exactly as printed, recorded next to the sysroot it built.
    pub verbose: String,
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

impl RustcVersion {
    pub fn parse(verbose: &str) -> Result<RustcVersion> {
        let field = |key: &str| -> Result<String> {
            verbose
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
                .map(str::to_owned)
                .with_context(|| format!("`rustc -vV` printed no `{key}` line:\n{verbose}"))
        };
        Ok(RustcVersion {
            release: field("release")?,
            commit_hash: field("commit-hash")?,
            commit_date: field("commit-date")?,
            host: field("host")?,
            verbose: verbose.trim_end().to_owned() + "\n",
        })
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
    toml_string("rust-toolchain.toml", &["toolchain", "channel"])
}

/// The nightly that the tests, `cargo xtask compat`, `cargo xtask fuzz` and the compat bench
/// use (`[workspace.metadata.toolchains] test-nightly` in Cargo.toml): a fixed one, so that a
/// new nightly cannot change their results overnight.
pub fn test_nightly() -> Result<String> {
    toml_string(
        "Cargo.toml",
        &["workspace", "metadata", "toolchains", "test-nightly"],
    )
}

/// The string at `keys` in the project's TOML file `file`.
fn toml_string(file: &str, keys: &[&str]) -> Result<String> {
    let path = project_root().join(file);
    let text =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let root = toml::Value::Table(
        text.parse()
            .with_context(|| format!("parsing {}", path.display()))?,
    );
    let value = keys.iter().try_fold(&root, |value, key| value.get(key));
    value
        .and_then(toml::Value::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{} has no string `{}`", path.display(), keys.join(".")))
}
