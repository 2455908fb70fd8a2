//! Placeholder: the local sysroot build lands from the build branch.

use std::path::{Path, PathBuf};

use crate::toolchain::Toolchain;

pub fn build_sysroot(
    _source: &Path,
    _toolchain: &Toolchain,
    _out: &Path,
    _work: &Path,
    _progress: &mut dyn FnMut(&str),
) -> anyhow::Result<()> {
    anyhow::bail!("building locally is not available yet")
}

pub fn unpack_source(_archive: &[u8], _dest: &Path) -> anyhow::Result<PathBuf> {
    anyhow::bail!("building locally is not available yet")
}
