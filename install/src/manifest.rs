//! `manifest.json`: what a release offers, the one file an installer reads first.
//!
//! The format is documented in docs/manifest.md. The manifest is verified against
//! `manifest.json.sig` (crate::signature) and `manifest.json.sha256` (sha256sum format), and
//! every file it names carries its sha256 and size. URLs are relative to the manifest's own location.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::signature::{self, SigningKey, MANIFEST_SIG};
use crate::Target;

pub const MANIFEST: &str = "manifest.json";
pub const MANIFEST_SHA256: &str = "manifest.json.sha256";
/// Bumped on any change an older installer would misread.
pub const MANIFEST_VERSION: &str = "2";

/// Why a manifest cannot be used. The messages say what is wrong; callers add the fix that
/// fits their side (a user installing, or a maintainer publishing).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ManifestError {
    #[error("{origin} is not a valid manifest ({reason})")]
    Malformed { origin: String, reason: String },
    #[error("{origin} has manifest-version {version:?}, which this version does not understand")]
    UnsupportedVersion { origin: String, version: String },
    #[error("{origin}: sha256 is {actual}, but its .sha256 file says {expected}")]
    HashMismatch {
        origin: String,
        expected: String,
        actual: String,
    },
}

/// The target whose entries sit at the top level of the manifest, where readers of format 2
/// before `targets` look; every other target has an entry in `targets`.
pub const TOP_LEVEL_TARGET: Target = Target::None;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Manifest {
    pub manifest_version: String,
    /// UTC day of the newest dist merged into it, `YYYY-MM-DD`.
    pub date: String,
    /// [`TOP_LEVEL_TARGET`]'s name, component, sysroots and source.
    pub target: String,
    pub component: String,
    /// One per exact rustc, newest commit date first.
    pub sysroots: Vec<SysrootEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner: Option<RunnerEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceEntry>,
    /// The other targets by name (readers keep names they do not know, and ignore them).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub targets: BTreeMap<String, TargetEntry>,
}

/// A target other than [`TOP_LEVEL_TARGET`]: what the top level holds for that one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct TargetEntry {
    pub component: String,
    /// One per exact rustc, newest commit date first.
    pub sysroots: Vec<SysrootEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceEntry>,
}

/// A sysroot component tarball and the rustc it works with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SysrootEntry {
    pub release: String,
    pub commit_hash: String,
    pub commit_date: String,
    pub host: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
    /// sha256 of the `sha256sum` listing of the installed files (see docs/manifest.md): lets an
    /// installer tell "already installed" without downloading anything.
    pub installed_sha256: String,
}

/// The `hyperlight-run` executable itself (static, not an archive): install.sh downloads it,
/// checks it and hands over to it, and it installs everything else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct RunnerEntry {
    pub version: String,
    pub host: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

/// The sources a sysroot is built from (target spec, sysroot crate, runtime, C headers): what
/// an installer builds locally for a rustc the release has no prebuilt sysroot for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct SourceEntry {
    pub version: String,
    pub url: String,
    pub sha256: String,
    pub size: u64,
}

impl Manifest {
    pub fn new(date: String) -> Manifest {
        Manifest {
            manifest_version: MANIFEST_VERSION.to_owned(),
            date,
            target: TOP_LEVEL_TARGET.name().to_owned(),
            component: TOP_LEVEL_TARGET.component().to_owned(),
            sysroots: Vec::new(),
            runner: None,
            source: None,
            targets: BTreeMap::new(),
        }
    }

    /// `target`'s sysroots, newest commit date first.
    pub fn sysroots(&self, target: Target) -> &[SysrootEntry] {
        if target == TOP_LEVEL_TARGET {
            return &self.sysroots;
        }
        self.targets
            .get(target.name())
            .map_or(&[], |entry| &entry.sysroots)
    }

    /// The sources `target`'s sysroot is built from.
    pub fn source(&self, target: Target) -> Option<&SourceEntry> {
        if target == TOP_LEVEL_TARGET {
            return self.source.as_ref();
        }
        self.targets.get(target.name())?.source.as_ref()
    }

    pub fn set_source(&mut self, target: Target, source: SourceEntry) {
        *self.source_mut(target) = Some(source);
    }

