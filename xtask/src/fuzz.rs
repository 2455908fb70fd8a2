//! `cargo xtask fuzz [--seconds N]`: seed the corpora from real guests and real dist output,
//! build the targets in `fuzz/` with cargo-fuzz on the test nightly (Cargo.toml's
//! `[workspace.metadata.toolchains]`), and run each for N seconds.
//! Any crash fails the command and names the input libFuzzer saved. docs/fuzzing.md has the
//! targets, the campaign figures and how to reproduce a crash.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use hyperlight_install::manifest::Manifest;
use hyperlight_install::signature::{self, SigningKey};
use hyperlight_install::Target;

use crate::dist::component::{runner_file, sysroot_tarball};
use crate::sysroot::{target_dir, VERSION_FILE};
use crate::toolchain::{project_root, test_nightly, Toolchain, TARGET};

pub const TARGETS: [&str; 5] = [
    "elf_loader",
    "gdb_registers",
    "hypercall",
    "manifest",
    "unpack",
];
pub const DEFAULT_SECONDS: u32 = 10;

/// Where `cargo install --root` puts cargo-fuzz: project-local, never ~/.cargo/bin.
pub fn tools_root() -> PathBuf {
    project_root().join("target/tools")
}

pub fn run(sh: &Shell, seconds: u32, only: &[String]) -> Result<()> {
    let root = project_root();
    let _dir = sh.push_dir(&root);
    let targets: Vec<&str> = if only.is_empty() {
        TARGETS.to_vec()
    } else {
        for name in only {
            if !TARGETS.contains(&name.as_str()) {
                bail!(
                    "no fuzz target `{name}`; the targets are {}",
                    TARGETS.join(", ")
                );
            }
        }
        only.iter().map(String::as_str).collect()
    };
    // cargo-fuzz needs nightly (sanitizer flags).
    let why = "cargo-fuzz builds with nightly";
    let nightly = Toolchain::provision(sh, Some(&test_nightly()?), &[], &[], why)?.name;
    ensure_cargo_fuzz(sh, &nightly)?;
    seed_corpora(sh, &root.join("fuzz/corpus"))?;
    // One build for all targets; release with debug assertions (cargo-fuzz's default).
    cmd!(sh, "cargo +{nightly} fuzz build --fuzz-dir fuzz").run()?;
    // The unpack target writes and removes a tree per input: tmpfs keeps that off the disk.
    if Path::new("/dev/shm").is_dir() {
        sh.set_var("FUZZ_SCRATCH", "/dev/shm");
    }
    let seconds = seconds.to_string();
    let mut failed = Vec::new();
    for target in targets {
        eprintln!("fuzzing {target} for {seconds}s");
        let corpus = root.join("fuzz/corpus").join(target);
        let artifacts = format!(
            "-artifact_prefix={}/",
            artifacts_dir(&root, target)?.display()
        );
        let status = cmd!(
            sh,
            "cargo +{nightly} fuzz run --fuzz-dir fuzz {target} {corpus} --
             -max_total_time={seconds} -timeout=10 -rss_limit_mb=2048 -max_len=1048576
             -print_final_stats=1 {artifacts}"
        )
        .quiet()
        .run();
        if status.is_err() {
            failed.push(target);
        }
    }
    if !failed.is_empty() {
        bail!(
            "fuzz target(s) {} found a crash; the input is in fuzz/artifacts/<target>/ \
             (reproduce: cargo +{nightly} fuzz run --fuzz-dir fuzz <target> <file>)",
            failed.join(", ")
        );
    }
    Ok(())
}

