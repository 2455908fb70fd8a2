//! What can go wrong while making or shipping a release, each case saying how to fix it.

use std::path::PathBuf;

use hyperlight_install::manifest::ManifestError;
use hyperlight_install::signature::{PublicKey, SignatureError, MANIFEST_SIG};

#[derive(Debug, thiserror::Error)]
pub enum DistError {
    /// A `--sysroot` directory without the files `cargo xtask sysroot` writes.
    #[error(
        "{} is not a sysroot built by `cargo xtask sysroot` (no lib/rustlib/<target>/rustc-version \
         for the targets to pack); build one with `cargo xtask sysroot --out {}` or drop `--sysroot`",
        dir.display(),
        dir.display()
    )]
    NotASysroot { dir: PathBuf },
    /// The toolchain lacks the standard library of a target the release needs.
    #[error(
        "toolchain `{toolchain}` has no standard library for {target}; \
         run `rustup target add {target} --toolchain {toolchain}`"
    )]
    MissingTarget { target: String, toolchain: String },
    /// A manifest written by a newer version of this tool.
    #[error(
        "{origin} has manifest-version {version:?}, which this xtask does not understand; \
         update this repository (git pull) before publishing"
    )]
    UnsupportedManifest { origin: String, version: String },
    /// A manifest that is not valid JSON of the documented shape.
    #[error(
        "{origin} is not a valid manifest ({reason}); regenerate it with `cargo xtask dist` \
         or, for a broken manifest at the destination, delete it there and publish again"
    )]
    BadManifest { origin: String, reason: String },
    /// A file whose sha256 is not the one recorded for it.
    #[error(
        "{file}: sha256 is {actual}, expected {expected}; the file is corrupt or stale: \
         run `cargo xtask dist` again"
    )]
    HashMismatch {
        file: String,
        expected: String,
        actual: String,
    },
    /// A file the manifest names but the directory lacks.
    #[error(
        "{} is named by the manifest but missing; run `cargo xtask dist` again",
        file.display()
    )]
    MissingArtifact { file: PathBuf },
    /// A server answered with an error status.
    #[error("{method} {url} failed: HTTP {status}{}", http_detail(method, *status, body))]
    Http {
        method: &'static str,
        url: String,
        status: u16,
        body: String,
    },
    /// No connection or a broken one.
    #[error("cannot reach {url}: {reason}; check the address and that the server is running")]
    Network { url: String, reason: String },
    /// `--to` is neither a URL nor `github:OWNER/REPO@TAG`.
    #[error(
        "`--to {dest}` is not understood; use an http(s):// base URL or github:OWNER/REPO@TAG"
    )]
    BadDestination { dest: String },
    #[error(
        "publishing to GitHub needs a token: set GITHUB_TOKEN to a token that may write releases \
         of {repo} (in a workflow: `permissions: contents: write` and \
         `GITHUB_TOKEN: ${{{{ secrets.GITHUB_TOKEN }}}}`)"
    )]
    MissingToken { repo: String },
    /// The manifest already at the destination cannot be merged with.
    #[error(
        "the manifest.json already at {dest} cannot be merged with ({reason}); nothing was \
         uploaded: repair or delete manifest.json, manifest.json.sha256 and {MANIFEST_SIG} \
         there first (after an interrupted publish, delete them and publish the release again)"
    )]
    RemoteManifest { dest: String, reason: String },
    /// A dist directory whose manifest the signing key in use did not sign.
    #[error(
        "{}/manifest.json is not signed by the signing key in use, {key} ({reason}); dist, \
         --include and publish of one release take one key: make that dist again with it \
         (--signing-key FILE or ${})",
        dir.display(),
        crate::signing::SIGNING_KEY_ENV
    )]
    UnsignedDist {
        dir: PathBuf,
        key: PublicKey,
        reason: String,
    },
    /// The manifest at the destination is signed by another key than the one publishing.
    #[error(
        "the manifest at {dest} is signed by key {signed_by}, not by the key publishing \
         ({publishing}): publish with the key that signed that release (--signing-key), or \
         delete manifest.json* there first; nothing was uploaded"
    )]
    ForeignRemoteKey {
        dest: String,
        signed_by: PublicKey,
        publishing: PublicKey,
    },
    /// A GitHub release already has a different file of that name.
    #[error(
        "release {tag} already has a different {name}; refusing to overwrite it: \
         publish to a new tag, or pass --force to replace it"
    )]
    AssetExists { name: String, tag: String },
}

