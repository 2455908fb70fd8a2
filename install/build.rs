//! `trusted_key()` reads HYPERLIGHT_DIST_PUBLIC_KEY at compile time: rebuild when it changes,
//! and refuse a malformed key here rather than in a user's install.

fn main() {
    println!("cargo:rerun-if-env-changed=HYPERLIGHT_DIST_PUBLIC_KEY");
    if let Ok(key) = std::env::var("HYPERLIGHT_DIST_PUBLIC_KEY") {
        assert!(
            key.is_empty() || (key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit())),
            "HYPERLIGHT_DIST_PUBLIC_KEY must be an ed25519 public key, 64 hex digits, not {key:?}"
        );
    }
}