fn artifacts_dir(root: &Path, target: &str) -> Result<PathBuf> {
    let dir = root.join("fuzz/artifacts").join(target);
    fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// Makes `cargo fuzz` work: cargo-fuzz from PATH if present, else installed into
/// `target/tools` and that put first on PATH for the commands `sh` runs.
fn ensure_cargo_fuzz(sh: &Shell, nightly: &str) -> Result<()> {
    let bin = tools_root().join("bin");
    let path = std::env::var_os("PATH").unwrap_or_default();
    let on_path = std::env::split_paths(&path).any(|dir| dir.join("cargo-fuzz").is_file());
    if !on_path && !bin.join("cargo-fuzz").is_file() {
        eprintln!("installing cargo-fuzz into {}", tools_root().display());
        let root = tools_root();
        cmd!(
            sh,
            "cargo +{nightly} install cargo-fuzz --locked --root {root}"
        )
        .run()
        .context("installing cargo-fuzz (needs crates.io)")?;
    }
    let mut dirs = vec![bin];
    dirs.extend(std::env::split_paths(&path));
    sh.set_var("PATH", std::env::join_paths(dirs)?);
    Ok(())
}

/// Writes seed inputs (idempotent; the corpora are not committed, only regression inputs are).
fn seed_corpora(sh: &Shell, corpus: &Path) -> Result<()> {
    for target in TARGETS {
        fs::create_dir_all(corpus.join(target))?;
    }
    seed_elves(sh, &corpus.join("elf_loader"))?;
    let scratch = project_root().join("target/fuzz-seeds");
    let _ = fs::remove_dir_all(&scratch);
    fs::create_dir_all(&scratch)?;
    let manifest = seed_dist(&scratch, &corpus.join("unpack"))?;
    // The same manifest signed, as the target reads it: manifest, NUL, manifest.json.sig.
    let sig = signature::sign(&manifest, &SigningKey::from_seed(signature::FUZZ_KEY_SEED));
    let signed = [&manifest[..], b"\0", sig.as_bytes()].concat();
    fs::write(corpus.join("manifest/seed-dist-signed"), signed)?;
    fs::write(corpus.join("manifest/seed-dist"), manifest)?;
    // A release manifest from a real `cargo xtask dist` run, when the tests left one.
    for dist in ["dist", "target/testkit/dist-stable"] {
        let path = project_root().join(dist).join("manifest.json");
        if path.is_file() {
            let name = format!("seed-{}", dist.replace('/', "-"));
            fs::copy(&path, corpus.join("manifest").join(name))?;
        }
    }
    seed_hypercalls(&corpus.join("hypercall"))?;
    Ok(())
}

/// Real guests (examples and test guests the test suite built), stripped: the loader reads
/// program headers and segments only, and smaller seeds fuzz faster.
fn seed_elves(sh: &Shell, dir: &Path) -> Result<()> {
    let root = project_root();
    let mut found = 0;
    for workspace in ["examples", "tests/guests"] {
        for profile in ["debug", "release"] {
            let built = root
                .join(workspace)
                .join("target")
                .join(TARGET)
                .join(profile);
            let Ok(entries) = fs::read_dir(&built) else {
                continue;
            };
            for entry in entries {
                let path = entry?.path();
                if !path.is_file() || path.extension().is_some() {
                    continue;
                }
                let head = fs::read(&path).map(|b| b.starts_with(b"\x7fELF"))?;
                if !head {
                    continue;
                }
                let name = format!(
                    "seed-{}-{profile}",
                    path.file_name().unwrap().to_string_lossy()
                );
                let out = dir.join(name);
                if cmd!(sh, "strip --strip-all -o {out} {path}")
                    .quiet()
                    .run()
                    .is_err()
                {
                    fs::copy(&path, &out)?;
                }
                found += 1;
            }
        }
    }
    if found == 0 {
        eprintln!(
            "note: no built guests found for ELF seeds (run `cargo xtask test` first); \
             fuzzing elf_loader from the minimal seed only"
        );
    }
    // A minimal valid-looking header keeps the target useful on a fresh checkout.
    let mut minimal = vec![0u8; 64];
    minimal[..4].copy_from_slice(b"\x7fELF");
    minimal[4..7].copy_from_slice(&[2, 1, 1]);
    minimal[16] = 3; // ET_DYN
    minimal[18] = 62; // EM_X86_64
    fs::write(dir.join("seed-minimal-header"), minimal)?;
    Ok(())
}

/// Runs the real dist code on a tiny sysroot: the sysroot tarball (gzip and plain tar, so
/// mutations of tar headers are not all lost to gzip's CRC) and the manifest, which names a
/// runner too.
fn seed_dist(scratch: &Path, unpack_dir: &Path) -> Result<Vec<u8>> {
    let toolchain = Toolchain::resolve(None)?;
    let sysroot = scratch.join("sysroot");
    let target = target_dir(&sysroot);
    fs::create_dir_all(target.join("lib"))?;
    fs::copy(
        project_root()
            .join("target-specs")
            .join(format!("{TARGET}.json")),
        target.join("target.json"),
    )?;
    fs::write(target.join(VERSION_FILE), &toolchain.version.verbose)?;
    fs::write(
        target.join("lib/libcore-0123456789abcdef.rmeta"),
        b"rust\0\0\0\x09 seed",
    )?;
    let out = scratch.join("dist");
    fs::create_dir_all(&out)?;
    let fake_runner = scratch.join("hyperlight-run");
    fs::write(&fake_runner, b"\x7fELF seed runner")?;
    let mut manifest = Manifest::new("2026-01-01".into());
    manifest.add_sysroot(
        Target::None,
        sysroot_tarball(&sysroot, &toolchain.version, Target::None, &out)?,
    );
    manifest.runner = Some(runner_file(
        &fake_runner,
        "0.1.0",
        "x86_64-unknown-linux-musl",
        &out,
    )?);
    for url in manifest.urls().filter(|url| url.ends_with(".tar.gz")) {
        let bytes = fs::read(out.join(url))?;
        let plain = {
            use std::io::Read;
            let mut plain = Vec::new();
            flate2::read::GzDecoder::new(bytes.as_slice()).read_to_end(&mut plain)?;
            plain
        };
        fs::write(unpack_dir.join(format!("seed-{url}")), &bytes)?;
        fs::write(
            unpack_dir.join(format!("seed-{}.tar", url.trim_end_matches(".tar.gz"))),
            plain,
        )?;
    }
    Ok(manifest.render().0.into_bytes())
}

/// One input per hypercall in the fuzz target's encoding (selector, rdi, rsi, rdx, rsp, rip,
/// raw port, then guest memory): a write of "hello\n", a clock read, an exit, and an exception
/// frame as the stub leaves it.
fn seed_hypercalls(dir: &Path) -> Result<()> {
    let encode = |selector: u8, words: [u64; 5], port: u64, memory: &[u8]| {
        let mut bytes = vec![selector];
        for word in words.iter().chain([&port]) {
            bytes.extend_from_slice(&word.to_le_bytes());
        }
        bytes.truncate(49);
        bytes.resize(49, 0);
        bytes.extend_from_slice(memory);
        bytes
    };
    let mut memory = vec![0u8; 0x6000];
    memory[0x2000..0x2006].copy_from_slice(b"hello\n");
    // Exception frame at 0x5000: vector 14, error code 2, rip, cs, rflags, rsp.
    for (index, value) in [14u64, 2, 0x20_1000, 0x33, 0x202, 0x7ff0]
        .iter()
        .enumerate()
    {
        let at = 0x5000 + index * 8;
        memory[at..at + 8].copy_from_slice(&value.to_le_bytes());
    }
    let seeds = [
        (
            "write",
            encode(1, [1, 0x2000, 6, 0, 0x20_0000], 0, &memory[..0x2010]),
        ),
        ("clock", encode(2, [0, 0, 0, 0, 0x20_0000], 0, &[])),
        ("exit", encode(0, [3, 0, 0, 0, 0x20_0000], 0, &[])),
        (
            "exception",
            encode(0x83, [0, 0, 0, 0x5000, 0x3000], 0, &memory),
        ),
    ];
    for (name, bytes) in seeds {
        fs::write(dir.join(format!("seed-{name}")), bytes)?;
    }
    Ok(())
}
