//! install.sh's unpacking (`unpack_sysroot`: the release's `hyperlight-unpack`, then the
//! rust-installer layout checks) against a few thousand mutated archives.
//!
//! The unpacker itself is fuzzed (fuzz/fuzz_targets/unpack.rs); this test covers the path
//! around it that libFuzzer cannot drive at useful speed: the shell code that runs it, reads
//! its verdict and goes on with what it unpacked. It mutates small release-shaped archives
//! (member types, names, link names, ustar prefixes, pax records, checksums, random bytes; a
//! fixed seed, so every run checks the same cases) and runs the real install.sh functions with
//! the dist's musl `hyperlight-unpack` on each. After install.sh, its work directory holds only
//! plain files and directories, nothing appeared beside it, it exited 0 or 7, and every archive
//! the unpacker refuses (in-process, on the same bytes) ended the install right there with exit
//! 7 and the unpacker's reason. `INSTALL_SH_MUTATIONS=N` runs N cases instead of the default.

mod support;

use std::fs;
use std::io::Write;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::time::Duration;

use hyperlight_unpack::{unpack_tar_gz, Limits, UnpackError};
use support::{manifest, mutation_cases, run_cases_in_two_shells, stable_dist, Rng, COMPONENT};
use testkit::TempDir;

const DEFAULT_CASES: usize = 2000;
const PACKAGE: &str = "rust-std-1.95.0-x86_64-hyperlight-none";
/// Absolute names the mutator writes point below here; it must never come into existence.
const ABSOLUTE_CANARY: &str = "/tmp/hyperlight-mutation-canary";
const BLOCK: usize = 512;

