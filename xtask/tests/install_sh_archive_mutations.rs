//! Hostile and mutated sysroot tarballs against the real installer: a release whose manifest
//! matches the tarball exactly (size, sha256, installed-sha256), so that only the installer's
//! archive checks stand between it and the toolchain.
//!
//! - Hand-made hostile members (a symbolic or hard link, `..`, an absolute path, a device, a
//!   file its `manifest.in` does not list, a `manifest.in` listing a file outside the target's
//!   directory) in the real release tarball: refused with exit 7, nothing changed.
//! - A few thousand mutated release-shaped archives (member types, names, link names, ustar
//!   prefixes, pax records, checksums, random bytes; a fixed seed, so every run checks the
//!   same cases) through `hyperlight_install::unpack`, the unpacker the installer uses (fuzzed
//!   too: fuzz/fuzz_targets/unpack.rs): it writes only plain files and directories inside its
//!   destination. Every 100th of them is also served to install.sh: it exits 0 or 7, stops with
//!   the unpacker's reason where the unpacker refuses, and leaves nothing behind.
//!
//! `INSTALL_SH_MUTATIONS=N` runs N mutated cases instead of the default.

mod support;

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use hyperlight_install::manifest::installed_sha256;
use hyperlight_install::unpack::{unpack_tar_gz, Limits, UnpackError};
use support::nginx::Nginx;
use support::{
    assert_failure, manifest, replace_file, serve_copy, server, sha256, stable_dist,
    sysroot_tarball, text, Sandbox, COMPONENT,
};
use testkit::{pinned_toolchain, TempDir, TARGET};

const DEFAULT_CASES: usize = 2000;
/// The mutated cases that also go through install.sh: every `INSTALL_EVERY`th.
const INSTALL_EVERY: usize = 100;
const EXIT_VERIFY: i32 = 7;
/// Absolute names the mutator writes point below here; it must never come into existence.
const ABSOLUTE_CANARY: &str = "/tmp/hyperlight-mutation-canary";
const BLOCK: usize = 512;

/// The package (top directory) of the stable dist's sysroot tarball; the installer expects the
/// tarball's name without `.tar.gz`.
fn package() -> String {
    sysroot_tarball(stable_dist())
        .trim_end_matches(".tar.gz")
        .to_owned()
}

/// xorshift64*: deterministic, dependency-free randomness for the mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Serves the stable dist at `<nginx>/<name>` with `tarball` as its sysroot tarball and a
/// manifest (and .sha256) that match it, as a compromised release would.
fn serve_with_sysroot(nginx: &Nginx, name: &str, tarball: &[u8]) -> PathBuf {
    let dist = stable_dist();
    let served = serve_copy(nginx, dist, name);
    replace_file(&served.join(sysroot_tarball(dist)), tarball);
    let mut manifest = manifest(dist);
    let entry = &mut manifest["sysroots"][0];
    entry["sha256"] = sha256(tarball).into();
    entry["size"] = (tarball.len() as u64).into();
    entry["installed-sha256"] = installed_listing(tarball).into();
    let text = serde_json::to_string_pretty(&manifest).unwrap() + "\n";
    support::replace_manifest(&served, text.as_bytes());
    served
}

/// The installed-sha256 of what `tarball` would install: its regular files in the component's
/// target directory (best effort: a tarball tar cannot read gets that of nothing).
fn installed_listing(tarball: &[u8]) -> String {
    let prefix = format!("{}/{COMPONENT}/", package());
    let mut files = Vec::new();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(tarball));
    if let Ok(entries) = archive.entries() {
        for mut entry in entries.flatten() {
            let Ok(path) = entry.path().map(|p| p.display().to_string()) else {
                continue;
            };
            let mut data = Vec::new();
            let regular = entry.header().entry_type() == tar::EntryType::Regular;
            if let Some(relative) = path.strip_prefix(&prefix) {
                if regular && relative.starts_with(&format!("lib/rustlib/{TARGET}/")) {
                    let _ = entry.read_to_end(&mut data);
                    files.push((relative.to_owned(), sha256(&data)));
                }
            }
        }
    }
    files.sort();
    installed_sha256(files.iter().map(|(p, h)| (p.as_str(), h.as_str())))
}

