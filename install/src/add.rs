//! Installing the target for one toolchain: the prebuilt sysroot the release has for its exact
//! rustc, else one built on this machine from the release's sources. Everything is downloaded
//! and checked before the toolchain is touched, and the toolchain changes only through
//! `transaction::install`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::download::Downloader;
use crate::error::InstallError;
use crate::manifest::{sha256_hex, Manifest, SysrootEntry, MANIFEST, MANIFEST_SHA256};
use crate::signature::{self, MANIFEST_SIG};
use crate::toolchain::Toolchain;
use crate::transaction::{self, Outcome};
use crate::ui::Ui;
use crate::unpack::{unpack_tar_gz, Limits};
use crate::Target;

pub struct Options<'a> {
    pub toolchain: &'a Toolchain,
    pub target: Target,
    pub release: &'a Release,
    /// Refuse to build locally: exit 5 when the release has no sysroot for this rustc.
    pub no_build: bool,
}

/// Asked with the plan (one line per thing to install) before anything is downloaded; an
/// error stops the install.
pub type Confirm<'a> = &'a dyn Fn(&str) -> Result<(), InstallError>;

/// How the target came to be installed.
#[derive(Debug, PartialEq, Eq)]
pub enum Installed {
    AlreadyInstalled,
    Prebuilt,
    BuiltLocally,
}

/// A release: its verified manifest and where its files are.
pub struct Release {
    pub manifest: Manifest,
    pub downloader: Downloader,
}

impl Release {
    /// Downloads `manifest.json` and checks its signature, against the release key this
    /// binary trusts, before reading anything in it.
    pub fn fetch(dist_server: &str, ui: &Ui) -> Result<Release, InstallError> {
        let trusted = signature::trusted_key().ok_or_else(|| {
            InstallError::Verify(
                "this hyperlight-run was built without a release key, so it cannot check any \
                 release; install one from a release (its install.sh), or build it with \
                 `cargo xtask install`"
                    .to_owned(),
            )
        })?;
        let downloader = Downloader::new(dist_server, ui.quiet)?;
        let text = downloader.fetch(MANIFEST, None)?;
        let origin = downloader.url(MANIFEST);
        let sig = downloader.fetch_optional(MANIFEST_SIG)?;
        signature::verify_file(&text, sig.as_deref(), &trusted, &origin)?;
        let sha = downloader.fetch(MANIFEST_SHA256, None)?;
        let manifest = Manifest::parse_verified(&text, &sha, &origin)?;
        Ok(Release {
            manifest,
            downloader,
        })
    }

    /// Downloads `url` (a file the manifest names) and checks its size and sha256.
    pub fn fetch_file(&self, url: &str) -> Result<Vec<u8>, InstallError> {
        let (sha256, size) = self
            .manifest
            .files()
            .get(url)
            .map(|(sha, size)| (sha.to_string(), *size))
            .ok_or_else(|| InstallError::Verify(format!("the manifest does not name {url}")))?;
        let data = self.downloader.fetch(url, Some(size))?;
        let actual = sha256_hex(&data);
        if actual != sha256 {
            return Err(InstallError::Hash {
                file: url.to_owned(),
                expected: sha256,
                actual,
            });
        }
        Ok(data)
    }

    /// The release's sysroot of `target` built by `toolchain`'s exact rustc.
    pub fn sysroot_for(&self, toolchain: &Toolchain, target: Target) -> Option<&SysrootEntry> {
        self.manifest
            .sysroots(target)
            .iter()
            .find(|entry| entry.commit_hash == toolchain.version.commit_hash)
    }
}