/// The uncompressed seeds: a release-shaped archive, one with a GNU long name and one with a
/// pax path record, so the mutations reach all three ways tar spells a name.
fn seeds() -> Vec<Vec<u8>> {
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
            .append_data(&mut dir, format!("{PACKAGE}/"), &[][..])
            .unwrap();
        file(
            &mut builder,
            &format!("{PACKAGE}/components"),
            format!("{COMPONENT}\n").as_bytes(),
        );
        let target_json = "lib/rustlib/x86_64-hyperlight-none/target.json";
        file(
            &mut builder,
            &format!("{PACKAGE}/{COMPONENT}/manifest.in"),
            format!("file:{target_json}\n").as_bytes(),
        );
        file(
            &mut builder,
            &format!("{PACKAGE}/{COMPONENT}/{target_json}"),
            b"{}\n",
        );
        extra(&mut builder);
        builder.into_inner().unwrap()
    };
    let long_name = format!("{PACKAGE}/{}/long", "d".repeat(120));
    let pax = |builder: &mut tar::Builder<Vec<u8>>| {
        builder
            .append_pax_extensions([("path", format!("{PACKAGE}/from-pax").as_bytes())])
            .unwrap();
        file(builder, &format!("{PACKAGE}/short"), b"pax\n");
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
fn mutate(seed: &[u8], rng: &mut Rng) -> Vec<u8> {
    let hostile_names: Vec<String> = vec![
        "../escaped".into(),
        format!("{PACKAGE}/../../escaped"),
        format!("./{PACKAGE}/../../escaped"),
        format!("{PACKAGE}/a/../../../escaped"),
        "..".into(),
        format!("{PACKAGE}/.."),
        format!("{ABSOLUTE_CANARY}/absolute"),
        format!("/{PACKAGE}/components"),
        format!("//{PACKAGE}/x"),
        format!("{PACKAGE}/./ok"),
        format!("{PACKAGE}/components"),
        format!("{PACKAGE}/{COMPONENT}"),
        String::new(),
    ];
    let link_names: Vec<String> = vec![
        "/etc/passwd".into(),
        "../../escaped".into(),
        format!("{PACKAGE}/components"),
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
                let prefix = *rng.pick(&["..", "/tmp", PACKAGE, "../..", ABSOLUTE_CANARY]);
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
fn install_sh_unpacks_only_plain_files_inside_its_directory() {
    let cases = mutation_cases("INSTALL_SH_MUTATIONS", DEFAULT_CASES);
    let dir = TempDir::new("archive-mutations");
    let dist = stable_dist();
    let unpacker = dir.path().join("hyperlight-unpack");
    fs::copy(
        dist.join(manifest(dist)["unpacker"]["url"].as_str().unwrap()),
        &unpacker,
    )
    .unwrap();
    fs::set_permissions(&unpacker, fs::Permissions::from_mode(0o755)).unwrap();
    let seeds = seeds();
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut rust_verdicts = Vec::with_capacity(cases);
    for case in 0..cases {
        let archive = gzip(&mutate(&seeds[case % seeds.len()], &mut rng));
        let case_dir = dir.path().join(format!("case-{case:06}"));
        fs::create_dir(&case_dir).unwrap();
        fs::write(case_dir.join("archive.tar.gz"), &archive).unwrap();
        let rust_dir = TempDir::new("archive-mutations-rust");
        let verdict = unpack_tar_gz(archive.as_slice(), rust_dir.path(), Limits::default());
        let offenders = unsafe_entries(rust_dir.path());
        assert!(
            offenders.is_empty(),
            "case {case}: the Rust unpacker wrote {offenders:?}"
        );
        rust_verdicts.push(verdict);
    }

    // Each case in a subshell, as install.sh's `die` exits.
    let script = r#"
        for case_dir in "$1"/case-*$2; do
            (
                WORK="$case_dir/work"
                UNPACK="$4"
                mkdir "$WORK"
                unpack_sysroot "$case_dir/archive.tar.gz" "$3.tar.gz"
            ) >/dev/null 2>"$case_dir/stderr"
            echo $? >"$case_dir/status"
        done
    "#;
    let limit = Duration::from_secs(60 + cases as u64 / 10);
    let unpacker = unpacker.to_str().unwrap();
    run_cases_in_two_shells(script, dir.path(), &[PACKAGE, unpacker], limit);

    let mut refused = 0;
    for (case, verdict) in rust_verdicts.iter().enumerate() {
        let case_dir = dir.path().join(format!("case-{case:06}"));
        let stderr = fs::read_to_string(case_dir.join("stderr")).unwrap();
        let code: i32 = fs::read_to_string(case_dir.join("status"))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        assert!(
            code == 0 || code == 7,
            "case {case}: exit code {code}: {stderr}"
        );
        let offenders = unsafe_entries(&case_dir.join("work"));
        assert!(
            offenders.is_empty(),
            "case {case}: install.sh unpacked {offenders:?}\n{stderr}"
        );
        let mut beside: Vec<String> = fs::read_dir(&case_dir)
            .unwrap()
            .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        beside.sort();
        assert_eq!(
            beside,
            ["archive.tar.gz", "status", "stderr", "work"],
            "case {case}"
        );
        match verdict {
            // install.sh stops at the unpacker's verdict and passes its reason on.
            Err(err) => {
                let reason = err.to_string();
                let said = format!(
                    "error: cannot unpack {PACKAGE}.tar.gz: {}",
                    reason.lines().next().unwrap_or_default()
                );
                assert!(
                    code == 7 && stderr.starts_with(&said),
                    "case {case}: the unpacker refuses ({reason}) but install.sh said:\n{stderr}"
                );
                if is_hostile(err) {
                    refused += 1;
                }
            }
            Ok(_) => assert!(
                !stderr.contains("cannot unpack"),
                "case {case}: the unpacker accepts it but install.sh said:\n{stderr}"
            ),
        }
    }
    assert!(!Path::new(ABSOLUTE_CANARY).exists());
    // The mutations must actually produce hostile archives, or this test proves nothing.
    assert!(
        refused * 10 > cases,
        "only {refused} of {cases} cases were hostile"
    );
}