/// The server's words (shortened) and, for the statuses that have one, the likely fix.
fn http_detail(method: &str, status: u16, body: &str) -> String {
    let mut detail = String::new();
    let body = body.trim();
    if !body.is_empty() {
        let short: String = body.chars().take(300).collect();
        detail.push_str(&format!(" ({short})"));
    }
    detail.push_str(match status {
        401 | 403 => "; check that the credentials may write there",
        404 | 405 if method == "PUT" => {
            "; the server does not accept uploads there (for nginx: `dav_methods PUT; \
             create_full_put_path on;`)"
        }
        _ => "",
    });
    detail
}

/// A manifest read while making or publishing a release: the fix is on the release side.
impl From<ManifestError> for DistError {
    fn from(err: ManifestError) -> DistError {
        match err {
            ManifestError::Malformed { origin, reason } => {
                DistError::BadManifest { origin, reason }
            }
            ManifestError::UnsupportedVersion { origin, version } => {
                DistError::UnsupportedManifest { origin, version }
            }
            ManifestError::HashMismatch {
                origin,
                expected,
                actual,
            } => DistError::HashMismatch {
                file: origin,
                expected,
                actual,
            },
        }
    }
}

/// What is wrong with a signature, for a maintainer: the fix depends on where the manifest is.
fn signature_problem(err: &SignatureError) -> String {
    match err {
        SignatureError::Missing { .. } => format!("it has no {MANIFEST_SIG}"),
        SignatureError::Malformed { reason, .. } => {
            format!("its {MANIFEST_SIG} is malformed: {reason}")
        }
        SignatureError::ForeignKey { signed_by, .. } => format!("it is signed by key {signed_by}"),
        SignatureError::BadSignature { .. } => {
            format!("it does not match its {MANIFEST_SIG}: it was changed after it was signed")
        }
    }
}

/// The manifest at a publishing destination failed [`hyperlight_install::signature::verify`].
pub fn remote_signature_error(dest: &str, err: SignatureError) -> DistError {
    match err {
        SignatureError::ForeignKey {
            signed_by, trusted, ..
        } => DistError::ForeignRemoteKey {
            dest: dest.to_owned(),
            signed_by,
            publishing: trusted,
        },
        err => DistError::RemoteManifest {
            dest: dest.to_owned(),
            reason: signature_problem(&err),
        },
    }
}

/// The file at `path`, which a manifest says has this `sha256`, once it checks out.
pub fn read_artifact(path: &std::path::Path, sha256: &str) -> Result<Vec<u8>, DistError> {
    let data = std::fs::read(path).map_err(|_| DistError::MissingArtifact {
        file: path.to_owned(),
    })?;
    let actual = hyperlight_install::manifest::sha256_hex(&data);
    if actual != sha256 {
        return Err(DistError::HashMismatch {
            file: path.display().to_string(),
            expected: sha256.to_owned(),
            actual,
        });
    }
    Ok(data)
}

/// Reads and verifies `dir/manifest.json`: signed by `key`, then matching its `.sha256`.
pub fn read_manifest_dir(
    dir: &std::path::Path,
    key: &PublicKey,
) -> Result<hyperlight_install::manifest::Manifest, DistError> {
    use hyperlight_install::manifest::{Manifest, MANIFEST, MANIFEST_SHA256};
    let path = dir.join(MANIFEST);
    let text =
        std::fs::read(&path).map_err(|_| DistError::MissingArtifact { file: path.clone() })?;
    let sig = std::fs::read(dir.join(MANIFEST_SIG)).ok();
    hyperlight_install::signature::verify_file(
        &text,
        sig.as_deref(),
        key,
        &path.display().to_string(),
    )
    .map_err(|err| DistError::UnsignedDist {
        dir: dir.to_owned(),
        key: *key,
        reason: signature_problem(&err),
    })?;
    let sha_path = dir.join(MANIFEST_SHA256);
    let sha =
        std::fs::read(&sha_path).map_err(|_| DistError::MissingArtifact { file: sha_path })?;
    Ok(Manifest::parse_verified(
        &text,
        &sha,
        &path.display().to_string(),
    )?)
}
