//! Any bytes as `manifest.json`, optionally followed by a NUL byte and `manifest.json.sig` (what
//! install.sh, `hyperlight-run` and publish download): checking the signature against a fixed
//! key never panics; and the manifest, parsed, renders back to itself and names only plain file
//! names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use hyperlight_install::manifest::{is_safe_file_name, Manifest};
use hyperlight_install::signature::{verify_file, SigningKey, FUZZ_KEY_SEED};

fuzz_target!(|data: &[u8]| {
    // JSON holds no raw NUL, so a plain manifest (most seeds) stays whole, and unsigned.
    let (manifest, sig) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], Some(&data[at + 1..])),
        None => (data, None),
    };
    let trusted = SigningKey::from_seed(FUZZ_KEY_SEED).public_key();
    if let Err(err) = verify_file(manifest, sig, &trusted, "manifest.json") {
        let _ = err.to_string();
    }
    // Installers parse only verified bytes; the parser runs on all of them here, so that
    // mutations reach it without forging a signature.
    let Ok(manifest) = Manifest::parse(manifest, "manifest.json") else {
        return;
    };
    assert!(manifest.urls().all(is_safe_file_name));
    let (text, sha_line) = manifest.render();
    let again = Manifest::parse_verified(text.as_bytes(), sha_line.as_bytes(), "rendered")
        .expect("a rendered manifest parses");
    assert_eq!(again, manifest);
    let mut merged = manifest.clone();
    merged.merge(manifest);
    let _ = merged.files();
});
