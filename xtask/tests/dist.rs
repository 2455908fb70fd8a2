//! `cargo xtask dist` and `cargo xtask publish`: deterministic output in rust-installer layout,
//! signed manifests, manifests merged at the destination (real nginx), and the GitHub backend
//! against a local stand-in for the API calls it makes.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use hyperlight_install::c_objects::OBJECTS_DIR;
use hyperlight_install::manifest::{Manifest, SysrootEntry};
use hyperlight_install::signature::{verify, PublicKey, SigningKey};
use hyperlight_install::Target;

use support::{dist_into, manifest, server, sha256, stable_dist, text, xtask, COMPONENT};
use testkit::{assert_success, pinned_toolchain, TempDir, AARCH64_TARGET, STD_TARGET, TARGET};

fn hashes(dir: &Path) -> BTreeMap<String, String> {
    fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sha256(&fs::read(&p).unwrap()),
            )
        })
        .collect()
}

/// What the host tool (the runner, with the installer in it) is built from.
fn host_tool_sources() -> BTreeMap<String, String> {
    fn walk(dir: &Path, out: &mut BTreeMap<String, String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else {
                out.insert(
                    path.display().to_string(),
                    sha256(&fs::read(&path).unwrap()),
                );
            }
        }
    }
    let root = testkit::project_root();
    let mut sources = BTreeMap::new();
    for dir in ["runner", "guest/src", "install/src"] {
        walk(&root.join(dir), &mut sources);
    }
    let lock = root.join("Cargo.lock");
    sources.insert("Cargo.lock".into(), sha256(&fs::read(lock).unwrap()));
    sources
}

#[test]
fn dist_twice_gives_identical_files_in_rust_installer_layout() {
    // Two runs back to back, not against the shared fixture: the host tools' sources may change
    // while the suite runs (other work in the same tree), which rightly changes what dist writes;
    // such a pair is retried.
    let (first_dir, second) = (TempDir::new("dist-first"), TempDir::new("dist-again"));
    let first = first_dir.path();
    for _attempt in 0..3 {
        let sources = host_tool_sources();
        assert_success(&dist_into(first, &[]), "cargo xtask dist");
        assert_success(&dist_into(second.path(), &[]), "second cargo xtask dist");
        if host_tool_sources() == sources {
            break;
        }
    }
    let (a, b) = (hashes(first), hashes(second.path()));
    assert_eq!(a, b, "two dist runs differ");
    assert_eq!(a.len(), 12, "{a:?}");
    for file in [
        "cargo-config.toml",
        "cargo-config-std.toml",
        "install.sh",
        "manifest.json.sig",
        "release-key.pub",
    ] {
        assert!(a.contains_key(file), "{file} missing: {a:?}");
    }

    let manifest = manifest(first);
    assert_eq!(manifest["manifest-version"], "2");
    assert_eq!(manifest["target"], "x86_64-hyperlight-none");
    let sysroot = &manifest["sysroots"][0];
    for key in [
        "release",
        "commit-hash",
        "commit-date",
        "host",
        "url",
        "sha256",
        "installed-sha256",
    ] {
        assert!(
            sysroot[key].is_string(),
            "sysroot entry lacks {key}: {sysroot}"
        );
    }
    let url = sysroot["url"].as_str().unwrap();
    let bytes = fs::read(first.join(url)).unwrap();
    assert_eq!(sysroot["size"], bytes.len() as u64);
    assert_eq!(sysroot["sha256"], sha256(&bytes));
    let runner = &manifest["runner"];
    assert_eq!(runner["host"], "x86_64-unknown-linux-musl");
    // The served install.sh pins exactly this runner.
    let install_sh = fs::read_to_string(first.join("install.sh")).unwrap();
    for (field, value) in [
        ("RUNNER_FILE", runner["url"].as_str().unwrap().to_owned()),
        ("RUNNER_SIZE", runner["size"].to_string()),
        (
            "RUNNER_SHA256",
            runner["sha256"].as_str().unwrap().to_owned(),
        ),
    ] {
        assert!(
            install_sh.contains(&format!("{field}=\"{value}\"\n")),
            "install.sh lacks {field}={value}"
        );
    }
    check_source_archive(first, &manifest["source"], &runner["version"], Target::None);
    let sha_line = fs::read_to_string(first.join("manifest.json.sha256")).unwrap();
    assert_eq!(
        sha_line,
        format!(
            "{}  manifest.json\n",
            sha256(&fs::read(first.join("manifest.json")).unwrap())
        )
    );

    check_component_tarball(&bytes, url, TARGET, testkit::sysroot());
}