    /// Every target's sysroots, with the target's name.
    pub fn all_sysroots(&self) -> impl Iterator<Item = (&str, &SysrootEntry)> {
        let top = self
            .sysroots
            .iter()
            .map(|entry| (self.target.as_str(), entry));
        let others = self.targets.iter().flat_map(|(name, target)| {
            target
                .sysroots
                .iter()
                .map(move |entry| (name.as_str(), entry))
        });
        top.chain(others)
    }

    /// Every target's list of sysroots.
    pub fn sysroot_lists_mut(&mut self) -> impl Iterator<Item = &mut Vec<SysrootEntry>> {
        std::iter::once(&mut self.sysroots)
            .chain(self.targets.values_mut().map(|target| &mut target.sysroots))
    }

    fn target_entry(&mut self, name: &str, component: &str) -> &mut TargetEntry {
        self.targets
            .entry(name.to_owned())
            .or_insert_with(|| TargetEntry {
                component: component.to_owned(),
                sysroots: Vec::new(),
                source: None,
            })
    }

    fn sysroots_mut(&mut self, target: Target) -> &mut Vec<SysrootEntry> {
        if target == TOP_LEVEL_TARGET {
            return &mut self.sysroots;
        }
        &mut self
            .target_entry(target.name(), target.component())
            .sysroots
    }

    fn source_mut(&mut self, target: Target) -> &mut Option<SourceEntry> {
        if target == TOP_LEVEL_TARGET {
            return &mut self.source;
        }
        &mut self.target_entry(target.name(), target.component()).source
    }

    /// Parses a manifest, `source` naming it in errors.
    pub fn parse(text: &[u8], source: &str) -> Result<Manifest, ManifestError> {
        let value: serde_json::Value =
            serde_json::from_slice(text).map_err(|err| ManifestError::Malformed {
                origin: source.to_owned(),
                reason: err.to_string(),
            })?;
        let version = value
            .get("manifest-version")
            .and_then(|v| v.as_str())
            .unwrap_or("");
        if version.split('.').next() != Some(MANIFEST_VERSION) {
            return Err(ManifestError::UnsupportedVersion {
                origin: source.to_owned(),
                version: version.to_owned(),
            });
        }
        // From the text again, not from `value`: that would keep the last of a repeated key
        // silently, where the derived parser refuses it (install.sh does too).
        let manifest: Manifest =
            serde_json::from_slice(text).map_err(|err| ManifestError::Malformed {
                origin: source.to_owned(),
                reason: err.to_string(),
            })?;
        for url in manifest.urls() {
            if !is_safe_file_name(url) {
                return Err(ManifestError::Malformed {
                    origin: source.to_owned(),
                    reason: format!("url {url:?} is not a plain file name"),
                });
            }
        }
        Ok(manifest)
    }

    /// Parses `text` after checking it against the sha256sum line `sha_line`.
    pub fn parse_verified(
        text: &[u8],
        sha_line: &[u8],
        source: &str,
    ) -> Result<Manifest, ManifestError> {
        let expected = String::from_utf8_lossy(sha_line)
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_owned();
        let actual = sha256_hex(text);
        if expected != actual {
            return Err(ManifestError::HashMismatch {
                origin: source.to_owned(),
                expected,
                actual,
            });
        }
        Manifest::parse(text, source)
    }

    /// The JSON text, pretty-printed with a final newline, and its `.sha256` line.
    pub fn render(&self) -> (String, String) {
        let mut json = serde_json::to_string_pretty(self).expect("a manifest always serializes");
        json.push('\n');
        let sha = format!("{}  {MANIFEST}\n", sha256_hex(json.as_bytes()));
        (json, sha)
    }

    /// Writes `manifest.json`, its `.sha256` and its `.sig` by `key` into `dir`.
    pub fn write_dir(&self, dir: &Path, key: &SigningKey) -> std::io::Result<()> {
        let (json, sha) = self.render();
        std::fs::write(
            dir.join(MANIFEST_SIG),
            signature::sign(json.as_bytes(), key),
        )?;
        std::fs::write(dir.join(MANIFEST), json)?;
        std::fs::write(dir.join(MANIFEST_SHA256), sha)?;
        Ok(())
    }

    /// Adds or replaces a sysroot of `target`, keeping one entry per rustc commit.
    pub fn add_sysroot(&mut self, target: Target, entry: SysrootEntry) {
        add_sysroot(self.sysroots_mut(target), entry);
    }

