//! Any bytes as a release tarball (gzip or plain tar) unpacked by the code that installs
//! (`hyperlight_install::unpack`): nothing may appear outside the destination, and nothing but
//! plain files and directories inside it.
#![no_main]

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use hyperlight_install::unpack::{self, Limits};

/// `root/dest` receives the archive; `root/outside` must stay empty.
fn root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let base = std::env::var_os("FUZZ_SCRATCH")
            .map(PathBuf::from)
            .unwrap_or_else(std::env::temp_dir);
        let root = base.join(format!("hyperlight-fuzz-unpack-{}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        fs::create_dir_all(root.join("outside")).unwrap();
        root
    })
}

fn check_tree(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let kind = fs::symlink_metadata(entry.path()).unwrap().file_type();
        assert!(kind.is_file() || kind.is_dir(), "{:?}", entry.path());
        if kind.is_dir() {
            check_tree(&entry.path());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let root = root();
    let dest = root.join("dest");
    let limits = Limits {
        max_bytes: 1 << 20,
        max_members: 256,
    };
    let result = if data.starts_with(&[0x1f, 0x8b]) {
        unpack::unpack_tar_gz(data, &dest, limits)
    } else {
        unpack::unpack(data, &dest, limits)
    };
    if dest.exists() {
        check_tree(&dest);
        if result.is_err() {
            // Only an I/O failure may leave a partial tree behind.
            assert!(
                matches!(result, Err(unpack::UnpackError::Io(_)))
                    || fs::read_dir(&dest).unwrap().next().is_none()
            );
        }
        fs::remove_dir_all(&dest).unwrap();
    }
    let mut names: Vec<_> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["outside"],
        "something was written beside the destination"
    );
    assert!(fs::read_dir(root.join("outside")).unwrap().next().is_none());
});
