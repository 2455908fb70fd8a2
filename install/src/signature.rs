//! Signed releases: `manifest.json.sig` is an ed25519 signature over the exact bytes of
//! `manifest.json`, in one line that also names the key that made it (format:
//! docs/manifest.md). Installers check the raw bytes against the key compiled into them
//! ([`trusted_key`]) before parsing anything; the manifest's sha256s then vouch for every file.

use std::fmt;
use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::str::FromStr;

use anyhow::{Context, Result};
use ed25519_dalek::{Signature, Signer, VerifyingKey};

use crate::{hex, TARGET};

pub const MANIFEST_SIG: &str = "manifest.json.sig";
/// The first word of `manifest.json.sig`.
const SCHEME: &str = "ed25519";

/// The seed of the key the `manifest` fuzz target trusts and `cargo xtask fuzz` signs its seed
/// inputs with. Public, so no build trusts it.
pub const FUZZ_KEY_SEED: [u8; 32] = [0x5e; 32];

/// The variable [`trusted_key`] reads at compile time (`option_env!` needs the name spelled out).
pub const DIST_PUBLIC_KEY_ENV: &str = "HYPERLIGHT_DIST_PUBLIC_KEY";

/// The release key this build trusts: `HYPERLIGHT_DIST_PUBLIC_KEY` (hex) when it was compiled,
/// which `cargo xtask dist` and `cargo xtask install` set; `None` in a plain `cargo build`.
pub fn trusted_key() -> Option<PublicKey> {
    option_env!("HYPERLIGHT_DIST_PUBLIC_KEY")
        .filter(|key| !key.is_empty())
        .map(|key| {
            key.parse()
                .expect("build.rs checks HYPERLIGHT_DIST_PUBLIC_KEY")
        })
}

/// An ed25519 public key, shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex(&self.0))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an ed25519 public key (64 hex digits): {0:?}")]
pub struct ParseKeyError(String);

impl FromStr for PublicKey {
    type Err = ParseKeyError;

    fn from_str(text: &str) -> Result<PublicKey, ParseKeyError> {
        parse_hex(text)
            .map(PublicKey)
            .ok_or_else(|| ParseKeyError(text.chars().take(80).collect()))
    }
}

/// The secret half: only `cargo xtask` (dist, publish, keygen) holds one.
pub struct SigningKey(ed25519_dalek::SigningKey);

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SigningKey(public {})", self.public_key())
    }
}

impl SigningKey {
    /// A new key from the operating system's random numbers.
    pub fn generate() -> io::Result<SigningKey> {
        let mut seed = [0; 32];
        getrandom::fill(&mut seed)?;
        Ok(SigningKey::from_seed(seed))
    }

    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Reads a key file as [`SigningKey::write_new`] writes it: `#` comment lines and one line
    /// of 64 hex digits, the secret seed.
    pub fn read(path: &Path) -> Result<SigningKey> {
        let text = fs::read_to_string(path)
            .with_context(|| format!("cannot read the signing key {}", path.display()))?;
        let mut lines = text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty() && !line.starts_with('#'));
        match (lines.next().and_then(parse_hex), lines.next()) {
            (Some(seed), None) => Ok(SigningKey::from_seed(seed)),
            _ => anyhow::bail!(
                "{} is not a signing key file (one line of 64 hex digits, as `cargo xtask keygen` writes)",
                path.display()
            ),
        }
    }

    /// Writes the key to the new file `path`, readable by its owner only; fails with
    /// `AlreadyExists` if there is one. Other processes see the whole file or none: it is
    /// written under a temporary name and hard-linked into place.
    pub fn write_new(&self, path: &Path) -> io::Result<()> {
        let text = format!(
            "# {TARGET} release signing key (ed25519 seed) of public key {}: keep it secret\n{}\n",
            self.public_key(),
            hex(self.0.as_bytes())
        );
        let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
        tmp_name.push(format!(".{}.tmp", std::process::id()));
        let tmp = path.with_file_name(tmp_name);
        let _ = fs::remove_file(&tmp);
        let result = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .and_then(|mut file| file.write_all(text.as_bytes()))
            .and_then(|()| fs::hard_link(&tmp, path));
        let _ = fs::remove_file(&tmp);
        result
    }
}

