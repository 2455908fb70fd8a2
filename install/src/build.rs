//! Building a target's sysroot (core, alloc and compiler_builtins for the no_std targets;
//! std, test, their dependencies and the Hermit ABI object for x86_64-hyperlight-hermit) for
//! one toolchain from a source tree: what `cargo xtask sysroot` runs, and what an installer
//! runs when a release has no prebuilt sysroot for the user's rustc.
//!
//! A source tree is laid out like the installed target directory without its compiled parts:
//!
//! ```text
//! target.json      the target spec
//! include/         C headers for guests with C code (the no_std targets)
//! c-objects/       optionally, picolibc's prebuilt objects (`c_objects`)
//! src/hyperlight-rt/   the guest runtime's sources, x86-64 targets only (for
//!                  x86_64-hyperlight-hermit, its Hermit ABI)
//! src/sysroot/     Cargo.toml, Cargo.lock, src/lib.rs: the empty crate built with -Zbuild-std
//! ```
//!
//! A built target directory is the source tree plus `lib/*.{rlib,rmeta}` and `rustc-version`,
//! so any installed target directory is also a source tree: after `rustup update` the sysroot
//! is rebuilt from what rustup left behind.
//!
//! The crates are built for the *bare* target name found through `RUST_TARGET_PATH`: building
//! for a `.json` path would record a hashed triple, and every guest built with the bare name
//! would then fail with E0461.

use std::collections::VecDeque;
use std::fs;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{bail, Context, Result};

use crate::c_objects::OBJECTS_DIR;
use crate::toolchain::Toolchain;
use crate::unpack::{unpack_tar_gz, Limits};
use crate::Target;

pub const SPEC_FILE: &str = "target.json";
/// The file recording the `rustc -vV` that built the libraries.
pub const VERSION_FILE: &str = "rustc-version";
pub const LIB_DIR: &str = "lib";
pub const INCLUDE_DIR: &str = "include";
/// The guest runtime's sources: installing copies them out for guest projects' dependency on
/// the runtime (`runtime`), so the runtime always matches the installed target.
pub const RUNTIME_DIR: &str = "src/hyperlight-rt";
pub const CRATE_DIR: &str = "src/sysroot";
/// What a source tree consists of, as entries of its top directory. An installed target's
/// prebuilt C objects (`c_objects`) depend on no rustc, so a rebuild from it keeps them.
pub const SOURCE_PARTS: &[&str] = &[SPEC_FILE, INCLUDE_DIR, "src", OBJECTS_DIR];

/// The standard library crates a no_std guest links against; everything else in the build is
/// dropped.
const NO_STD_CRATES: &[&str] = &["core", "alloc", "compiler_builtins"];
/// The crates a std guest's `cargo build` and `cargo test` need at least.
const STD_CRATES: &[&str] = &["core", "alloc", "std", "panic_abort", "test"];
/// The (empty) crate the build compiles, whose own library is not part of the sysroot.
const SYSROOT_CRATE: &str = "hyperlight_sysroot";
/// The Hermit ABI object x86_64-hyperlight-hermit's spec links into every program
/// (`post-link-objects`).
pub const ABI_OBJECT: &str = "hyperlight-hermit.o";
/// How many of cargo's last stderr lines a failed build's error quotes.
const ERROR_TAIL: usize = 30;

