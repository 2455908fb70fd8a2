//! The release signing key (docs/manifest.md, "Signature"): `cargo xtask keygen`, and the one
//! resolution of the key that dist and publish sign with and that runner builds trust.

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hyperlight_install::signature::{PublicKey, SigningKey};

use crate::toolchain::project_root;

/// A file holding the signing key, used when `--signing-key` is not given (release.yml writes
/// the repository secret to a temporary file and names it here).
pub const SIGNING_KEY_ENV: &str = "HYPERLIGHT_SIGNING_KEY";

#[derive(clap::Args, Debug, Default)]
pub struct KeyArg {
    /// The signing key file (`cargo xtask keygen`); default: the file $HYPERLIGHT_SIGNING_KEY
    /// names, else the development key target/dist-key/development.key, made on first use.
    #[arg(long = "signing-key", value_name = "FILE")]
    pub signing_key: Option<PathBuf>,
}

/// Never committed (target/ is ignored): every clone has its own, so its releases and runner
/// builds only trust each other.
fn development_key() -> PathBuf {
    project_root().join("target/dist-key/development.key")
}

/// `cargo xtask keygen --out FILE`: a new key in FILE (mode 0600), never replacing one, and its
/// public key in FILE.pub.
pub fn keygen(out: &Path) -> Result<PublicKey> {
    let key = SigningKey::generate().context("no random numbers for a new key")?;
    match key.write_new(out) {
        Err(err) if err.kind() == io::ErrorKind::AlreadyExists => bail!(
            "{} already exists; refusing to replace a signing key (remove it first if you mean to)",
            out.display()
        ),
        result => result.with_context(|| format!("cannot write {}", out.display()))?,
    }
    let public = key.public_key();
    let mut pub_path = OsString::from(out);
    pub_path.push(".pub");
    write_public_key(Path::new(&pub_path), &public)?;
    Ok(public)
}

/// The key releases are signed with: `flag` (`--signing-key`), else the file
/// $HYPERLIGHT_SIGNING_KEY names, else the development key, with a warning.
pub fn resolve(flag: Option<&Path>) -> Result<SigningKey> {
    if let Some(path) = flag {
        return SigningKey::read(path);
    }
    if let Some(path) = std::env::var_os(SIGNING_KEY_ENV).filter(|p| !p.is_empty()) {
        return SigningKey::read(Path::new(&path)).with_context(|| format!("${SIGNING_KEY_ENV}"));
    }
    let path = development_key();
    eprintln!(
        "warning: using the development key {} (pass --signing-key or set {SIGNING_KEY_ENV} for a release)",
        path.display()
    );
    if !path.exists() {
        std::fs::create_dir_all(path.parent().unwrap())?;
        // Another xtask may create it at the same time: then its key is the one.
        if let Err(err) = keygen(&path) {
            if !path.exists() {
                return Err(err);
            }
        }
    }
    SigningKey::read(&path)
}

/// The public half of [`resolve`]'s key: what runner builds trust, and what install.sh embeds.
pub fn public_key(flag: Option<&Path>) -> Result<PublicKey> {
    Ok(resolve(flag)?.public_key())
}

/// `path` holding `key` as one line of hex, as FILE.pub and a release's release-key.pub do.
pub fn write_public_key(path: &Path, key: &PublicKey) -> Result<()> {
    std::fs::write(path, format!("{key}\n"))
        .with_context(|| format!("cannot write {}", path.display()))
}
