//! install.sh against hostile or concurrent conditions (issue 6): archives whose members would
//! escape the unpack directory are refused before anything is unpacked, a missing or tampered
//! unpacker stops the install before it runs, and two installs into one toolchain are
//! serialized, with flock and with the lock-directory fallback (including taking over the
//! stale lock of a killed install). Killed installs are covered by
//! install_sh.rs (`install_killed_mid_download_leaves_the_previous_state`).

mod support;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::nginx::Nginx;
use support::{
    assert_install_fails, manifest, replace_file, serve_copy, server, sha256, stable_dist,
    sysroot_tarball, text, Sandbox, COMPONENT,
};
use testkit::{assert_success, pinned_toolchain, TARGET};

const EXIT_VERIFY: i32 = 7;

/// A small tar.gz: the package's `components` file plus one member written with a raw header,
/// so tar's own name checks cannot stop us from making it hostile.
fn hostile_tarball(package: &str, name: &str, kind: tar::EntryType, link: Option<&str>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let components = format!("{COMPONENT}\n");
    let mut header = tar::Header::new_gnu();
    header.set_path(format!("{package}/components")).unwrap();
    header.set_size(components.len() as u64);
    header.set_mode(0o644);
    header.set_cksum();
    builder.append(&header, components.as_bytes()).unwrap();

    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"pwned\n"
    } else {
        b""
    };
    header.set_size(data.len() as u64);
    let raw = &mut header.as_old_mut().name;
    raw[..name.len()].copy_from_slice(name.as_bytes());
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    header.set_cksum();
    builder.append(&header, data).unwrap();
    let tar = builder.into_inner().unwrap();
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&tar).unwrap();
    gz.finish().unwrap()
}

/// Serves the stable dist at `<nginx>/<name>` with its manifest (and its .sha256) changed by
/// `edit`, which may also change the served files, as a compromised server would.
fn serve_edited(
    nginx: &Nginx,
    name: &str,
    edit: impl FnOnce(&Path, &mut serde_json::Value),
) -> PathBuf {
    let dist = stable_dist();
    let served = serve_copy(nginx, dist, name);
    let mut manifest = manifest(dist);
    edit(&served, &mut manifest);
    let text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    replace_file(&served.join("manifest.json"), text.as_bytes());
    replace_file(
        &served.join("manifest.json.sha256"),
        format!("{}  manifest.json\n", sha256(text.as_bytes())).as_bytes(),
    );
    served
}

/// The stable dist with its sysroot tarball replaced by `bytes` and the manifest matching it.
fn serve_with_sysroot(nginx: &Nginx, name: &str, bytes: &[u8]) -> PathBuf {
    serve_edited(nginx, name, |served, manifest| {
        replace_file(&served.join(sysroot_tarball(stable_dist())), bytes);
        manifest["sysroots"][0]["sha256"] = sha256(bytes).into();
        manifest["sysroots"][0]["size"] = (bytes.len() as u64).into();
    })
}

#[test]
fn archive_members_escaping_the_unpack_directory_are_refused() {
    let (_dir, nginx) = server();
    let package = sysroot_tarball(stable_dist())
        .trim_end_matches(".tar.gz")
        .to_owned();
    let cases = [
        (
            "dotdot",
            format!("{package}/../../../evil"),
            tar::EntryType::Regular,
            None,
            "`..` in its path",
        ),
        (
            "absolute",
            "/tmp/hyperlight-evil".to_owned(),
            tar::EntryType::Regular,
            None,
            "absolute path",
        ),
        (
            "symlink",
            format!("{package}/link"),
            tar::EntryType::Symlink,
            Some("/etc"),
            "symbolic link",
        ),
        (
            "hardlink",
            format!("{package}/hard"),
            tar::EntryType::Link,
            Some("/etc/passwd"),
            "hard link",
        ),
        (
            "device",
            format!("{package}/dev"),
            tar::EntryType::Char,
            None,
            "device file",
        ),
    ];
    for (label, member, kind, link, reason) in cases {
        let bytes = hostile_tarball(&package, &member, kind, link);
        serve_with_sysroot(&nginx, label, &bytes);
        let sandbox = assert_install_fails(
            &[
                "-y",
                "-q",
                "--dist-server",
                &format!("{}/{label}", nginx.url()),
            ],
            EXIT_VERIFY,
            &[
                "cannot unpack",
                "refusing archive member",
                reason,
                "nothing was installed",
            ],
        );
        assert!(
            !Path::new("/tmp/hyperlight-evil").exists(),
            "{label}: wrote outside"
        );
        let leftovers: Vec<_> = fs::read_dir(sandbox.dir.path().join("tmp"))
            .unwrap()
            .collect();
        assert!(
            leftovers.is_empty(),
            "{label}: install.sh left {leftovers:?}"
        );
    }
}