/// The stable dist's sysroot tarball with `manifest.in` replaced by `edit_manifest_in`'s result
/// and one more member, its name written into the raw header (when it fits) so that tar's own
/// checks cannot stop us from making it hostile.
fn real_tarball_with(
    edit_manifest_in: impl Fn(&str) -> String,
    name: &str,
    kind: tar::EntryType,
    link: Option<&str>,
) -> Vec<u8> {
    let original = fs::read(stable_dist().join(sysroot_tarball(stable_dist()))).unwrap();
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(original.as_slice()));
    let mut builder = tar::Builder::new(Vec::new());
    let manifest_in = format!("{}/{COMPONENT}/manifest.in", package());
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        let mut header = entry.header().clone();
        let path = entry.path().unwrap().display().to_string();
        let mut data = Vec::new();
        entry.read_to_end(&mut data).unwrap();
        if path == manifest_in {
            data = edit_manifest_in(&String::from_utf8(data).unwrap()).into_bytes();
            header.set_size(data.len() as u64);
        }
        // append_data writes the long names the original spells with GNU extensions.
        builder
            .append_data(&mut header, &path, data.as_slice())
            .unwrap();
    }
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_mode(0o644);
    let data: &[u8] = if kind == tar::EntryType::Regular {
        b"pwned\n"
    } else {
        b""
    };
    header.set_size(data.len() as u64);
    if let Some(link) = link {
        header.set_link_name(link).unwrap();
    }
    if name.len() <= 100 {
        let raw = &mut header.as_old_mut().name;
        raw[..name.len()].copy_from_slice(name.as_bytes());
        header.set_cksum();
        builder.append(&header, data).unwrap();
    } else {
        // A GNU long name: only for names tar accepts.
        builder.append_data(&mut header, name, data).unwrap();
    }
    gzip(&builder.into_inner().unwrap())
}

#[test]
fn hostile_members_in_a_matching_release_are_refused() {
    let (_dir, nginx) = server();
    let package = package();
    let tarball = sysroot_tarball(stable_dist());
    let inside = format!("{package}/{COMPONENT}/lib/rustlib/{TARGET}/lib");
    let absolute = format!("/tmp/hyperlight-evil-{}", std::process::id());
    let same = |listed: &str| listed.to_owned();
    let cases: Vec<(&str, String, tar::EntryType, Option<&str>, &str)> = vec![
        (
            "dotdot",
            format!("{package}/../../../evil"),
            tar::EntryType::Regular,
            None,
            "`..` in its path",
        ),
        (
            "absolute",
            absolute.clone(),
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
        (
            "unlisted",
            format!("{inside}/libevil.rlib"),
            tar::EntryType::Regular,
            None,
            "it holds files its manifest.in does not list (or lacks listed ones)",
        ),
    ];
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.fake_previous_install();
    sandbox.install_release_runner();
    let before = sandbox.snapshot();
    // `why`: what the installer says after the tarball's name.
    let run = |label: &str, bytes: Vec<u8>, why: &str| {
        serve_with_sysroot(&nginx, label, &bytes);
        let url = format!("{}/{label}", nginx.url());
        let output = sandbox.run(&["-y", "-q", "--dist-server", &url]);
        let said = format!("\nerror: {tarball}: {why}; nothing was installed\n");
        assert_failure(&output, EXIT_VERIFY, &[&said], &sandbox, &before);
    };
    for (label, member, kind, link, reason) in cases {
        let why = if label == "unlisted" {
            reason.to_owned()
        } else {
            format!("cannot unpack it: refusing archive member `{member}`: {reason}")
        };
        run(label, real_tarball_with(same, &member, kind, link), &why);
        assert!(!Path::new(&absolute).exists(), "{label}: wrote {absolute}");
    }
    // A manifest.in naming a file outside the target's directory, and the file.
    let outside = real_tarball_with(
        |listed| format!("file:bin/evil\n{listed}"),
        &format!("{package}/{COMPONENT}/bin/evil"),
        tar::EntryType::Regular,
        None,
    );
    let reason = format!("it lists `file:bin/evil`, outside lib/rustlib/{TARGET}");
    run("outside", outside, &reason);
    let evil: Vec<PathBuf> = find_named(sandbox.dir.path(), "evil");
    assert!(evil.is_empty(), "wrote {evil:?}");
}

/// Paths below `dir` whose file name is `name`.
fn find_named(dir: &Path, name: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.file_name().is_some_and(|n| n == name) {
            found.push(path.clone());
        }
        if fs::symlink_metadata(&path).unwrap().is_dir() {
            found.extend(find_named(&path, name));
        }
    }
    found
}

