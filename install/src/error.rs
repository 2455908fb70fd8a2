//! What can stop an install, each case with the exit code install.sh documents and a message
//! that says what to do.

use std::path::PathBuf;

use crate::manifest::ManifestError;
use crate::signature::SignatureError;

/// Exit codes shared by install.sh and `hyperlight-run target` (README, "Installing from a
/// release").
pub mod exit {
    pub const UNEXPECTED: i32 = 1;
    pub const USAGE: i32 = 2;
    pub const PLATFORM: i32 = 3;
    pub const TOOLCHAIN: i32 = 4;
    pub const NO_SYSROOT: i32 = 5;
    pub const DOWNLOAD: i32 = 6;
    pub const VERIFY: i32 = 7;
    pub const WRITE: i32 = 8;
}

#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("no terminal to ask for confirmation; run again with -y (e.g. `sh -s -- -y`)")]
    NeedsConfirmation,
    /// The user answered no: nothing was installed, which is not a failure.
    #[error("nothing installed")]
    Declined,
    #[error("{0}")]
    Usage(String),
    #[error("{0}")]
    Toolchain(String),
    #[error("{message}")]
    NoSysroot { message: String },
    #[error("download of {url} failed: HTTP {status}{}", status_hint(*status))]
    Http { url: String, status: u16 },
    #[error("download of {url} failed: {reason}; check your connection and the dist server, then run again")]
    Network { url: String, reason: String },
    #[error("{file} is truncated or too long: got {actual} bytes, expected {expected}; the download was cut short or the dist server serves another file: run again")]
    Size {
        file: String,
        expected: u64,
        actual: u64,
    },
    #[error("{file} is corrupt: its sha256 does not match the manifest\n       expected sha256 {expected}\n       actual sha256   {actual}\n       nothing was installed; run again, and report it if it persists")]
    Hash {
        file: String,
        expected: String,
        actual: String,
    },
    #[error("{0}; a release may be being published right now: try again in a few minutes, and report it if it persists")]
    Manifest(#[from] ManifestError),
    #[error("{0}")]
    Verify(String),
    #[error("{0}; nothing was installed")]
    Signature(#[from] SignatureError),
    #[error("cannot write {path}: {reason}")]
    Write { path: PathBuf, reason: String },
    #[error("{0:#}")]
    Other(anyhow::Error),
}

fn status_hint(status: u16) -> &'static str {
    match status {
        404 => " (not found); check --dist-server / HYPERLIGHT_DIST_SERVER",
        500..=599 => " (server error); the dist server has a problem: try again later",
        _ => "; check --dist-server / HYPERLIGHT_DIST_SERVER",
    }
}

impl InstallError {
    pub fn exit_code(&self) -> i32 {
        match self {
            InstallError::Declined => 0,
            InstallError::NeedsConfirmation | InstallError::Usage(_) => exit::USAGE,
            InstallError::Toolchain(_) => exit::TOOLCHAIN,
            InstallError::NoSysroot { .. } => exit::NO_SYSROOT,
            InstallError::Http { .. }
            | InstallError::Network { .. }
            | InstallError::Size { .. } => exit::DOWNLOAD,
            InstallError::Hash { .. }
            | InstallError::Manifest(_)
            | InstallError::Verify(_)
            | InstallError::Signature(_) => exit::VERIFY,
            InstallError::Write { .. } => exit::WRITE,
            InstallError::Other(_) => exit::UNEXPECTED,
        }
    }
}

impl From<anyhow::Error> for InstallError {
    fn from(err: anyhow::Error) -> InstallError {
        match err.downcast::<InstallError>() {
            Ok(err) => err,
            Err(err) => InstallError::Other(err),
        }
    }
}
