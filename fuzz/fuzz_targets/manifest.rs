//! Any bytes as `manifest.json` (what install.sh and publish download): parse, and for a
//! manifest that parses, check it renders back to itself and names only plain file names.
#![no_main]

use libfuzzer_sys::fuzz_target;
use hyperlight_install::manifest::{is_safe_file_name, Manifest};

fuzz_target!(|data: &[u8]| {
    let Ok(manifest) = Manifest::parse(data, "manifest.json") else {
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