/// The release's runner carries none of the runner's test hooks (debug builds only): neither
/// their variable nor their names.
#[test]
fn the_release_runner_has_no_test_hooks() {
    let runner = fs::read(support::release_runner()).unwrap();
    let hooks =
        fs::read_to_string(testkit::project_root().join("runner/src/test_hook.rs")).unwrap();
    let contains = |needle: &str| runner.windows(needle.len()).any(|w| w == needle.as_bytes());
    for needle in [
        "HYPERLIGHT_RUN_TEST_HOOK",
        "unemulable-stub",
        "refused-sregs",
    ] {
        assert!(
            hooks.contains(needle),
            "test_hook.rs no longer has {needle}"
        );
        assert!(!contains(needle), "the release runner contains {needle:?}");
    }
    // The module's name, as symbols and panic locations would spell it.
    assert!(!contains("test_hook"), "the release runner names test_hook");
}

/// The std target and the AArch64 one ship beside x86_64-hyperlight-none: each in its own entry
/// under `targets` (readers that know only the top level see x86_64-hyperlight-none alone), with
/// its sysroot tarball, its own sha256, and its sources.
#[test]
fn the_other_targets_ship_in_their_own_manifest_entries() {
    let dist = stable_dist();
    let manifest = manifest(dist);
    for entry in manifest["sysroots"].as_array().unwrap() {
        let url = entry["url"].as_str().unwrap();
        assert!(url.ends_with(&format!("-{TARGET}.tar.gz")), "{url}");
    }
    let toolchain = pinned_toolchain();
    let short = &testkit::rustc_field(&toolchain, "commit-hash")[..9];
    let release = testkit::rustc_field(&toolchain, "release");
    for (target, sysroot) in [
        (Target::Hermit, testkit::std_sysroot()),
        (Target::Aarch64, testkit::aarch64_sysroot()),
    ] {
        let entry = &manifest["targets"][target.name()];
        assert_eq!(entry["component"], format!("rust-std-{target}"));
        let sysroots = entry["sysroots"].as_array().unwrap();
        assert_eq!(sysroots.len(), 1, "{entry}");
        let sysroot_entry = &sysroots[0];
        for key in ["release", "commit-hash", "commit-date", "host"] {
            assert_eq!(
                sysroot_entry[key],
                testkit::rustc_field(&toolchain, key),
                "{key}"
            );
        }
        let url = sysroot_entry["url"].as_str().unwrap();
        assert_eq!(url, format!("rust-std-{release}-{short}-{target}.tar.gz"));
        let bytes = fs::read(dist.join(url)).unwrap();
        assert_eq!(sysroot_entry["size"], bytes.len() as u64);
        assert_eq!(sysroot_entry["sha256"], sha256(&bytes));
        check_component_tarball(&bytes, url, target.name(), sysroot);
        check_source_archive(
            dist,
            &entry["source"],
            &manifest["runner"]["version"],
            target,
        );
    }
    assert_eq!(
        fs::read(dist.join("cargo-config-std.toml")).unwrap(),
        fs::read(testkit::project_root().join("templates/cargo-config-std.toml")).unwrap()
    );
}

/// The sysroot tarball `url` of `target` has rust-installer's layout, sorted entries and
/// fixed metadata, and holds exactly the target's files of `sysroot`.
fn check_component_tarball(bytes: &[u8], url: &str, target: &str, sysroot: &Path) {
    let component = format!("rust-std-{target}");
    let top = url.strip_suffix(".tar.gz").unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(bytes));
    let mut paths = Vec::new();
    let mut contents = BTreeMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let header = entry.header();
        assert_eq!(header.mtime().unwrap(), 0);
        assert_eq!((header.uid().unwrap(), header.gid().unwrap()), (0, 0));
        let path = entry.path().unwrap().display().to_string();
        let mode = header.mode().unwrap();
        if header.entry_type().is_dir() {
            assert_eq!(mode, 0o755, "{path}");
        } else {
            assert_eq!(mode, 0o644, "{path}");
            let mut data = Vec::new();
            entry.read_to_end(&mut data).unwrap();
            contents.insert(path.clone(), data);
        }
        paths.push(path);
    }
    // Sorted by path, a directory's entry by its name without the trailing slash, as dist sorts
    // them.
    let mut sorted = paths.clone();
    sorted.sort_by(|a, b| a.trim_end_matches('/').cmp(b.trim_end_matches('/')));
    assert_eq!(paths, sorted, "entries are not sorted");
    assert_eq!(
        contents[&format!("{top}/components")],
        format!("{component}\n").as_bytes()
    );
    assert_eq!(contents[&format!("{top}/rust-installer-version")], b"3\n");
    let manifest_in = text(&contents[&format!("{top}/{component}/manifest.in")]);
    let listed: Vec<&str> = manifest_in.lines().collect();
    let files = support::named_target_files(sysroot, target);
    let expected: Vec<String> = files.iter().map(|f| format!("file:{f}")).collect();
    assert_eq!(listed, expected);
    for file in files {
        let payload = format!("{top}/{component}/{file}");
        assert_eq!(
            contents.get(&payload),
            Some(&fs::read(sysroot.join(&file)).unwrap()),
            "{payload}"
        );
    }
}

