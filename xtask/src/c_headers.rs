//! The C headers a sysroot ships for guests with C code: the libc that official Hyperlight
//! guests link (hyperlight-libc, picolibc inside), in `<sysroot>/lib/rustlib/<target>/include`.
//!
//! The package is pinned by `sysroot/c-headers/Cargo.lock` and fetched by cargo, so the headers
//! are the checksummed content of one exact crate version: two builds copy the same bytes.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use crate::toolchain::{project_root, Toolchain};

const PACKAGE: &str = "hyperlight-libc";

/// Header directories of the package, in the order its own build script lays them out (a
/// later directory wins; they do not overlap in the pinned version).
const HEADER_DIRS: &[&str] = &[
    "third_party/picolibc/libc/include",
    "third_party/picolibc/libc/stdio",
    "include",
];

pub fn manifest() -> PathBuf {
    project_root().join("sysroot/c-headers/Cargo.toml")
}

/// Copies every `.h` of the pinned package into `include_dir`; returns how many.
pub fn write(sh: &Shell, toolchain: &Toolchain, include_dir: &Path) -> Result<usize> {
    let source = package_dir(sh, toolchain)?;
    let mut copied = 0;
    for dir in HEADER_DIRS {
        let from = source.join(dir);
        for header in headers_under(&from)? {
            let dest = include_dir.join(header.strip_prefix(&from).unwrap());
            fs::create_dir_all(dest.parent().unwrap())?;
            fs::copy(&header, &dest)
                .with_context(|| format!("copying {} to {}", header.display(), dest.display()))?;
            copied += 1;
        }
    }
    if copied == 0 {
        bail!("{PACKAGE} in {} has no headers", source.display());
    }
    Ok(copied)
}

/// Where cargo unpacked the pinned package (downloading it if needed).
fn package_dir(sh: &Shell, toolchain: &Toolchain) -> Result<PathBuf> {
    let manifest = manifest();
    let name = &toolchain.name;
    let metadata = cmd!(
        sh,
        "cargo +{name} metadata --locked --format-version 1 --manifest-path {manifest}"
    )
    .read()
    .with_context(|| format!("fetching {PACKAGE} as pinned by {}", manifest.display()))?;
    let metadata: serde_json::Value = serde_json::from_str(&metadata)?;
    let manifest_path = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|package| package["name"] == PACKAGE)
        .and_then(|package| package["manifest_path"].as_str())
        .with_context(|| format!("cargo metadata lists no {PACKAGE}"))?;
    Ok(Path::new(manifest_path).parent().unwrap().to_path_buf())
}

/// Every `.h` file below `dir`, sorted so the copy order never depends on the file system.
fn headers_under(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut headers = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        for entry in fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|ext| ext == "h") {
                headers.push(path);
            }
        }
    }
    headers.sort();
    Ok(headers)
}
