//! The installer's unpacker (`hyperlight_install::unpack`, the fuzzed one) against real
//! `cargo xtask dist` output: it must accept the release's sysroot tarball and reproduce its
//! files exactly, so its refusals (see its unit tests and fuzz/fuzz_targets/unpack.rs) cost
//! nothing for genuine releases. The runner is a plain executable, not an archive.

mod support;

use std::fs;

use hyperlight_install::unpack::{unpack_tar_gz, Limits};
use support::{manifest, stable_dist, COMPONENT};
use testkit::TempDir;

#[test]
fn the_release_sysroot_tarball_unpacks_to_the_sysroot_it_was_made_from() {
    let dist = stable_dist();
    let manifest = manifest(dist);
    let sysroot_url = manifest["sysroots"][0]["url"].as_str().unwrap();

    let dir = TempDir::new("unpack-dist");
    let sysroot = dir.path().join("sysroot");
    let bytes = fs::read(dist.join(sysroot_url)).unwrap();
    let files = unpack_tar_gz(bytes.as_slice(), &sysroot, Limits::default()).unwrap();
    let package = sysroot.join(sysroot_url.trim_end_matches(".tar.gz"));
    // Every file the component's manifest.in lists is there, and nothing else but the
    // rust-installer metadata.
    let listed: Vec<String> = fs::read_to_string(package.join(COMPONENT).join("manifest.in"))
        .unwrap()
        .lines()
        .map(|line| line.strip_prefix("file:").unwrap().to_owned())
        .collect();
    assert!(!listed.is_empty());
    for file in &listed {
        assert!(
            fs::read(package.join(COMPONENT).join(file)).unwrap()
                == fs::read(testkit::sysroot().join(file)).unwrap(),
            "{file} is not the sysroot's"
        );
    }
    assert_eq!(files.len(), listed.len() + 3, "{files:?}");
}
