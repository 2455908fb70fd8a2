//! The one installer of the x86_64-hyperlight-none target: `hyperlight-run target add|remove|list`,
//! the release's install.sh (which hands over to `hyperlight-run`), the self-healing build
//! wrapper and `cargo xtask install` all install through this crate.

pub mod add;
pub mod build;
pub mod download;
pub mod error;
pub mod manifest;
pub mod runner;
pub mod runtime;
pub mod rustc;
pub mod settings;
pub mod signature;
pub mod toolchain;
pub mod transaction;
pub mod ui;
pub mod unpack;

/// The target this project distributes.
pub const TARGET: &str = "x86_64-hyperlight-none";
/// Its rust-installer component, as the install records and the manifest name it.
pub const COMPONENT: &str = "rust-std-x86_64-hyperlight-none";

/// Bytes as lowercase hex digits, as sha256sum and the signature file write them.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
