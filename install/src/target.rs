//! The targets this project distributes, and what differs between them.

use std::fmt;
use std::path::{Path, PathBuf};

/// A target this project distributes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Target {
    /// `#![no_std]` guests on the `hyperlight-rt` runtime.
    None,
    /// std guests: std's Hermit platform over the Hermit ABI the runtime implements.
    Hermit,
    /// `#![no_std]` AArch64 guests: official Hyperlight guests (hyperlight-guest-bin) for
    /// Hyperlight's AArch64 hosts. The runtime and `hyperlight-run` are x86-64 only.
    Aarch64,
}

impl Target {
    pub const ALL: [Target; 3] = [Target::None, Target::Hermit, Target::Aarch64];

    pub const fn name(self) -> &'static str {
        match self {
            Target::None => "x86_64-hyperlight-none",
            Target::Hermit => "x86_64-hyperlight-hermit",
            Target::Aarch64 => "aarch64-hyperlight-none",
        }
    }

    /// Its rust-installer component, as the install records and the manifest name it.
    pub const fn component(self) -> &'static str {
        match self {
            Target::None => "rust-std-x86_64-hyperlight-none",
            Target::Hermit => "rust-std-x86_64-hyperlight-hermit",
            Target::Aarch64 => "rust-std-aarch64-hyperlight-none",
        }
    }

    /// The targets a command names, each once; x86_64-hyperlight-none when it names none.
    pub fn or_default(mut targets: Vec<Target>) -> Vec<Target> {
        if targets.is_empty() {
            targets.push(Target::None);
        }
        targets.sort();
        targets.dedup();
        targets
    }

    pub fn from_name(name: &str) -> Option<Target> {
        Target::ALL.into_iter().find(|target| target.name() == name)
    }

    /// Its directory in a sysroot: `lib/rustlib/<name>`.
    pub fn dir(self, sysroot: &Path) -> PathBuf {
        sysroot.join("lib/rustlib").join(self.name())
    }

    /// Whether its sysroot has std (else core, alloc and compiler_builtins alone).
    pub const fn has_std(self) -> bool {
        matches!(self, Target::Hermit)
    }

    /// Whether its guests run on this project's runtime (`hyperlight-rt`, x86-64 only), whose
    /// sources the target then carries. AArch64 guests are official Hyperlight guests.
    pub const fn has_runtime(self) -> bool {
        !matches!(self, Target::Aarch64)
    }

    /// What the sysroot holds, for messages: "core, alloc and compiler_builtins".
    pub const fn libraries(self) -> &'static str {
        match self {
            Target::None | Target::Aarch64 => "core, alloc and compiler_builtins",
            Target::Hermit => "std, test and their dependencies",
        }
    }

    /// Its guest projects' `.cargo/config.toml` template: the file in templates/, which a
    /// release serves under the same name.
    pub const fn guest_config_file(self) -> &'static str {
        match self {
            Target::None | Target::Aarch64 => "cargo-config.toml",
            Target::Hermit => "cargo-config-std.toml",
        }
    }

    /// About how long building its sysroot takes, for the message that announces a build.
    pub const fn build_time(self) -> &'static str {
        match self {
            Target::None | Target::Aarch64 => "about a minute",
            Target::Hermit => "a few minutes",
        }
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A target name this project does not distribute.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown target `{0}`; this project distributes {known}",
    known = known_targets()
)]
pub struct UnknownTarget(pub String);

/// "a, b and c".
fn known_targets() -> String {
    let names = Target::ALL.map(Target::name);
    let (last, rest) = names.split_last().unwrap();
    format!("{} and {last}", rest.join(", "))
}

impl std::str::FromStr for Target {
    type Err = UnknownTarget;

    fn from_str(name: &str) -> Result<Target, UnknownTarget> {
        Target::from_name(name).ok_or_else(|| UnknownTarget(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_known_ones() {
        for target in Target::ALL {
            assert_eq!(target.name().parse::<Target>(), Ok(target));
            assert_eq!(target.component(), format!("rust-std-{target}"));
        }
        assert_eq!(
            "x86_64-unknown-hermit"
                .parse::<Target>()
                .unwrap_err()
                .to_string(),
            "unknown target `x86_64-unknown-hermit`; this project distributes \
             x86_64-hyperlight-none, x86_64-hyperlight-hermit and aarch64-hyperlight-none"
        );
    }
}
