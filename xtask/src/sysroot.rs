//! `cargo xtask sysroot`: assemble the source tree (see `hyperlight_install::build`) from the
//! checkout and build the sysroot from it with the installer's own build.

use std::fs::File;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use hyperlight_install::build::{
    build_sysroot, copy_tree, Progress, CRATE_DIR, INCLUDE_DIR, RUNTIME_DIR, SPEC_FILE,
};
use hyperlight_install::c_objects::OBJECTS_DIR;
use hyperlight_install::Target;
use xshell::Shell;

use crate::toolchain::{project_root, target_root, Toolchain};
use crate::{c_headers, c_objects};

pub use hyperlight_install::build::VERSION_FILE;
pub use hyperlight_install::toolchain::target_dir;

/// The crates of the source tree: (its directory in the tree, in the checkout, what of it).
/// Besides them the tree has the target spec and the C headers `c_headers` collects.
///
/// The runtime's proc-macro crate goes twice: inside the runtime, where its path dependency
/// finds it (a sysroot build compiles a copy of the runtime's directory alone), and as a crate
/// of its own, since installing serves each directory of `src/` as a registry crate and a
/// registry crate's path dependency is looked up in its registry.
const CRATES: &[(&str, &str, &[&str])] = &[
    (RUNTIME_DIR, "guest", &["Cargo.toml", "src", "macros"]),
    (MACROS_DIR, "guest/macros", &["Cargo.toml", "src"]),
    (CRATE_DIR, "sysroot", &["Cargo.toml", "Cargo.lock", "src"]),
];
/// Where the runtime's proc-macro crate, `hyperlight-rt-macros`, is served from.
const MACROS_DIR: &str = "src/hyperlight-rt-macros";

pub fn default_out(toolchain: &Toolchain) -> PathBuf {
    project_root().join("target/sysroot").join(&toolchain.name)
}

/// The checkout's source tree of a target in `target/sysroot-src/<target>`, kept from being rewritten by another
/// xtask (a build for another toolchain, a dist) until dropped.
pub struct SourceTree {
    pub dir: PathBuf,
    /// How many C headers it has.
    pub headers: usize,
    _lock: File,
}

/// Assembles the checkout's source tree of `target`; `toolchain`'s cargo fetches the C headers
/// (of the no_std targets: C code in std guests is not supported yet). The runtime's sources
/// go only into the target guests build it for.
pub fn source_tree(sh: &Shell, toolchain: &Toolchain, target: Target) -> Result<SourceTree> {
    let root = target_root(sh);
    sh.create_dir(&root)?;
    let lock = File::create(root.join("sysroot-src.lock"))?;
    lock.lock().context("locking the sysroot source tree")?;
    let dir = root.join("sysroot-src").join(target.name());
    if dir.exists() {
        sh.remove_path(&dir)?;
    }
    let spec = Path::new("target-specs").join(format!("{target}.json"));
    copy_tree(&project_root().join(spec), &dir.join(SPEC_FILE))?;
    for (tree_dir, checkout_dir, entries) in CRATES {
        if *tree_dir != CRATE_DIR && !target.has_runtime() {
            continue;
        }
        for entry in *entries {
            let from = project_root().join(checkout_dir).join(entry);
            copy_tree(&from, &dir.join(tree_dir).join(entry))?;
        }
    }
    let headers = match target.has_std() {
        false => c_headers::write(sh, toolchain, &dir.join(INCLUDE_DIR))?,
        true => 0,
    };
    Ok(SourceTree {
        dir,
        headers,
        _lock: lock,
    })
}

pub fn build(sh: &Shell, toolchain: &Toolchain, target: Target, out: &Path) -> Result<()> {
    let source = source_tree(sh, toolchain, target)?;
    let work = target_root(sh)
        .join("sysroot-build")
        .join(target.name())
        .join(&toolchain.name);
    eprintln!(
        "building {} for {target} with {} ({})",
        target.libraries(),
        toolchain.name,
        toolchain.version.release
    );
    build_sysroot(
        &source.dir,
        toolchain,
        target,
        out,
        &work,
        |progress| match progress {
            Progress::Step(line) | Progress::Cargo(line) => eprintln!("{line}"),
        },
    )?;
    let headers = match source.headers {
        0 => String::new(),
        count => {
            let objects = c_objects::install(sh, toolchain, target, out)?;
            format!(" ({count} C headers in {INCLUDE_DIR}/, {objects} prebuilt C objects in {OBJECTS_DIR}/)")
        }
    };
    eprintln!(
        "{target} sysroot for {} ({}) written to {}{headers}",
        toolchain.name,
        toolchain.version.release,
        out.display(),
    );
    Ok(())
}