/// The text of `manifest.json.sig` for `manifest`, the exact bytes of `manifest.json`.
pub fn sign(manifest: &[u8], key: &SigningKey) -> String {
    let signature = key.0.sign(manifest);
    format!(
        "{SCHEME} {} {}\n",
        key.public_key(),
        hex(&signature.to_bytes())
    )
}

/// Why a manifest is not accepted as the release of the key this installer trusts. `origin`
/// names the manifest (its URL or path).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error(
        "{origin} comes without {MANIFEST_SIG}: the release is unsigned, so nothing shows it is \
         this project's; refusing it. Install from the official dist server, whose releases are signed"
    )]
    Missing { origin: String },
    #[error(
        "the {MANIFEST_SIG} of {origin} is malformed ({reason}; expected one line \
         `{SCHEME} <public key hex> <signature hex>`): the download was damaged or the release is \
         broken; try again, and if it persists, report it to the dist server's maintainers"
    )]
    Malformed { origin: String, reason: String },
    #[error(
        "{origin} is signed by key {signed_by}, but this installer trusts only key {trusted}: the \
         dist server is not serving this project's release, or the release was re-signed; install \
         from the official dist server or with an installer from the same release"
    )]
    ForeignKey {
        origin: String,
        signed_by: PublicKey,
        trusted: PublicKey,
    },
    #[error(
        "{origin} does not match its signature in {MANIFEST_SIG} (key {key}): it was changed after \
         it was signed; refusing it. Download it again; if that fails the same way, the dist \
         server is serving a tampered release"
    )]
    BadSignature { origin: String, key: PublicKey },
}

/// Checks that `sig_text` (the content of `manifest.json.sig`) is `trusted`'s signature of
/// `manifest`, the raw bytes of `manifest.json`.
pub fn verify(
    manifest: &[u8],
    sig_text: &[u8],
    trusted: &PublicKey,
    origin: &str,
) -> Result<(), SignatureError> {
    let malformed = |reason: &str| SignatureError::Malformed {
        origin: origin.to_owned(),
        reason: reason.to_owned(),
    };
    let text = std::str::from_utf8(sig_text).map_err(|_| malformed("it is not text"))?;
    let mut fields = text.strip_suffix('\n').unwrap_or(text).split(' ');
    let (Some(scheme), Some(key), Some(signature), None) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(malformed("it is not three fields separated by spaces"));
    };
    if scheme != SCHEME {
        return Err(malformed(&format!("it does not start with `{SCHEME} `")));
    }
    let signed_by =
        PublicKey(parse_hex(key).ok_or_else(|| malformed("the key is not 64 hex digits"))?);
    let signature = Signature::from_bytes(
        &parse_hex(signature).ok_or_else(|| malformed("the signature is not 128 hex digits"))?,
    );
    if signed_by != *trusted {
        return Err(SignatureError::ForeignKey {
            origin: origin.to_owned(),
            signed_by,
            trusted: *trusted,
        });
    }
    // verify_strict: no malleable signatures, no weak keys. A trusted key that is not a curve
    // point verifies nothing.
    VerifyingKey::from_bytes(&trusted.0)
        .and_then(|key| key.verify_strict(manifest, &signature))
        .map_err(|_| SignatureError::BadSignature {
            origin: origin.to_owned(),
            key: *trusted,
        })
}

/// [`verify`] for a download that may lack `manifest.json.sig` (`sig_text` `None`).
pub fn verify_file(
    manifest: &[u8],
    sig_text: Option<&[u8]>,
    trusted: &PublicKey,
    origin: &str,
) -> Result<(), SignatureError> {
    match sig_text {
        Some(sig_text) => verify(manifest, sig_text, trusted, origin),
        None => Err(SignatureError::Missing {
            origin: origin.to_owned(),
        }),
    }
}