    /// Merges `newer` into `self`: its sysroots replace those of the same target for the same
    /// rustc commit, all others are kept; its runner and sources (if any) replace ours; the date
    /// is the later one.
    pub fn merge(&mut self, newer: Manifest) {
        for entry in newer.sysroots {
            add_sysroot(&mut self.sysroots, entry);
        }
        if newer.runner.is_some() {
            self.runner = newer.runner;
        }
        if newer.source.is_some() {
            self.source = newer.source;
        }
        for (name, target) in newer.targets {
            let ours = self.target_entry(&name, &target.component);
            for entry in target.sysroots {
                add_sysroot(&mut ours.sysroots, entry);
            }
            if target.source.is_some() {
                ours.source = target.source;
            }
        }
        if newer.date > self.date {
            self.date = newer.date;
        }
        self.manifest_version = MANIFEST_VERSION.to_owned();
    }

    /// Every file the manifest names.
    pub fn urls(&self) -> impl Iterator<Item = &str> {
        self.files().into_keys()
    }

    /// File name → (sha256, size) of every file the manifest names.
    pub fn files(&self) -> BTreeMap<&str, (&str, u64)> {
        let sysroots = self
            .all_sysroots()
            .map(|(_, s)| (s.url.as_str(), (s.sha256.as_str(), s.size)));
        let runner = self
            .runner
            .iter()
            .map(|r| (r.url.as_str(), (r.sha256.as_str(), r.size)));
        let sources = self
            .source
            .iter()
            .chain(self.targets.values().filter_map(|t| t.source.as_ref()))
            .map(|s| (s.url.as_str(), (s.sha256.as_str(), s.size)));
        sysroots.chain(runner).chain(sources).collect()
    }
}

/// Adds `entry` to `sysroots`, replacing one for the same rustc commit, newest first.
fn add_sysroot(sysroots: &mut Vec<SysrootEntry>, entry: SysrootEntry) {
    sysroots.retain(|old| old.commit_hash != entry.commit_hash);
    sysroots.push(entry);
    sysroots.sort_by(|a, b| {
        (&b.commit_date, &b.release, &b.commit_hash).cmp(&(
            &a.commit_date,
            &a.release,
            &a.commit_hash,
        ))
    });
}

/// A relative URL we are willing to join to a base: a single path segment.
pub fn is_safe_file_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
}

/// The manifest's `installed-sha256`: sha256 of what `sha256sum` prints for the component's
/// files, given as (path relative to the sysroot, sha256 hex) sorted bytewise by path.
pub fn installed_sha256<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let listing: String = files
        .into_iter()
        .map(|(path, sha256)| format!("{sha256}  {path}\n"))
        .collect();
    sha256_hex(listing.as_bytes())
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    crate::hex(&Sha256::digest(bytes))
}