#[test]
fn a_release_without_a_sound_unpacker_installs_nothing() {
    let (_dir, nginx) = server();
    let url = |name: &str| format!("{}/{name}", nginx.url());
    serve_edited(&nginx, "no-unpacker", |_, manifest| {
        manifest.as_object_mut().unwrap().remove("unpacker");
    });
    assert_install_fails(
        &["-y", "-q", "--dist-server", &url("no-unpacker")],
        EXIT_VERIFY,
        &[
            "the release has no hyperlight-unpack",
            "nothing was installed",
        ],
    );
    // Same size, one byte changed: only the sha256 can tell.
    serve_edited(&nginx, "tampered", |served, manifest| {
        let file = served.join(manifest["unpacker"]["url"].as_str().unwrap());
        let mut bytes = fs::read(&file).unwrap();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        replace_file(&file, &bytes);
    });
    assert_install_fails(
        &["-y", "-q", "--dist-server", &url("tampered")],
        EXIT_VERIFY,
        &["hyperlight-unpack-", "is corrupt", "nothing was installed"],
    );
}

/// A directory of links to every program on PATH except `flock`, for the fallback lock.
fn path_without_flock(dir: &Path) -> String {
    let bin = dir.join("bin");
    fs::create_dir_all(&bin).unwrap();
    let path = std::env::var_os("PATH").unwrap();
    for entry_dir in std::env::split_paths(&path) {
        let Ok(entries) = fs::read_dir(&entry_dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name == "flock" || bin.join(&name).exists() {
                continue;
            }
            let _ = std::os::unix::fs::symlink(entry.path(), bin.join(&name));
        }
    }
    bin.to_str().unwrap().to_owned()
}

fn both_succeed_one_after_the_other(sandbox: &Sandbox, url: &str, path: Option<&str>) {
    let spawn = || {
        let mut command = sandbox.install_sh(&["-y", "--no-runner", "--dist-server", url]);
        if let Some(path) = path {
            command.env("PATH", path);
        }
        command
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (first, second) = (spawn(), spawn());
    let outputs: Vec<Output> = [first, second]
        .into_iter()
        .map(|child| child.wait_with_output().unwrap())
        .collect();
    for output in &outputs {
        assert_success(output, "a concurrent install.sh");
    }
    let said: String = outputs.iter().map(|o| text(&o.stderr)).collect();
    assert!(
        said.contains("waiting for another install"),
        "neither install waited for the other:\n{said}"
    );
    // One consistent install: the records list the component once and match the files.
    let components = fs::read_to_string(sandbox.rustlib().join("components")).unwrap();
    assert_eq!(components.lines().filter(|l| *l == COMPONENT).count(), 1);
    assert!(sandbox.rustlib().join(TARGET).join("target.json").is_file());
    let leftovers: Vec<_> = fs::read_dir(sandbox.rustlib())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.'))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

#[test]
fn concurrent_installs_are_serialized_with_flock() {
    let has_flock = Command::new("sh")
        .args(["-c", "command -v flock"])
        .output()
        .unwrap()
        .status
        .success();
    if !has_flock {
        eprintln!("no flock here; the fallback test covers this");
        return;
    }
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    both_succeed_one_after_the_other(&sandbox, &nginx.url(), None);
}

#[test]
fn concurrent_installs_are_serialized_without_flock() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    let path = path_without_flock(sandbox.dir.path());
    both_succeed_one_after_the_other(&sandbox, &nginx.url(), Some(&path));
}

#[test]
fn the_stale_lock_of_a_killed_install_is_taken_over() {
    let (_dir, nginx) = server();
    serve_copy(&nginx, stable_dist(), "");
    let sandbox = Sandbox::new(&pinned_toolchain());
    // A lock directory whose owner no longer exists, as `kill -9` of an install leaves it.
    let mut gone = Command::new("true").spawn().unwrap();
    let dead_pid = gone.id();
    gone.wait().unwrap();
    let lock = sandbox.rustlib().join(format!(".{TARGET}.install-lock"));
    fs::create_dir_all(&lock).unwrap();
    fs::write(lock.join("pid"), format!("{dead_pid}\n")).unwrap();

    let path = path_without_flock(sandbox.dir.path());
    let output = sandbox
        .install_sh(&["-y", "-q", "--no-runner", "--dist-server", &nginx.url()])
        .env("PATH", &path)
        .output()
        .unwrap();
    assert_success(&output, "install.sh over a stale lock");
    assert!(!lock.exists(), "the lock must be released");
    assert!(sandbox.rustlib().join(TARGET).join("target.json").is_file());
}
