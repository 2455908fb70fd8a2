//! What a compiler says about itself. A prebuilt sysroot only works with the exact rustc that
//! built it (E0514 otherwise), so compilers are told apart by `rustc -vV`, not by name.

use std::fmt;

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

/// `rustc -vV` printed no line for `key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingField {
    pub key: &'static str,
}

impl fmt::Display for MissingField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`rustc -vV` printed no `{}` line", self.key)
    }
}

impl std::error::Error for MissingField {}

impl RustcVersion {
    pub fn parse(verbose: &str) -> Result<RustcVersion, MissingField> {
        let field = |key: &'static str| {
            verbose
                .lines()
                .find_map(|line| line.strip_prefix(key)?.strip_prefix(": "))
                .map(str::to_owned)
                .ok_or(MissingField { key })
        };
        Ok(RustcVersion {
            release: field("release")?,
            commit_hash: field("commit-hash")?,
            commit_date: field("commit-date")?,
            host: field("host")?,
            verbose: verbose.trim_end().to_owned() + "\n",
        })
    }

    /// The first 9 digits of the commit, as rustc's own `-V` shows it.
    pub fn short_hash(&self) -> &str {
        &self.commit_hash[..self.commit_hash.len().min(9)]
    }
}

/// `1.99.1 (58cf8f9c3 2026-10-13)`: how messages name a compiler.
impl fmt::Display for RustcVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} ({} {})",
            self.release,
            self.short_hash(),
            self.commit_date
        )
    }
}