/// What a build reports while it runs. Showing it (and saying that and why a build is
/// needed) is the caller's job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress<'a> {
    /// A step the user should know about, e.g. rust-src being added through rustup.
    Step(&'a str),
    /// A line cargo printed to stderr (`   Compiling core v0.0.0 (/rustc/...)`), as it comes.
    Cargo(&'a str),
}

/// Builds `target`'s sysroot for `toolchain` from the source tree `source` into
/// `<out>/lib/rustlib/<target>`, which it replaces. `source` is only read (it may be an
/// installed target directory, even `out`'s own); `work` holds the build, one at a time (the
/// next build for the same toolchain reuses it and is then quick). Adds rust-src through rustup
/// first if the toolchain lacks it. Two builds with the same toolchain give byte-identical
/// files, wherever `source`, `out` and `work` are.
pub fn build_sysroot(
    source: &Path,
    toolchain: &Toolchain,
    target: Target,
    out: &Path,
    work: &Path,
    mut progress: impl FnMut(Progress<'_>),
) -> Result<()> {
    check_source_tree(source, target)?;
    toolchain.ensure_rust_src(|message| progress(Progress::Step(message)))?;

    let spec_dir = work.join("spec");
    copy_file(
        &source.join(SPEC_FILE),
        &spec_dir.join(format!("{target}.json")),
    )?;
    let build = Build {
        toolchain,
        target,
        spec_dir: &spec_dir,
        work,
    };
    // A copy, so that the source never gets a target/ directory or a rewritten Cargo.lock.
    let crate_dir = build.copy_crate(source, CRATE_DIR, "crate")?;
    let messages = build.cargo(
        &crate_dir,
        &["build"],
        &[
            format!("-Zbuild-std={}", build_std_crates(target)).as_str(),
            "-Zbuild-std-features=compiler-builtins-mem",
        ],
        &[],
        &mut progress,
    )?;
    let libraries = built_libraries(&messages, target)?;

    // Staged first: `out` is left as it was if anything fails, and may hold `source` itself.
    let staged_root = work.join("staged");
    remove_dir(&staged_root)?;
    let staged = target.dir(&staged_root);
    for part in SOURCE_PARTS {
        if source.join(part).exists() {
            copy_tree(&source.join(part), &staged.join(part))?;
        }
    }
    for library in &libraries {
        copy_file(
            library,
            &staged.join(LIB_DIR).join(library.file_name().unwrap()),
        )?;
    }
    if target == Target::Hermit {
        build.hermit_abi_object(source, &staged_root, &mut progress)?;
    }
    fs::write(staged.join(VERSION_FILE), &toolchain.version.verbose)?;
    let destination = target.dir(out);
    remove_dir(&destination)?;
    fs::create_dir_all(destination.parent().unwrap())?;
    // A rename where `work` and `out` share a file system, else a copy.
    if fs::rename(&staged, &destination).is_err() {
        copy_tree(&staged, &destination)?;
    }
    remove_dir(&staged_root)
}

/// The crates `-Zbuild-std` builds for `target`.
fn build_std_crates(target: Target) -> &'static str {
    if target.has_std() {
        // `test` for libtest, so that `cargo test` works as on any std target.
        "std,panic_abort,test"
    } else {
        "core,alloc"
    }
}

/// Unpacks a source archive of `target` (`hyperlight-none-src-<version>.tar.gz` of a release:
/// one top directory holding a source tree) into `dest`, an empty or missing directory. Returns the
/// source tree's directory.
pub fn unpack_source(archive: &[u8], dest: &Path, target: Target) -> Result<PathBuf> {
    unpack_tar_gz(archive, dest, Limits::default())?;
    let entries = fs::read_dir(dest)?.collect::<std::io::Result<Vec<_>>>()?;
    let [top] = entries.as_slice() else {
        bail!(
            "a source archive holds one directory, this one {} entries",
            entries.len()
        );
    };
    check_source_tree(&top.path(), target)?;
    Ok(top.path())
}

/// Refuses a directory that is not a source tree, e.g. a target directory installed by a
/// release from before source trees.
fn check_source_tree(dir: &Path, target: Target) -> Result<()> {
    for required in [
        Path::new(SPEC_FILE),
        &Path::new(CRATE_DIR).join("Cargo.toml"),
    ] {
        if !dir.join(required).is_file() {
            bail!(
                "{} is not a source tree of {target}: it has no {}",
                dir.display(),
                required.display()
            );
        }
    }
    Ok(())
}

/// One sysroot build: the toolchain, the target and where its spec and work files are.
struct Build<'a> {
    toolchain: &'a Toolchain,
    target: Target,
    spec_dir: &'a Path,
    work: &'a Path,
}