/// Every file below `dir` by its path relative to `dir`, with its content.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                let relative = path.strip_prefix(root).unwrap().display().to_string();
                out.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// The source archive a dist in `dir` lists as `entry` is the checkout's source tree: what the
/// test sysroot was built from and holds besides its libraries.
fn check_source_archive(
    dir: &Path,
    entry: &serde_json::Value,
    version: &serde_json::Value,
    target: Target,
) {
    assert_eq!(entry["version"], *version);
    let url = entry["url"].as_str().unwrap();
    let bytes = fs::read(dir.join(url)).unwrap();
    assert_eq!(entry["size"], bytes.len() as u64);
    assert_eq!(entry["sha256"], sha256(&bytes));
    let unpacked = TempDir::new("source");
    let source = hyperlight_install::build::unpack_source(&bytes, unpacked.path(), target).unwrap();
    assert_eq!(
        format!("{}.tar.gz", source.file_name().unwrap().to_string_lossy()),
        url
    );
    let source = tree(&source);

    let sysroot = match target {
        Target::None => testkit::sysroot(),
        Target::Hermit => testkit::std_sysroot(),
        Target::Aarch64 => testkit::aarch64_sysroot(),
    };
    let mut installed = tree(&target.dir(sysroot));
    // The libraries and the prebuilt C objects are what a build from these sources makes or
    // does without (official guests then compile picolibc themselves).
    installed.retain(|path, _| {
        !path.starts_with("lib/")
            && !path.starts_with(&format!("{OBJECTS_DIR}/"))
            && path != "rustc-version"
    });
    assert_eq!(
        source.keys().collect::<Vec<_>>(),
        installed.keys().collect::<Vec<_>>()
    );
    assert!(
        source == installed,
        "the source tree differs from the sysroot's"
    );

    let root = testkit::project_root();
    let mut checkout = BTreeMap::from([(
        "target.json".to_owned(),
        fs::read(root.join(format!("target-specs/{target}.json"))).unwrap(),
    )]);
    let crates = [
        (
            "src/hyperlight-rt",
            "guest",
            &["Cargo.toml", "src", "macros"][..],
        ),
        (
            "src/hyperlight-rt-macros",
            "guest/macros",
            &["Cargo.toml", "src"],
        ),
        (
            "src/sysroot",
            "sysroot",
            &["Cargo.toml", "Cargo.lock", "src"],
        ),
    ];
    // The runtime's crates go with the targets whose guests run on it.
    let crates = if target.has_runtime() {
        &crates[..]
    } else {
        &crates[2..]
    };
    for &(in_tree, in_checkout, parts) in crates {
        for part in parts {
            let from = root.join(in_checkout).join(part);
            let files = if from.is_dir() {
                tree(&from)
                    .into_iter()
                    .map(|(path, bytes)| (format!("{part}/{path}"), bytes))
                    .collect()
            } else {
                BTreeMap::from([(part.to_string(), fs::read(&from).unwrap())])
            };
            for (path, bytes) in files {
                checkout.insert(format!("{in_tree}/{path}"), bytes);
            }
        }
    }
    let mut without_headers = source;
    without_headers.retain(|path, _| !path.starts_with("include/"));
    assert!(
        without_headers == checkout,
        "the source tree is not the checkout's"
    );
}