/// Today's UTC date, or that of `SOURCE_DATE_EPOCH` when set (reproducible builds convention).
pub fn release_date() -> String {
    let secs = std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_secs() as i64)
                .unwrap_or(0)
        });
    let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// Days since 1970-01-01 to a proleptic Gregorian date (H. Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sysroot(release: &str, hash: &str, date: &str) -> SysrootEntry {
        SysrootEntry {
            release: release.into(),
            commit_hash: hash.into(),
            commit_date: date.into(),
            host: "x86_64-unknown-linux-gnu".into(),
            url: format!("rust-std-{release}-{hash}-x86_64-hyperlight-none.tar.gz"),
            sha256: "00".repeat(32),
            size: 1,
            installed_sha256: "11".repeat(32),
        }
    }

    #[test]
    fn merge_keeps_old_toolchains_and_replaces_same_commit() {
        let mut old = Manifest::new("2026-01-01".into());
        old.add_sysroot(Target::None, sysroot("1.94.0", "aaa", "2026-01-01"));
        old.add_sysroot(Target::None, sysroot("1.95.0", "bbb", "2026-02-01"));
        let mut new = Manifest::new("2026-03-01".into());
        let mut replaced = sysroot("1.95.0", "bbb", "2026-02-01");
        replaced.size = 2;
        new.add_sysroot(Target::None, replaced.clone());
        new.add_sysroot(Target::None, sysroot("1.97.0-nightly", "ccc", "2026-03-01"));
        old.merge(new);
        let releases: Vec<_> = old.sysroots.iter().map(|s| s.release.as_str()).collect();
        assert_eq!(releases, ["1.97.0-nightly", "1.95.0", "1.94.0"]);
        assert_eq!(old.sysroots[1], replaced);
        assert_eq!(old.date, "2026-03-01");
    }

    #[test]
    fn other_targets_live_apart_from_the_top_level_one_and_merge_alike() {
        let hermit = |release, hash, date| SysrootEntry {
            url: format!("rust-std-{release}-{hash}-x86_64-hyperlight-hermit.tar.gz"),
            ..sysroot(release, hash, date)
        };
        let mut old = Manifest::new("2026-01-01".into());
        old.add_sysroot(Target::None, sysroot("1.95.0", "bbb", "2026-02-01"));
        old.add_sysroot(Target::Hermit, hermit("1.95.0", "bbb", "2026-02-01"));
        // Readers that know only the top level see x86_64-hyperlight-none's sysroot alone.
        let (json, _) = old.render();
        let value: serde_json::Value = serde_json::from_str(&json).unwrap();
        assert_eq!(value["sysroots"].as_array().unwrap().len(), 1);
        assert_eq!(
            value["targets"]["x86_64-hyperlight-hermit"]["component"],
            "rust-std-x86_64-hyperlight-hermit"
        );
        let parsed = Manifest::parse(json.as_bytes(), "m").unwrap();
        assert_eq!(parsed, old);
        assert_eq!(
            parsed.sysroots(Target::Hermit)[0].url,
            old.targets["x86_64-hyperlight-hermit"].sysroots[0].url
        );
        assert_eq!(parsed.files().len(), 2);

        let mut new = Manifest::new("2026-03-01".into());
        new.add_sysroot(Target::Hermit, hermit("1.96.0", "ccc", "2026-03-01"));
        new.set_source(
            Target::Hermit,
            SourceEntry {
                version: "0.2.0".into(),
                url: "hyperlight-hermit-src-0.2.0.tar.gz".into(),
                sha256: "22".repeat(32),
                size: 3,
            },
        );
        old.merge(new);
        let releases: Vec<_> = old
            .sysroots(Target::Hermit)
            .iter()
            .map(|s| s.release.as_str())
            .collect();
        assert_eq!(releases, ["1.96.0", "1.95.0"]);
        assert_eq!(old.sysroots(Target::None).len(), 1);
        assert_eq!(
            old.source(Target::Hermit).unwrap().url,
            "hyperlight-hermit-src-0.2.0.tar.gz"
        );
        assert_eq!(old.source(Target::None), None);
        assert_eq!(old.files().len(), 4);

        // A target this version does not know is kept, and names its files like any other.
        let future = json.replace("x86_64-hyperlight-hermit\"", "aarch64-hyperlight-hermit\"");
        let parsed = Manifest::parse(future.as_bytes(), "m").unwrap();
        assert!(parsed.sysroots(Target::Hermit).is_empty());
        assert!(parsed.targets.contains_key("aarch64-hyperlight-hermit"));
        assert_eq!(parsed.files().len(), 2);
    }

    #[test]
    fn round_trip_and_verification() {
        let mut manifest = Manifest::new("2026-01-01".into());
        manifest.add_sysroot(Target::None, sysroot("1.95.0", "bbb", "2026-02-01"));
        let (json, sha) = manifest.render();
        assert_eq!(
            Manifest::parse_verified(json.as_bytes(), sha.as_bytes(), "m").unwrap(),
            manifest
        );
        let err = Manifest::parse_verified(b"{}", sha.as_bytes(), "m").unwrap_err();
        assert!(matches!(err, ManifestError::HashMismatch { .. }));
        let future = json.replace("\"manifest-version\": \"2\"", "\"manifest-version\": \"3\"");
        assert!(matches!(
            Manifest::parse(future.as_bytes(), "m").unwrap_err(),
            ManifestError::UnsupportedVersion { .. }
        ));
        let evil = json.replace("rust-std-1.95.0", "../rust-std-1.95.0");
        assert!(matches!(
            Manifest::parse(evil.as_bytes(), "m").unwrap_err(),
            ManifestError::Malformed { .. }
        ));
        // A repeated key: install.sh would read the first, serde_json's Value the last.
        let repeated = json.replacen("\"url\": ", "\"url\": \"other.tar.gz\", \"url\": ", 1);
        assert!(matches!(
            Manifest::parse(repeated.as_bytes(), "m").unwrap_err(),
            ManifestError::Malformed { .. }
        ));
    }

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(20_454), (2026, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
    }
}