impl Build<'_> {
    /// Copies the source tree's crate `dir` to a fresh `work/<name>`.
    fn copy_crate(&self, source: &Path, dir: &str, name: &str) -> Result<PathBuf> {
        let copy = self.work.join(name);
        remove_dir(&copy)?;
        copy_tree(&source.join(dir), &copy)?;
        Ok(copy)
    }

    /// Runs `cargo <command> --release --target <target> <options> [-- <rustc_args>]` in
    /// `crate_dir` with the toolchain's own compiler; returns cargo's JSON messages.
    fn cargo(
        &self,
        crate_dir: &Path,
        command: &[&str],
        options: &[&str],
        extra_rustflags: &[String],
        progress: &mut impl FnMut(Progress<'_>),
    ) -> Result<String> {
        let (toolchain, target) = (self.toolchain, self.target);
        let cargo = toolchain.cargo();
        let mut flags = rustflags(toolchain, crate_dir);
        flags.extend_from_slice(extra_rustflags);
        let mut child = Command::new(&cargo);
        child
            .current_dir(crate_dir)
            .args(command)
            .args(["--release", "--message-format=json-render-diagnostics"])
            .args(["--target", target.name()])
            .args(options)
            // The toolchain's own compiler, whatever rustup would select here.
            .env("RUSTC", toolchain.rustc())
            .env("RUSTC_BOOTSTRAP", "1")
            .env("RUST_TARGET_PATH", self.spec_dir)
            .env("CARGO_ENCODED_RUSTFLAGS", flags.join("\x1f"))
            .env("CARGO_TARGET_DIR", self.work.join("target"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for inherited in [
            "RUSTUP_TOOLCHAIN",
            "RUSTFLAGS",
            "RUSTC_WRAPPER",
            "RUSTC_WORKSPACE_WRAPPER",
            "CARGO_BUILD_TARGET",
        ] {
            child.env_remove(inherited);
        }
        let mut child = child.spawn().with_context(|| {
            if cargo.is_absolute() {
                format!("cannot run {}", cargo.display())
            } else {
                // `Toolchain::cargo` fell back to PATH.
                format!(
                    "cannot run cargo: {} has no bin/cargo and PATH has none",
                    toolchain.sysroot.display()
                )
            }
        })?;

        let mut stdout = child.stdout.take().unwrap();
        let stderr = child.stderr.take().unwrap();
        let mut tail = VecDeque::with_capacity(ERROR_TAIL);
        // stdout (the JSON messages) is drained beside stderr so that neither pipe fills up.
        let messages = std::thread::scope(|scope| {
            let reader = scope.spawn(move || {
                let mut text = String::new();
                stdout.read_to_string(&mut text).map(|_| text)
            });
            for line in BufReader::new(stderr).split(b'\n') {
                let line = String::from_utf8_lossy(&line?).into_owned();
                progress(Progress::Cargo(&line));
                if tail.len() == ERROR_TAIL {
                    tail.pop_front();
                }
                tail.push_back(line);
            }
            reader.join().expect("reading cargo's stdout panicked")
        })?;
        let status = child.wait()?;
        if !status.success() {
            let tail: Vec<String> = tail.into();
            bail!(
                "building {} for {target} with rustc {} failed ({status}); cargo's last words:\n{}",
                target.libraries(),
                toolchain.version,
                tail.join("\n")
            );
        }
        Ok(messages)
    }

    /// Compiles the runtime's Hermit ABI (see the runtime's `hermit` module) against the std
    /// just built, in `staged_root`, into the object the target spec links into every program.
    fn hermit_abi_object(
        &self,
        source: &Path,
        staged_root: &Path,
        progress: &mut impl FnMut(Progress<'_>),
    ) -> Result<()> {
        let crate_dir = self.copy_crate(source, RUNTIME_DIR, "runtime")?;
        let object = self.target.dir(staged_root).join(LIB_DIR).join(ABI_OBJECT);
        // An rlib's object holds the crate's own code only (core's comes from the program's
        // libcore); a staticlib's would bring a second panic handler.
        let emit = format!("--emit=obj={}", object.display());
        self.cargo(
            &crate_dir,
            &["rustc", "--lib"],
            &["--config=profile.release.codegen-units=1", "--", &emit],
            &[format!("--sysroot={}", staged_root.display())],
            progress,
        )?;
        if !object.is_file() {
            bail!("rustc did not write {}", object.display());
        }
        Ok(())
    }
}

/// The libraries of `target`'s sysroot that cargo's JSON messages name: exactly this build's,
/// never those an earlier build with another rustc left in the same target directory. A no_std
/// target keeps `NO_STD_CRATES`; x86_64-hyperlight-hermit everything -Zbuild-std built.
fn built_libraries(messages: &str, target: Target) -> Result<Vec<PathBuf>> {
    let mut libraries = Vec::new();
    let mut names = Vec::new();
    for line in messages.lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = message["target"]["name"].as_str().unwrap_or_default();
        let wanted = if target.has_std() {
            name != SYSROOT_CRATE
        } else {
            NO_STD_CRATES.contains(&name)
        };
        if message["reason"] != "compiler-artifact" || !wanted {
            continue;
        }
        for file in message["filenames"].as_array().into_iter().flatten() {
            let path = PathBuf::from(file.as_str().unwrap_or_default());
            if path
                .extension()
                .is_some_and(|ext| ext == "rlib" || ext == "rmeta")
            {
                libraries.push(path);
                names.push(name.to_owned());
            }
        }
    }
    let required = if target.has_std() {
        STD_CRATES
    } else {
        NO_STD_CRATES
    };
    for crate_name in required {
        if names.iter().filter(|name| name == crate_name).count() != 2 {
            bail!("cargo built {libraries:?}, expected an .rlib and an .rmeta for each of {required:?}");
        }
    }
    if !target.has_std() && libraries.len() != NO_STD_CRATES.len() * 2 {
        bail!("cargo built {libraries:?}, expected an .rlib and an .rmeta for each of {NO_STD_CRATES:?}");
    }
    Ok(libraries)
}

/// Remaps every build-machine path, so that two builds anywhere give byte-identical libraries.
fn rustflags(toolchain: &Toolchain, crate_dir: &Path) -> Vec<String> {
    let mut flags = vec![
        "-Zunstable-options".to_owned(),
        // As rustup's own std: the .rlib holds only code and the metadata lives once, in the
        // .rmeta beside it (otherwise every .rlib embeds a copy: 1.8x the download).
        "-Zembed-metadata=no".to_owned(),
    ];
    let remaps = [
        (
            Some(toolchain.rust_src()),
            format!("/rustc/{}", toolchain.version.commit_hash),
        ),
        (crate::runner::cargo_home().ok(), "/cargo".to_owned()),
        (
            Some(crate_dir.to_path_buf()),
            "/hyperlight-sysroot".to_owned(),
        ),
    ];
    for (from, to) in remaps {
        if let Some(from) = from {
            flags.push(format!("--remap-path-prefix={}={to}", from.display()));
        }
    }
    flags
}

/// Removes the directory `dir` with everything in it, if it exists.
fn remove_dir(dir: &Path) -> Result<()> {
    match fs::remove_dir_all(dir) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
            Err(err).with_context(|| format!("removing {}", dir.display()))
        }
        _ => Ok(()),
    }
}