/// The uncompressed seeds: a release-shaped archive, one with a GNU long name and one with a
/// pax path record, so the mutations reach all three ways tar spells a name.
fn seeds(package: &str) -> Vec<Vec<u8>> {
    let file = |builder: &mut tar::Builder<Vec<u8>>, path: &str, data: &[u8]| {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder.append_data(&mut header, path, data).unwrap();
    };
    let release = |extra: &dyn Fn(&mut tar::Builder<Vec<u8>>)| {
        let mut builder = tar::Builder::new(Vec::new());
        let mut dir = tar::Header::new_gnu();
        dir.set_entry_type(tar::EntryType::Directory);
        dir.set_mode(0o755);
        dir.set_size(0);
        builder
            .append_data(&mut dir, format!("{package}/"), &[][..])
            .unwrap();
        file(
            &mut builder,
            &format!("{package}/components"),
            format!("{COMPONENT}\n").as_bytes(),
        );
        file(
            &mut builder,
            &format!("{package}/rust-installer-version"),
            b"3\n",
        );
        let target_json = "lib/rustlib/x86_64-hyperlight-none/target.json";
        file(
            &mut builder,
            &format!("{package}/{COMPONENT}/manifest.in"),
            format!("file:{target_json}\n").as_bytes(),
        );
        file(
            &mut builder,
            &format!("{package}/{COMPONENT}/{target_json}"),
            b"{}\n",
        );
        extra(&mut builder);
        builder.into_inner().unwrap()
    };
    let long_name = format!("{package}/{}/long", "d".repeat(120));
    let pax = |builder: &mut tar::Builder<Vec<u8>>| {
        builder
            .append_pax_extensions([("path", format!("{package}/from-pax").as_bytes())])
            .unwrap();
        file(builder, &format!("{package}/short"), b"pax\n");
    };
    vec![
        release(&|_| {}),
        release(&|builder| file(builder, &long_name, b"long\n")),
        release(&pax),
    ]
}

/// Offsets of the header blocks of an uncompressed archive (data blocks skipped).
fn headers(tar: &[u8]) -> Vec<usize> {
    let mut offsets = Vec::new();
    let mut at = 0;
    while at + BLOCK <= tar.len() && tar[at..at + BLOCK].iter().any(|&b| b != 0) {
        offsets.push(at);
        let size_field = String::from_utf8_lossy(&tar[at + 124..at + 136]).into_owned();
        let size = u64::from_str_radix(size_field.trim_matches(|c: char| c == '\0' || c == ' '), 8)
            .unwrap_or(0) as usize;
        at += BLOCK + size.div_ceil(BLOCK) * BLOCK;
    }
    offsets
}

fn set_field(tar: &mut [u8], at: usize, len: usize, value: &[u8]) {
    let field = &mut tar[at..at + len];
    field.fill(0);
    let n = value.len().min(len);
    field[..n].copy_from_slice(&value[..n]);
}

fn fix_checksum(tar: &mut [u8], header: usize) {
    tar[header + 148..header + 156].fill(b' ');
    let sum: u32 = tar[header..header + BLOCK]
        .iter()
        .map(|&b| u32::from(b))
        .sum();
    let field = format!("{sum:06o}\0 ");
    tar[header + 148..header + 156].copy_from_slice(field.as_bytes());
}

/// One to three mutations of `seed`'s headers (or of any byte), checksums mostly kept valid so
/// that tar gets past them.
fn mutate(seed: &[u8], rng: &mut Rng, package: &str) -> Vec<u8> {
    let hostile_names: Vec<String> = vec![
        "../escaped".into(),
        format!("{package}/../../escaped"),
        format!("./{package}/../../escaped"),
        format!("{package}/a/../../../escaped"),
        "..".into(),
        format!("{package}/.."),
        format!("{ABSOLUTE_CANARY}/absolute"),
        format!("/{package}/components"),
        format!("//{package}/x"),
        format!("{package}/./ok"),
        format!("{package}/components"),
        format!("{package}/{COMPONENT}"),
        String::new(),
    ];
    let link_names: Vec<String> = vec![
        "/etc/passwd".into(),
        "../../escaped".into(),
        format!("{package}/components"),
        ABSOLUTE_CANARY.into(),
        "".into(),
    ];
    const TYPES: &[u8] = b"0123456 7LKxgSDVM\0";
    let mut tar = seed.to_vec();
    let blocks = headers(&tar);
    for _ in 0..1 + rng.below(3) {
        let header = *rng.pick(&blocks);
        match rng.below(9) {
            0 | 1 => tar[header + 156] = *rng.pick(TYPES),
            2 | 3 => set_field(&mut tar, header, 100, rng.pick(&hostile_names).as_bytes()),
            4 => set_field(
                &mut tar,
                header + 157,
                100,
                rng.pick(&link_names).as_bytes(),
            ),
            5 => {
                // A ustar prefix is joined in front of the name.
                tar[header + 257..header + 265].copy_from_slice(b"ustar\x0000");
                let prefix = *rng.pick(&["..", "/tmp", package, "../..", ABSOLUTE_CANARY]);
                set_field(&mut tar, header + 345, 155, prefix.as_bytes());
            }
            6 => {
                // The data block after a header: a pax record or a GNU long name, if it is one.
                let data = header + BLOCK;
                if data + BLOCK <= tar.len() {
                    let name = rng.pick(&hostile_names).clone();
                    let record = if rng.below(2) == 0 {
                        let body = format!(" path={name}\n");
                        let len = body.len() + 2 + usize::from(body.len() + 2 >= 100);
                        format!("{len}{body}")
                    } else {
                        name + "\0"
                    };
                    set_field(&mut tar, data, BLOCK, record.as_bytes());
                    let size = format!("{:011o}\0", record.len());
                    tar[header + 124..header + 136].copy_from_slice(size.as_bytes());
                }
            }
            7 => {
                let mode = *rng.pick(&["0004755", "0000777", "0001777", "0000000"]);
                set_field(&mut tar, header + 100, 8, mode.as_bytes());
            }
            _ => {
                let at = header + rng.below(BLOCK);
                tar[at] = rng.next() as u8;
            }
        }
        if rng.below(10) != 0 {
            fix_checksum(&mut tar, header);
        }
    }
    tar
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(bytes).unwrap();
    gz.finish().unwrap()
}