#[test]
fn publish_merges_toolchains_into_the_manifest_at_the_destination() {
    let (_dir, nginx) = server();
    let dest = format!("{}/merge", nginx.url());
    let publish = |from: &Path| {
        let output = xtask()
            .args(["publish", "--to", &dest, "--dir"])
            .arg(from)
            .output()
            .unwrap();
        assert_success(&output, "cargo xtask publish");
        output
    };
    publish(stable_dist());

    let nightly = TempDir::new("dist-nightly");
    let output = xtask()
        .arg("dist")
        .arg("--sysroot")
        .arg(testkit::sysroot_for(&testkit::test_nightly()))
        .args(["--no-runner", "--out"])
        .arg(nightly.path())
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask dist (nightly)");
    // The release workflow's merge step: one dist of both, from the two directories.
    let both = TempDir::new("dist-both");
    let output = xtask()
        .arg("dist")
        .arg("--include")
        .arg(stable_dist())
        .arg("--include")
        .arg(nightly.path())
        .args(["--no-runner", "--out"])
        .arg(both.path())
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask dist --include");
    let included = manifest(both.path());
    assert_eq!(
        included["sysroots"].as_array().unwrap().len(),
        2,
        "{included}"
    );
    assert_eq!(included["runner"], manifest(stable_dist())["runner"]);
    for target in [STD_TARGET, AARCH64_TARGET] {
        assert_eq!(
            included["targets"][target]["sysroots"],
            manifest(stable_dist())["targets"][target]["sysroots"]
        );
    }
    for file in hashes(both.path()).keys() {
        if file.starts_with("rust-std-") || file.starts_with("hyperlight-run-") {
            let from = [stable_dist(), nightly.path()].map(|d| d.join(file));
            assert!(from.iter().any(|f| f.exists()), "{file} came from nowhere");
        }
    }

    let output = publish(nightly.path());
    assert!(
        // The stable dist's, of its three targets.
        text(&output.stderr).contains("keeping 3 other sysroot(s)"),
        "{}",
        text(&output.stderr)
    );

    let served = nginx.www().join("merge");
    let merged = manifest(&served);
    let releases: Vec<&str> = merged["sysroots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["release"].as_str().unwrap())
        .collect();
    assert_eq!(releases.len(), 2, "{merged}");
    assert!(
        releases.iter().any(|r| r.contains("nightly")),
        "{releases:?}"
    );
    assert!(
        releases.contains(&testkit::pinned_toolchain().as_str()),
        "{releases:?}"
    );
    assert!(merged["runner"].is_object(), "the runner entry was dropped");
    assert!(merged["source"].is_object(), "the source entry was dropped");
    for target in [STD_TARGET, AARCH64_TARGET] {
        let entry = &merged["targets"][target];
        assert_eq!(entry["sysroots"].as_array().unwrap().len(), 1, "{merged}");
        assert!(
            entry["source"].is_object(),
            "the {target} source entry was dropped"
        );
    }
    for sysroot in merged["sysroots"].as_array().unwrap() {
        let file = served.join(sysroot["url"].as_str().unwrap());
        assert_eq!(sysroot["sha256"], sha256(&fs::read(file).unwrap()));
    }
    let sha_line = fs::read_to_string(served.join("manifest.json.sha256")).unwrap();
    assert!(sha_line.starts_with(&sha256(&fs::read(served.join("manifest.json")).unwrap())));
    // Artifacts first, the manifest last.
    let log = nginx.access_log();
    let puts: Vec<&str> = log.lines().filter(|l| l.starts_with("PUT")).collect();
    assert!(
        puts.last().unwrap().contains("manifest.json.sig"),
        "{puts:?}"
    );
    assert!(
        puts[puts.len() - 2].contains("manifest.json.sha256"),
        "{puts:?}"
    );
    assert!(puts[puts.len() - 3].contains("manifest.json "), "{puts:?}");
}

/// `cargo xtask publish --dir DIR --signing-key KEY --to DEST`.
fn publish(dir: &Path, key: &Path, dest: &str) -> std::process::Output {
    xtask()
        .args(["publish", "--to", dest, "--dir"])
        .arg(dir)
        .arg("--signing-key")
        .arg(key)
        .output()
        .unwrap()
}

/// [`publish`], which must fail; returns its stderr.
fn failing_publish(dir: &Path, key: &Path, dest: &str) -> String {
    let output = publish(dir, key, dest);
    assert!(!output.status.success());
    text(&output.stderr)
}

#[test]
fn publish_failure_names_the_file_and_the_status() {
    let (_dir, nginx) = server();
    let dist = TempDir::new("dist-fail");
    let key = key_file(dist.path(), 1);
    fake_dist(dist.path(), "aaaaaaaaa", "#!/bin/sh\n", &key);
    let stderr = failing_publish(dist.path(), &key, &format!("{}/tar500", nginx.url()));
    assert!(stderr.contains("PUT http://"), "{stderr}");
    assert!(stderr.contains(".tar.gz failed: HTTP 500"), "{stderr}");
    assert!(!nginx.www().join("manifest.json").exists());

    // A manifest at the destination that does not match its .sha256, or is unsigned, is not
    // merged with.
    let broken = nginx.www().join("broken");
    fs::create_dir_all(&broken).unwrap();
    fs::write(broken.join("manifest.json"), "{}\n").unwrap();
    fs::write(
        broken.join("manifest.json.sha256"),
        format!("{}  manifest.json\n", "0".repeat(64)),
    )
    .unwrap();
    let dest = format!("{}/broken", nginx.url());
    let stderr = failing_publish(dist.path(), &key, &dest);
    assert!(stderr.contains("cannot be merged with"), "{stderr}");
    assert!(stderr.contains("it has no manifest.json.sig"), "{stderr}");
    fs::write(
        broken.join("manifest.json.sig"),
        hyperlight_install::signature::sign(b"{}\n", &SigningKey::read(&key).unwrap()),
    )
    .unwrap();
    let stderr = failing_publish(dist.path(), &key, &dest);
    assert!(stderr.contains("cannot be merged with"), "{stderr}");
    assert!(stderr.contains("manifest.json.sha256 says"), "{stderr}");
    assert!(
        !nginx.access_log().contains("PUT /broken/"),
        "uploaded although the merge failed"
    );
}

/// A dist directory of fake sysroots (a few bytes each) for `(release, commit-date)` pairs,
/// with its manifest signed by `key`: what a day's `cargo xtask dist --no-runner` would write,
/// without a build.
fn fake_sysroots(dir: &Path, sysroots: &[(&str, &str)], key: &Path) {
    let mut entries = Vec::new();
    for (release, date) in sysroots {
        let commit = sha256(format!("{release} {date}").as_bytes());
        let name = format!(
            "rust-std-{release}-{}-x86_64-hyperlight-none.tar.gz",
            &commit[..9]
        );
        let data = format!("sysroot {release} {date}");
        fs::write(dir.join(&name), &data).unwrap();
        entries.push(serde_json::json!({
            "release": release, "commit-hash": commit, "commit-date": date,
            "host": "x86_64-unknown-linux-gnu", "url": name, "sha256": sha256(data.as_bytes()),
            "size": data.len(), "installed-sha256": sha256(b"x"),
        }));
    }
    let manifest = serde_json::json!({
        "manifest-version": "2", "date": "2026-10-29", "target": "x86_64-hyperlight-none",
        "component": COMPONENT, "sysroots": entries,
    });
    let json = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    fs::write(dir.join("manifest.json"), &json).unwrap();
    fs::write(
        dir.join("manifest.json.sha256"),
        format!("{}  manifest.json\n", sha256(json.as_bytes())),
    )
    .unwrap();
    let sig = hyperlight_install::signature::sign(json.as_bytes(), &SigningKey::read(key).unwrap());
    fs::write(dir.join("manifest.json.sig"), sig).unwrap();
}

#[test]
fn publish_keeps_only_the_newest_nightlies() {
    let (_dir, nginx) = server();
    let dest = format!("{}/nightlies", nginx.url());
    let keys = TempDir::new("nightlies-key");
    let key = key_file(keys.path(), 7);
    let publish = |dir: &Path| {
        let output = xtask()
            .args(["publish", "--to", &dest, "--keep-nightlies", "1", "--dir"])
            .arg(dir)
            .arg("--signing-key")
            .arg(&key)
            .output()
            .unwrap();
        assert_success(&output, "cargo xtask publish --keep-nightlies 1");
        text(&output.stderr)
    };
    let day1 = TempDir::new("nightlies-day1");
    fake_sysroots(
        day1.path(),
        &[("1.99.1", "2026-10-13"), ("1.101.0-nightly", "2026-10-27")],
        &key,
    );
    publish(day1.path());
    // The next day's nightly, with an older one this dist still carries.
    let day2 = TempDir::new("nightlies-day2");
    fake_sysroots(
        day2.path(),
        &[
            ("1.101.0-nightly", "2026-10-28"),
            ("1.100.0-nightly", "2026-10-01"),
        ],
        &key,
    );
    let stderr = publish(day2.path());
    assert!(
        stderr.contains("dropping the sysroot for rustc 1.100.0-nightly"),
        "{stderr}"
    );

    let served = nginx.www().join("nightlies");
    let merged = manifest(&served);
    let kept: Vec<(&str, &str)> = merged["sysroots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["release"].as_str().unwrap(),
                s["commit-date"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        kept,
        [("1.101.0-nightly", "2026-10-28"), ("1.99.1", "2026-10-13")]
    );
    let url = |dir: &Path, date: &str| -> String {
        manifest(dir)["sysroots"]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["commit-date"] == date)
            .unwrap()["url"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let (stale, replaced) = (
        url(day2.path(), "2026-10-01"),
        url(day1.path(), "2026-10-27"),
    );
    let log = nginx.access_log();
    assert!(!log.contains(&format!("PUT /nightlies/{stale}")), "{log}");
    assert!(
        log.contains(&format!("DELETE /nightlies/{replaced}")),
        "{log}"
    );
    assert!(!served.join(&replaced).exists());
    for sysroot in merged["sysroots"].as_array().unwrap() {
        assert!(served.join(sysroot["url"].as_str().unwrap()).is_file());
    }
}

#[test]
fn keygen_and_dist_sign_the_manifest() {
    let dir = TempDir::new("dist-signed");
    let key = dir.path().join("release.key");
    let output = xtask()
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask keygen");
    let public: PublicKey = text(&output.stdout).trim().parse().unwrap();
    assert_eq!(
        fs::read_to_string(dir.path().join("release.key.pub")).unwrap(),
        format!("{public}\n")
    );
    let mode = fs::metadata(&key).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let again = xtask()
        .arg("keygen")
        .arg("--out")
        .arg(&key)
        .output()
        .unwrap();
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("already exists"));
    assert_eq!(SigningKey::read(&key).unwrap().public_key(), public);

    let out = dir.path().join("dist");
    let flags = ["--no-runner", "--signing-key", key.to_str().unwrap()];
    let output = dist_into(&out, &flags);
    assert_success(&output, "cargo xtask dist --signing-key");
    assert!(
        !text(&output.stderr).contains("development key"),
        "{}",
        text(&output.stderr)
    );
    let served: PublicKey = fs::read_to_string(out.join("release-key.pub"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(served, public);
    let (json, sig) = (
        fs::read(out.join("manifest.json")).unwrap(),
        fs::read(out.join("manifest.json.sig")).unwrap(),
    );
    verify(&json, &sig, &served, "manifest.json").unwrap();

    // Another key does not take this dist in.
    let other = key_file(dir.path(), 2);
    let output = xtask()
        .arg("dist")
        .arg("--include")
        .arg(&out)
        .args(["--no-runner", "--signing-key"])
        .arg(&other)
        .arg("--out")
        .arg(dir.path().join("merged"))
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("is not signed by the signing key in use"),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("it is signed by key {public}")),
        "{stderr}"
    );
}

#[test]
fn publish_signs_the_merged_manifest_and_refuses_another_key() {
    let (_dir, nginx) = server();
    let dists = TempDir::new("dist-keys");
    let (ours, theirs) = (key_file(dists.path(), 1), key_file(dists.path(), 2));
    let public = |key: &Path| SigningKey::read(key).unwrap().public_key();
    let dest = format!("{}/signed", nginx.url());
    let dist = |commit: &str, key: &Path| {
        let dir = dists.path().join(commit);
        fs::create_dir(&dir).unwrap();
        fake_dist(&dir, commit, "#!/bin/sh\n", key);
        dir
    };
    for commit in ["aaaaaaaaa", "bbbbbbbbb"] {
        assert_success(&publish(&dist(commit, &ours), &ours, &dest), "publish");
    }
    let served = nginx.www().join("signed");
    let json = fs::read(served.join("manifest.json")).unwrap();
    let merged = Manifest::parse(&json, "served").unwrap();
    assert_eq!(merged.sysroots.len(), 2, "{merged:?}");
    let sig = fs::read(served.join("manifest.json.sig")).unwrap();
    verify(&json, &sig, &public(&ours), "served").unwrap();
    let log = nginx.access_log();
    let puts: Vec<&str> = log.lines().filter(|l| l.starts_with("PUT")).collect();
    let last: Vec<&str> = puts[puts.len() - 3..]
        .iter()
        .map(|l| l.split(' ').nth(1).unwrap())
        .collect();
    assert_eq!(
        last,
        [
            "/signed/manifest.json",
            "/signed/manifest.json.sha256",
            "/signed/manifest.json.sig"
        ]
    );

    // Another key's release at the destination is not merged with, and nothing is uploaded.
    let stderr = failing_publish(&dist("ccccccccc", &theirs), &theirs, &dest);
    assert!(
        stderr.contains(&format!(
            "signed by key {}, not by the key publishing ({})",
            public(&ours),
            public(&theirs)
        )),
        "{stderr}"
    );
    // A dist signed by another key than the one publishing is not published at all.
    let stderr = failing_publish(
        &dists.path().join("aaaaaaaaa"),
        &theirs,
        &format!("{}/fresh", nginx.url()),
    );
    assert!(
        stderr.contains("is not signed by the signing key in use"),
        "{stderr}"
    );
    let log = nginx.access_log();
    assert!(
        !log.contains("ccccccccc") && !log.contains("/fresh/"),
        "{log}"
    );
    assert_eq!(fs::read(served.join("manifest.json")).unwrap(), json);
}

// ---------------------------------------------------------------------------------------------
// GitHub backend against a stand-in

/// A signing key file `key-SEED` in `dir`, made from a fixed seed.
fn key_file(dir: &Path, seed: u8) -> PathBuf {
    let path = dir.join(format!("key-{seed}"));
    SigningKey::from_seed([seed; 32]).write_new(&path).unwrap();
    path
}

/// A small fake dist directory: one sysroot (fake bytes) for `commit`, install.sh, and the
/// manifest signed with the key in the file `key`.
fn fake_dist(dir: &Path, commit: &str, install_sh: &str, key: &Path) {
    let name = format!("rust-std-1.95.0-{commit}-x86_64-hyperlight-none.tar.gz");
    let data = format!("sysroot {commit}");
    fs::write(dir.join(&name), &data).unwrap();
    fs::write(dir.join("install.sh"), install_sh).unwrap();
    let mut manifest = Manifest::new("2026-05-19".into());
    manifest.add_sysroot(
        Target::None,
        SysrootEntry {
            release: "1.95.0".into(),
            commit_hash: commit.into(),
            commit_date: "2026-04-14".into(),
            host: "x86_64-unknown-linux-gnu".into(),
            url: name,
            sha256: sha256(data.as_bytes()),
            size: data.len() as u64,
            installed_sha256: sha256(b"x"),
        },
    );
    manifest
        .write_dir(dir, &SigningKey::read(key).unwrap())
        .unwrap();
}

#[derive(Default)]
struct FakeGitHub {
    release: Option<serde_json::Value>,
    assets: BTreeMap<u64, (String, Vec<u8>)>,
    next_id: u64,
    requests: Vec<String>,
}

/// Serves the GitHub API calls publish makes; returns its base URL and the shared state.
fn start_fake_github(token: &'static str) -> (String, Arc<Mutex<FakeGitHub>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(Mutex::new(FakeGitHub {
        next_id: 1,
        ..FakeGitHub::default()
    }));
    let (shared, url) = (state.clone(), base.clone());
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { break };
            serve(stream, &url, token, &shared);
        }
    });
    (base, state)
}