/// Copies the file or directory `from` to `to`: contents only, so that a copy of a read-only
/// tree is writable and the result never depends on the source's modes.
pub fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    if !from.is_dir() {
        return copy_file(from, to);
    }
    fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
    for entry in fs::read_dir(from).with_context(|| format!("reading {}", from.display()))? {
        let name = entry?.file_name();
        copy_tree(&from.join(&name), &to.join(&name))?;
    }
    Ok(())
}

fn copy_file(from: &Path, to: &Path) -> Result<()> {
    let data = fs::read(from).with_context(|| format!("reading {}", from.display()))?;
    if let Some(parent) = to.parent() {
        fs::create_dir_all(parent).with_context(|| format!("creating {}", parent.display()))?;
    }
    fs::write(to, data).with_context(|| format!("writing {}", to.display()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rustc::RustcVersion;
    use crate::toolchain::Selector;

    fn tar_gz(files: &[(&str, &str)]) -> Vec<u8> {
        let gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let mut tar = tar::Builder::new(gzip);
        for (path, data) in files {
            let mut header = tar::Header::new_gnu();
            header.set_mode(0o644);
            header.set_size(data.len() as u64);
            tar.append_data(&mut header, path, data.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap()
    }

    /// A path under the temp dir for this test process, with nothing there.
    fn scratch(label: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("hyperlight-build-{label}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    #[test]
    fn unpack_source_returns_the_tree_and_refuses_other_archives() {
        let dest = scratch("unpack");
        let archive = tar_gz(&[
            ("src-1/target.json", "{}"),
            ("src-1/src/sysroot/Cargo.toml", "[package]"),
        ]);
        assert_eq!(
            unpack_source(&archive, &dest, Target::None).unwrap(),
            dest.join("src-1")
        );

        let no_crate = tar_gz(&[("src-2/target.json", "{}")]);
        let err = unpack_source(&no_crate, &scratch("no-crate"), Target::None).unwrap_err();
        assert!(
            format!("{err:#}").ends_with("it has no src/sysroot/Cargo.toml"),
            "{err:#}"
        );
        let two = tar_gz(&[("a/target.json", "{}"), ("b/target.json", "{}")]);
        let err = unpack_source(&two, &scratch("two"), Target::None).unwrap_err();
        assert!(format!("{err:#}").contains("2 entries"), "{err:#}");
        for label in ["unpack", "no-crate", "two"] {
            scratch(label); // removes it
        }
    }

    /// A target directory installed before source trees existed cannot be rebuilt from; the
    /// build says so before it runs anything.
    #[test]
    fn a_directory_without_the_sysroot_crate_is_no_source_tree() {
        let old = scratch("old-install");
        fs::create_dir_all(old.join("lib")).unwrap();
        fs::write(old.join(SPEC_FILE), "{}").unwrap();
        let verbose = "rustc 1.95.0\nrelease: 1.95.0\ncommit-hash: 0\ncommit-date: 0\nhost: h\n";
        let toolchain = Toolchain {
            selector: Selector::Rustc("/nonexistent/rustc".into()),
            version: RustcVersion::parse(verbose).unwrap(),
            sysroot: "/nonexistent".into(),
        };
        let err = build_sysroot(&old, &toolchain, Target::None, &old, &old, |_| {}).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "{} is not a source tree of x86_64-hyperlight-none: it has no src/sysroot/Cargo.toml",
                old.display()
            )
        );
        fs::remove_dir_all(&old).unwrap();
    }
}