/// Installs `options.target` into `options.toolchain`.
pub fn add(options: &Options, ui: &Ui, confirm: Confirm) -> Result<Installed, InstallError> {
    let (toolchain, target, release) = (options.toolchain, options.target, options.release);
    check_writable(toolchain)?;
    let destination = target.dir(&toolchain.sysroot);
    match release.sysroot_for(toolchain, target) {
        Some(entry) => {
            if transaction::installed_sha256(&toolchain.sysroot, target)?.as_deref()
                == Some(entry.installed_sha256.as_str())
            {
                if target == Target::None {
                    // Reinstalling is the fix doctor names for a lost registration.
                    crate::runtime::register(&destination).map_err(write_error(toolchain))?;
                }
                return Ok(Installed::AlreadyInstalled);
            }
            confirm(&format!(
                "  {target} sysroot for rustc {} -> {}",
                toolchain.version.release,
                destination.display()
            ))?;
            install_prebuilt(release, entry, toolchain, target, ui)
        }
        None if options.no_build => Err(no_sysroot(release, toolchain, target)),
        None => {
            confirm(&format!(
                "  {target} sysroot for rustc {}, built on this machine -> {}",
                toolchain.version.release,
                destination.display()
            ))?;
            ui.say(&format!(
                "{} has no prebuilt {target} for rustc {}; building it on this machine",
                release.downloader.base(),
                toolchain.version
            ));
            let source = release.manifest.source(target).ok_or_else(|| {
                InstallError::Verify(format!(
                    "{} has neither a prebuilt {target} sysroot for rustc {} nor the sources to \
                     build one; use one of the toolchains it has (see `--no-build`)",
                    release.downloader.base(),
                    toolchain.version.release
                ))
            })?;
            let archive = release.fetch_file(&source.url)?;
            build_and_install(toolchain, target, ui, |work| {
                crate::build::unpack_source(&archive, &work.join("source"), target)
            })
        }
    }
}

fn install_prebuilt(
    release: &Release,
    entry: &SysrootEntry,
    toolchain: &Toolchain,
    target: Target,
    ui: &Ui,
) -> Result<Installed, InstallError> {
    ui.say(&format!("downloading {}", entry.url));
    let tarball = release.fetch_file(&entry.url)?;
    let scratch = Scratch::new()?;
    let payload = unpack_component(&tarball, &entry.url, scratch.path(), target)?;
    match transaction::install(&payload, &toolchain.sysroot, target)
        .map_err(write_error(toolchain))?
    {
        Outcome::AlreadyInstalled => Ok(Installed::AlreadyInstalled),
        Outcome::Installed => Ok(Installed::Prebuilt),
    }
}

/// Builds `target`'s sysroot from the source tree `source` returns (given a scratch directory)
/// and installs it.
pub fn build_and_install(
    toolchain: &Toolchain,
    target: Target,
    ui: &Ui,
    source: impl FnOnce(&Path) -> anyhow::Result<PathBuf>,
) -> Result<Installed, InstallError> {
    toolchain
        .ensure_rust_src(|message| ui.say(message))
        .map_err(|err| InstallError::Toolchain(format!("{err:#}")))?;
    let scratch = Scratch::new()?;
    let source = source(scratch.path())?;
    let out = scratch.path().join("sysroot");
    ui.say(&format!(
        "building {} for {target} with rustc {} ({})",
        target.libraries(),
        toolchain.version,
        target.build_time()
    ));
    crate::build::build_sysroot(
        &source,
        toolchain,
        target,
        &out,
        &scratch.path().join("work"),
        |progress| match progress {
            crate::build::Progress::Step(step) => ui.say(step),
            crate::build::Progress::Cargo(line) => ui.progress(line),
        },
    )?;
    match transaction::install(&out, &toolchain.sysroot, target).map_err(write_error(toolchain))? {
        Outcome::AlreadyInstalled => Ok(Installed::AlreadyInstalled),
        Outcome::Installed => Ok(Installed::BuiltLocally),
    }
}