/// Everything below `root` is a plain file (one link) or a directory; returns the offenders.
fn unsafe_entries(root: &Path) -> Vec<String> {
    let mut offenders = Vec::new();
    let Ok(entries) = fs::read_dir(root) else {
        return offenders;
    };
    for entry in entries {
        let path = entry.unwrap().path();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            offenders.extend(unsafe_entries(&path));
        } else if !meta.is_file() || meta.nlink() != 1 {
            offenders.push(format!("{} ({:?})", path.display(), meta.file_type()));
        }
    }
    offenders
}

/// A refusal of a hostile member, one that could land outside the destination or is not a plain
/// file or directory (counted, so that the mutations are known to produce them).
fn is_hostile(err: &UnpackError) -> bool {
    match err {
        UnpackError::Unsafe { reason, .. } => matches!(
            *reason,
            "`..` in its path"
                | "absolute path"
                | "symbolic link"
                | "hard link"
                | "device file"
                | "named pipe"
        ),
        _ => false,
    }
}

#[test]
fn mutated_archives_unpack_only_plain_files_and_install_sh_stops_where_the_unpacker_does() {
    let cases = std::env::var("INSTALL_SH_MUTATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(DEFAULT_CASES);
    let package = package();
    let seeds = seeds(&package);
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let (_dir, nginx) = server();
    let sandbox = Sandbox::new(&pinned_toolchain());
    sandbox.install_release_runner();
    let tarball = sysroot_tarball(stable_dist());
    let mut hostile = 0;
    // Outcomes of the cases served to install.sh: both must occur.
    let (mut installed, mut refused) = (0, 0);
    for case in 0..cases {
        let archive = gzip(&mutate(&seeds[case % seeds.len()], &mut rng, &package));
        let dest = TempDir::new("archive-mutations");
        let verdict = unpack_tar_gz(archive.as_slice(), dest.path(), Limits::default());
        let offenders = unsafe_entries(dest.path());
        assert!(
            offenders.is_empty(),
            "case {case}: the unpacker wrote {offenders:?}"
        );
        if verdict.as_ref().is_err_and(is_hostile) {
            hostile += 1;
        }
        if case % INSTALL_EVERY != 0 {
            continue;
        }
        let label = format!("case-{case}");
        serve_with_sysroot(&nginx, &label, &archive);
        let before = sandbox.snapshot();
        let url = format!("{}/{label}", nginx.url());
        let output = sandbox.run(&["-y", "-q", "--no-runner", "--dist-server", &url]);
        let stderr = text(&output.stderr);
        match output.status.code() {
            Some(0) => {
                installed += 1;
                assert!(
                    verdict.is_ok(),
                    "case {case}: installed what the unpacker refuses"
                );
                let offenders = unsafe_entries(&sandbox.rustlib().join(TARGET));
                assert!(offenders.is_empty(), "case {case}: installed {offenders:?}");
                let left: Vec<_> = fs::read_dir(sandbox.tmp()).unwrap().collect();
                assert!(left.is_empty(), "case {case}: left in TMPDIR: {left:?}");
            }
            Some(EXIT_VERIFY) => {
                refused += 1;
                if let Err(err) = &verdict {
                    let reason = err.to_string();
                    let said = format!(
                        "\nerror: {tarball}: cannot unpack it: {}",
                        reason.lines().next().unwrap_or_default()
                    );
                    assert!(stderr.contains(&said), "case {case}: {reason}\n{stderr}");
                }
                assert_failure(&output, EXIT_VERIFY, &[], &sandbox, &before);
            }
            code => panic!("case {case}: exit code {code:?}\n{stderr}"),
        }
    }
    assert!(!Path::new(ABSOLUTE_CANARY).exists());
    // The mutations must actually produce hostile archives, or this test proves nothing.
    assert!(
        installed > 0 && refused > 0,
        "install.sh installed {installed} and refused {refused} of the served cases"
    );
    assert!(
        hostile * 10 > cases,
        "only {hostile} of {cases} cases were hostile"
    );
}