/// Exactly `2 * N` hex digits (either case) as bytes.
fn parse_hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let mut bytes = [0; N];
    for (byte, pair) in bytes.iter_mut().zip(text.as_bytes().chunks(2)) {
        *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
    }
    Some(bytes)
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use super::*;

    const MANIFEST: &[u8] = b"{\"manifest-version\": \"2\"}\n";

    fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    #[test]
    fn sign_then_verify() {
        let key = SigningKey::generate().unwrap();
        let sig = sign(MANIFEST, &key);
        assert!(sig.starts_with(&format!("ed25519 {} ", key.public_key())));
        assert!(sig.ends_with('\n') && sig.len() == "ed25519  \n".len() + 64 + 128);
        verify(MANIFEST, sig.as_bytes(), &key.public_key(), "m").unwrap();
        verify_file(MANIFEST, Some(sig.as_bytes()), &key.public_key(), "m").unwrap();
    }

    #[test]
    fn a_changed_manifest_or_signature_does_not_verify() {
        let key = key(1);
        let sig = sign(MANIFEST, &key);
        let mut changed = MANIFEST.to_vec();
        changed[3] ^= 1;
        let err = verify(&changed, sig.as_bytes(), &key.public_key(), "m").unwrap_err();
        assert_eq!(
            err,
            SignatureError::BadSignature {
                origin: "m".into(),
                key: key.public_key()
            }
        );
        let mut flipped = sig.clone().into_bytes();
        let last_digit = flipped.len() - 2;
        flipped[last_digit] = if flipped[last_digit] == b'0' {
            b'1'
        } else {
            b'0'
        };
        assert!(matches!(
            verify(MANIFEST, &flipped, &key.public_key(), "m"),
            Err(SignatureError::BadSignature { .. })
        ));
    }

    #[test]
    fn another_key_is_named_with_the_trusted_one() {
        let (signer, trusted) = (key(1), key(2));
        let sig = sign(MANIFEST, &signer);
        let err = verify(MANIFEST, sig.as_bytes(), &trusted.public_key(), "m").unwrap_err();
        assert!(matches!(err, SignatureError::ForeignKey { .. }));
        let message = err.to_string();
        assert!(
            message.contains(&signer.public_key().to_string()),
            "{message}"
        );
        assert!(
            message.contains(&trusted.public_key().to_string()),
            "{message}"
        );
    }

    #[test]
    fn garbage_is_malformed_and_absence_missing() {
        let key = key(1);
        let good = sign(MANIFEST, &key);
        let trusted = key.public_key();
        let public = trusted.to_string();
        let signature = good.trim_end().rsplit(' ').next().unwrap();
        for garbage in [
            String::new(),
            "\n".into(),
            "garbage".into(),
            good[..good.len() - 3].into(),
            format!("{good}\n"),
            format!("ed25519 {public} {signature} x\n"),
            format!("ed25519  {public} {signature}\n"),
            format!("ed448 {public} {signature}\n"),
            format!("ed25519 {} {signature}\n", &public[2..]),
            format!("ed25519 {public} {}\n", &signature[2..]),
        ] {
            assert!(
                matches!(
                    verify(MANIFEST, garbage.as_bytes(), &trusted, "m"),
                    Err(SignatureError::Malformed { .. })
                ),
                "{garbage:?}"
            );
        }
        assert!(matches!(
            verify(MANIFEST, b"\xff\xfe", &trusted, "m"),
            Err(SignatureError::Malformed { .. })
        ));
        let err = verify_file(MANIFEST, None, &trusted, "m").unwrap_err();
        assert_eq!(err, SignatureError::Missing { origin: "m".into() });
        assert!(err.to_string().contains("unsigned"), "{err}");
    }

    #[test]
    fn public_keys_as_hex() {
        let public = key(3).public_key();
        let text = public.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<PublicKey>().unwrap(), public);
        assert_eq!(text.to_uppercase().parse::<PublicKey>().unwrap(), public);
        for bad in [
            "",
            "00",
            &text[1..],
            &format!("{text}0"),
            &format!("+f{}", &text[2..]),
        ] {
            assert!(bad.parse::<PublicKey>().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn key_files() {
        let dir = testkit::TempDir::new("signing-key");
        let path = dir.path().join("release.key");
        let key = key(4);
        key.write_new(&path).unwrap();
        let mode = fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.starts_with('#') && text.contains(&key.public_key().to_string()));
        assert_eq!(
            SigningKey::read(&path).unwrap().public_key(),
            key.public_key()
        );
        let err = key.write_new(&path).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(
            fs::read_dir(dir.path()).unwrap().count(),
            1,
            "a temporary file was left"
        );

        let bad = dir.path().join("bad.key");
        fs::write(&bad, "# no key here\n").unwrap();
        let err = SigningKey::read(&bad).unwrap_err().to_string();
        assert!(err.contains("bad.key") && err.contains("keygen"), "{err}");
    }
}