fn serve(stream: TcpStream, base: &str, token: &str, state: &Mutex<FakeGitHub>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    let mut parts = line.split_whitespace();
    let (method, target) = (
        parts.next().unwrap_or("").to_owned(),
        parts.next().unwrap_or("").to_owned(),
    );
    let (mut length, mut authorized) = (0usize, false);
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).unwrap();
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':').unwrap();
        match name.to_ascii_lowercase().as_str() {
            "content-length" => length = value.trim().parse().unwrap(),
            "authorization" => authorized = value.trim() == format!("Bearer {token}"),
            _ => {}
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).unwrap();

    let mut state = state.lock().unwrap();
    state.requests.push(format!("{method} {target}"));
    let asset_json = |id: u64, name: &str, size: usize| {
        serde_json::json!({
            "id": id, "name": name, "size": size,
            "url": format!("{base}/repos/o/r/releases/assets/{id}"),
            "browser_download_url": format!("{base}/download/{name}"),
        })
    };
    let (status, response): (u16, Vec<u8>) = if !authorized {
        (401, br#"{"message":"Bad credentials"}"#.to_vec())
    } else if method == "GET" && target == "/repos/o/r/releases/tags/v1" {
        match &state.release {
            None => (404, br#"{"message":"Not Found"}"#.to_vec()),
            Some(release) => {
                let mut release = release.clone();
                release["assets"] = state
                    .assets
                    .iter()
                    .map(|(id, (name, data))| asset_json(*id, name, data.len()))
                    .collect();
                (200, release.to_string().into_bytes())
            }
        }
    } else if method == "POST" && target == "/repos/o/r/releases" {
        let request: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(request["tag_name"], "v1");
        let release = serde_json::json!({
            "id": 7, "tag_name": "v1", "assets": [],
            "upload_url": format!("{base}/uploads/repos/o/r/releases/7/assets{{?name,label}}"),
        });
        state.release = Some(release.clone());
        (201, release.to_string().into_bytes())
    } else if let Some(name) = target
        .strip_prefix("/uploads/repos/o/r/releases/7/assets?name=")
        .filter(|_| method == "POST")
    {
        if state.assets.values().any(|(n, _)| n == name) {
            (422, br#"{"message":"already_exists"}"#.to_vec())
        } else {
            let id = state.next_id;
            state.next_id += 1;
            state.assets.insert(id, (name.to_owned(), body.clone()));
            (
                201,
                asset_json(id, name, body.len()).to_string().into_bytes(),
            )
        }
    } else if let Some(id) = target.strip_prefix("/repos/o/r/releases/assets/") {
        let id: u64 = id.parse().unwrap();
        match method.as_str() {
            "GET" => match state.assets.get(&id) {
                Some((_, data)) => (200, data.clone()),
                None => (404, Vec::new()),
            },
            "DELETE" => {
                state.assets.remove(&id);
                (204, Vec::new())
            }
            _ => (405, Vec::new()),
        }
    } else {
        (404, br#"{"message":"Not Found"}"#.to_vec())
    };
    drop(state);
    let mut stream = stream;
    let head = format!(
        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n",
        response.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&response);
}

#[test]
fn publish_to_github_creates_the_release_merges_and_refuses_to_overwrite() {
    const TOKEN: &str = "test-token";
    let (api, state) = start_fake_github(TOKEN);
    let keys = TempDir::new("gh-key");
    let key = key_file(keys.path(), 1);
    let publish = |dir: &Path, token: Option<&str>, extra: &[&str]| {
        let mut command = xtask();
        command
            .args(["publish", "--to", "github:o/r@v1", "--dir"])
            .arg(dir)
            .arg("--signing-key")
            .arg(&key)
            .args(extra)
            .env("GITHUB_API_URL", &api);
        if let Some(token) = token {
            command.env("GITHUB_TOKEN", token);
        }
        command.output().unwrap()
    };
    let first = TempDir::new("gh-first");
    fake_dist(first.path(), "aaaaaaaaa", "#!/bin/sh\necho v1\n", &key);

    let output = publish(first.path(), None, &[]);
    assert!(!output.status.success());
    assert!(
        text(&output.stderr).contains("set GITHUB_TOKEN"),
        "{}",
        text(&output.stderr)
    );
    assert!(state.lock().unwrap().requests.is_empty());

    assert_success(
        &publish(first.path(), Some(TOKEN), &[]),
        "publish to GitHub",
    );
    {
        let state = state.lock().unwrap();
        assert!(
            state
                .requests
                .contains(&"POST /repos/o/r/releases".to_owned()),
            "{:?}",
            state.requests
        );
        let uploads: Vec<&String> = state
            .requests
            .iter()
            .filter(|r| r.contains("/uploads/"))
            .collect();
        assert_eq!(uploads.len(), 5, "{uploads:?}");
        assert!(uploads[2].ends_with("name=manifest.json"), "{uploads:?}");
        assert!(
            uploads[3].ends_with("name=manifest.json.sha256"),
            "{uploads:?}"
        );
        assert!(
            uploads[4].ends_with("name=manifest.json.sig"),
            "{uploads:?}"
        );
    }

    // A second toolchain joins the first in the release's manifest; install.sh is unchanged.
    let second = TempDir::new("gh-second");
    fake_dist(second.path(), "bbbbbbbbb", "#!/bin/sh\necho v1\n", &key);
    let output = publish(second.path(), Some(TOKEN), &[]);
    assert_success(&output, "second publish to GitHub");
    assert!(text(&output.stderr).contains("install.sh is already there, unchanged"));
    let manifest_asset = |state: &FakeGitHub| -> serde_json::Value {
        let (_, data) = state
            .assets
            .values()
            .find(|(n, _)| n == "manifest.json")
            .unwrap();
        serde_json::from_slice(data).unwrap()
    };
    let merged = manifest_asset(&state.lock().unwrap());
    let commits: Vec<&str> = merged["sysroots"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["commit-hash"].as_str().unwrap())
        .collect();
    assert_eq!(commits.len(), 2, "{merged}");
    assert!(commits.contains(&"aaaaaaaaa") && commits.contains(&"bbbbbbbbb"));

    // A different file under an existing name is refused, unless --force.
    let third = TempDir::new("gh-third");
    fake_dist(third.path(), "bbbbbbbbb", "#!/bin/sh\necho v2\n", &key);
    let output = publish(third.path(), Some(TOKEN), &[]);
    assert!(!output.status.success());
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("release v1 already has a different install.sh"),
        "{stderr}"
    );
    assert!(stderr.contains("--force"), "{stderr}");
    assert_success(
        &publish(third.path(), Some(TOKEN), &["--force"]),
        "publish --force",
    );
    let state = state.lock().unwrap();
    assert!(state
        .requests
        .iter()
        .any(|r| r.starts_with("DELETE /repos/o/r/releases/assets/")));
    let (_, install_sh) = state
        .assets
        .values()
        .find(|(n, _)| n == "install.sh")
        .unwrap();
    assert_eq!(install_sh, b"#!/bin/sh\necho v2\n");
}
