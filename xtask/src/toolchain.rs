//! The Rust toolchain a sysroot is built for and installed into.
//!
//! A prebuilt sysroot only works with the exact rustc that built it (E0514 otherwise), so a
//! toolchain is identified by what `rustc -vV` prints, not by its rustup name.

use std::ops::Deref;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyperlight_install::toolchain::{self as installer, Selector};
use xshell::{cmd, Shell};

pub use hyperlight_install::rustc::RustcVersion;
pub use hyperlight_install::TARGET;

/// The component that building core and alloc compiles from.
pub const RUST_SRC: &str = "rust-src";
/// Why a command that builds a sysroot provisions [`RUST_SRC`].
pub const FOR_SYSROOT: &str = "needed to build core and alloc";

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

impl Toolchain {
    /// [`Toolchain::resolve`] after installing what is missing: the toolchain itself, then
    /// `components` and `targets`, each announced in one line giving `why`. Only toolchains rustup
    /// distributes are touched; a linked one (`rustup toolchain link`) is resolved as it is.
    pub fn provision(
        sh: &Shell,
        name: Option<&str>,
        components: &[&str],
        targets: &[&str],
        why: &str,
    ) -> Result<Toolchain> {
        let name = match name {
            Some(name) => name.to_owned(),
            None => pinned_toolchain()?,
        };
        if !is_distributed(&name) {
            return Toolchain::resolve(Some(&name));
        }
        // Without auto-install, which would install the default profile behind our back.
        let installed = cmd!(sh, "rustc +{name} -V")
            .env("RUSTUP_AUTO_INSTALL", "0")
            .quiet()
            .ignore_stdout()
            .ignore_stderr()
            .run()
            .is_ok();
        if !installed {
            let extras: Vec<&str> = components.iter().chain(targets).copied().collect();
            let with = if extras.is_empty() {
                String::new()
            } else {
                format!(" with {}", extras.join(", "))
            };
            eprintln!("info: installing toolchain {name}{with} ({why})");
            let components = components.iter().flat_map(|c| ["--component", c]);
            let targets = targets.iter().flat_map(|t| ["--target", t]);
            cmd!(
                sh,
                "rustup toolchain install {name} --profile minimal {components...} {targets...}"
            )
            .quiet()
            .run()?;
        }
        let toolchain = Toolchain::resolve(Some(&name))?;
        for component in components {
            if !toolchain.has_component(component) {
                eprintln!("info: adding {component} to toolchain {name} ({why})");
                cmd!(sh, "rustup component add {component} --toolchain {name}")
                    .quiet()
                    .run()?;
            }
        }
        for target in targets {
            if !toolchain.sysroot.join("lib/rustlib").join(target).is_dir() {
                eprintln!("info: adding target {target} to toolchain {name} ({why})");
                cmd!(sh, "rustup target add {target} --toolchain {name}")
                    .quiet()
                    .run()?;
            }
        }
        Ok(toolchain)
    }

    /// Whether the toolchain has `component`, by its files for rust-src (a copied toolchain can
    /// list it without having them) and by rustup's record for the others.
    fn has_component(&self, component: &str) -> bool {
        if component == RUST_SRC {
            return self.has_rust_src();
        }
        std::fs::read_to_string(self.sysroot.join("lib/rustlib/components"))
            .is_ok_and(|listed| listed.lines().any(|c| c == component))
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

/// The target directory, honouring CARGO_TARGET_DIR like cargo does (a fresh one means a build
/// from scratch).
pub fn target_root(sh: &Shell) -> PathBuf {
    sh.var_os("CARGO_TARGET_DIR")
        .map_or_else(|| project_root().join("target"), PathBuf::from)
}

/// Whether rustup installs `name` from its channels (`stable`, `nightly-2026-10-29`,
/// `1.99.1`, ...), so that it can add components, as opposed to a linked custom toolchain.
fn is_distributed(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_digit())
        || ["stable", "beta", "nightly"].iter().any(|channel| {
            name.strip_prefix(channel)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('-'))
        })
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