/// Unpacks a sysroot component tarball into `scratch` and checks it holds exactly what its
/// `manifest.in` lists, all inside the target's directory. Returns the payload's root, a
/// sysroot-shaped tree for `transaction::install`.
fn unpack_component(
    tarball: &[u8],
    name: &str,
    scratch: &Path,
    target: Target,
) -> Result<PathBuf, InstallError> {
    let refuse =
        |why: String| InstallError::Verify(format!("{name}: {why}; nothing was installed"));
    let dest = scratch.join("component");
    let files = unpack_tar_gz(tarball, &dest, Limits::default())
        .map_err(|err| refuse(format!("cannot unpack it: {err}")))?;
    let package = name.trim_end_matches(".tar.gz");
    let component = target.component();
    let payload = dest.join(package).join(component);
    let listed = fs::read_to_string(payload.join("manifest.in")).map_err(|_| {
        refuse(format!(
            "no {component}/manifest.in: not a rust-installer package"
        ))
    })?;
    let prefix = format!("lib/rustlib/{target}/");
    let mut expected = BTreeSet::new();
    for line in listed.lines() {
        let path = line
            .strip_prefix("file:")
            .filter(|path| path.starts_with(&prefix))
            .ok_or_else(|| refuse(format!("it lists `{line}`, outside lib/rustlib/{target}")))?;
        expected.insert(PathBuf::from(package).join(component).join(path));
    }
    expected.insert(PathBuf::from(package).join(component).join("manifest.in"));
    expected.insert(PathBuf::from(package).join("components"));
    expected.insert(PathBuf::from(package).join("rust-installer-version"));
    let unpacked: BTreeSet<PathBuf> = files.into_iter().collect();
    if unpacked != expected {
        return Err(refuse(
            "it holds files its manifest.in does not list (or lacks listed ones)".to_owned(),
        ));
    }
    Ok(payload)
}

/// The error for a release without a sysroot of `target` for this rustc, listing what it has.
fn no_sysroot(release: &Release, toolchain: &Toolchain, target: Target) -> InstallError {
    let (sysroots, server) = (release.manifest.sysroots(target), release.downloader.base());
    let version = &toolchain.version;
    let mut message = format!(
        "no prebuilt {target} sysroot for your rustc {} (commit {}, {})\n       a prebuilt \
         sysroot only works with the exact rustc that built it (E0514 otherwise).",
        version.release,
        version.short_hash(),
        version.commit_date
    );
    if sysroots.is_empty() {
        message.push_str(&format!(
            "\n       {server} offers no {target} sysroots at all."
        ));
    } else {
        message.push_str(&format!("\n       {server} has {target} sysroots for:"));
        for entry in sysroots {
            message.push_str(&format!(
                "\n         rustc {} (commit {}, {})",
                entry.release,
                &entry.commit_hash[..entry.commit_hash.len().min(9)],
                entry.commit_date
            ));
        }
    }
    let stable = sysroots
        .iter()
        .map(|entry| entry.release.as_str())
        .find(|release| release.bytes().all(|b| b.is_ascii_digit() || b == b'.'))
        .unwrap_or("<release>");
    message.push_str(&format!(
        "\n       fix: run again without --no-build to build it on this machine ({}),\n            \
         or use one of those toolchains: pin it in your guest project's rust-toolchain.toml\n            \
         ([toolchain] channel = \"{stable}\") and install with --toolchain {stable}",
        target.build_time()
    ));
    InstallError::NoSysroot { message }
}

fn check_writable(toolchain: &Toolchain) -> Result<(), InstallError> {
    let rustlib = toolchain.sysroot.join("lib/rustlib");
    crate::probe_writable(&rustlib).map_err(|err| {
        InstallError::Toolchain(format!(
            "cannot write to {} ({err}); rustup toolchains live in your home directory; for a \
             system-wide rustc, run this as its owner (e.g. with sudo)",
            rustlib.display()
        ))
    })
}

fn write_error(toolchain: &Toolchain) -> impl Fn(anyhow::Error) -> InstallError + '_ {
    move |err| InstallError::Write {
        path: toolchain.target_dir(),
        reason: format!("{err:#}"),
    }
}

/// A temporary directory (under `$TMPDIR`) removed when dropped.
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new() -> Result<Scratch, InstallError> {
        let base = std::env::temp_dir();
        for attempt in 0..100u32 {
            let dir = base.join(format!(
                "hyperlight-install.{}.{attempt}",
                std::process::id()
            ));
            match fs::create_dir(&dir) {
                Ok(()) => return Ok(Scratch(dir)),
                Err(err) if err.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(err) => {
                    return Err(InstallError::Write {
                        path: dir,
                        reason: format!("{err}; set TMPDIR to a writable directory"),
                    })
                }
            }
        }
        Err(InstallError::Write {
            path: base,
            reason: "no free name for a temporary directory".to_owned(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}
