//! The one installer of the x86_64-hyperlight-none target: `hyperlight-run target add|remove|list`,
//! the release's install.sh (which hands over to `hyperlight-run`), the self-healing build
//! wrapper and `cargo xtask install` all install through this crate.

#[cfg(feature = "download")]
pub mod add;
pub mod build;
pub mod c_objects;
#[cfg(feature = "download")]
pub mod download;
pub mod error;
pub mod manifest;
pub mod runner;
pub mod runtime;
pub mod rustc;
pub mod settings;
pub mod signature;
pub mod target;
pub mod toolchain;
pub mod transaction;
#[cfg(feature = "download")]
pub mod ui;
pub mod unpack;

pub use target::Target;

/// The target releases distribute (x86_64-hyperlight-hermit is built and installed from a
/// checkout so far).
pub const TARGET: &str = Target::None.name();
/// Its rust-installer component, as the install records and the manifest name it.
pub const COMPONENT: &str = Target::None.component();

/// Whether files can be created in `dir`, or, when it does not exist yet, in its nearest
/// existing ancestor (where creating it would start). The probe file is removed at once, so an
/// install refused here has changed nothing.
pub fn probe_writable(dir: &std::path::Path) -> std::io::Result<()> {
    let existing = dir
        .ancestors()
        .find(|ancestor| ancestor.exists())
        .unwrap_or(std::path::Path::new("/"));
    let probe = existing.join(format!(".hyperlight-write-test-{}", std::process::id()));
    std::fs::File::create(&probe).and_then(|_| std::fs::remove_file(&probe))
}

/// Bytes as lowercase hex digits, as sha256sum and the signature file write them.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
