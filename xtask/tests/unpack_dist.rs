//! The unpacker install.sh runs (`hyperlight_unpack`, the fuzzed one) against real
//! `cargo xtask dist` output: it must accept every release tarball and reproduce its files
//! exactly, so its refusals (see its unit tests and fuzz/fuzz_targets/unpack.rs) cost nothing
//! for genuine releases.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;

use hyperlight_unpack::{unpack_tar_gz, Limits};
use support::{manifest, stable_dist, COMPONENT};
use testkit::TempDir;

#[test]
fn real_release_tarballs_unpack_completely() {
    let dist = stable_dist();
    let manifest = manifest(dist);
    let sysroot_url = manifest["sysroots"][0]["url"].as_str().unwrap();
    let runner_url = manifest["runner"]["url"].as_str().unwrap();

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
            package.join(COMPONENT).join(file).is_file(),
            "{file} missing"
        );
    }
    assert_eq!(files.len(), listed.len() + 3, "{files:?}");

    let runner = dir.path().join("runner");
    let bytes = fs::read(dist.join(runner_url)).unwrap();
    unpack_tar_gz(bytes.as_slice(), &runner, Limits::default()).unwrap();
    let bin = runner
        .join(runner_url.trim_end_matches(".tar.gz"))
        .join("bin/hyperlight-run");
    let mode = fs::metadata(&bin).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
    let expected = manifest["runner"]["bin-sha256"].as_str().unwrap();
    assert_eq!(support::sha256(&fs::read(&bin).unwrap()), expected);
}
