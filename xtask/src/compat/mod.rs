//! `cargo xtask compat`: the official Hyperlight demo guest built the official way
//! (`cargo +nightly hyperlight build`, on the test nightly of Cargo.toml's
//! `[workspace.metadata.toolchains]`) and with plain cargo against the installed target must
//! come out as the same machine code, for x86_64-hyperlight-none and aarch64-hyperlight-none.
//!
//! Identical code needs the same compiler: nightly and stable rustc generate different code
//! for the same source. So the machine code is compared between cargo-hyperlight on nightly
//! and plain cargo on that same nightly; that the stable build (the one users get) builds,
//! links and carries the same guest is a test (`xtask/tests/sysroot.rs`).

pub mod demo;
mod disasm;

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use hyperlight_install::Target;
use testkit::TempToolchain;
use xshell::Shell;

use crate::toolchain::{test_nightly, Toolchain, FOR_SYSROOT, RUST_SRC};

pub fn run(sh: &Shell) -> Result<()> {
    // cargo-hyperlight builds core and alloc from rust-src on nightly, and so do we.
    let nightly = Toolchain::provision(sh, Some(&test_nightly()?), &[RUST_SRC], &[], FOR_SYSROOT)?;
    let ours = demo::toolchain_with_sysroot(sh, &nightly, &demo::TARGETS)?;
    let (root, _lock) = demo::scratch_dir("compat")?;
    let mut results = Vec::new();
    for target in demo::TARGETS {
        // Both targets build in the same project and target directories: cargo builds the
        // host part (build scripts, proc macros) once.
        let (official, ours) = build_both(sh, &nightly, &ours, &root, target)?;
        results.push(compare(sh, &nightly, target, &official, &ours)?);
    }
    // Together at the end, after the builds' output.
    for result in results {
        print!("{result}");
    }
    Ok(())
}

/// The demo guest for `target` built by cargo-hyperlight and by plain cargo with the installed
/// target (in `ours`), both on `nightly`, below `root`: the two ELF files.
fn build_both(
    sh: &Shell,
    nightly: &Toolchain,
    ours: &TempToolchain,
    root: &Path,
    target: Target,
) -> Result<(PathBuf, PathBuf)> {
    let nightly_name = nightly.name.as_str();
    let demo_dir = |kind: &str| root.join(kind).join(demo::NAME);
    let target_dir = |kind: &str| root.join(kind).join("target");

    eprintln!(
        "== the demo guest for {target}, built by cargo-hyperlight {} on {nightly_name}",
        demo::CARGO_HYPERLIGHT.version
    );
    demo::generate(sh, &demo_dir("cargo-hyperlight"))?;
    let official = demo::build_with_cargo_hyperlight(
        sh,
        &demo_dir("cargo-hyperlight"),
        &target_dir("cargo-hyperlight"),
        nightly_name,
        target,
    )?;

    eprintln!(
        "== the demo guest for {target}, built by plain cargo on {nightly_name} ({}) with the \
         installed target",
        nightly.version.release
    );
    let kind = format!("plain-{nightly_name}");
    demo::generate(sh, &demo_dir(&kind))?;
    let ours = demo::build_plain(sh, &demo_dir(&kind), &target_dir(&kind), ours, target)?;
    Ok((official, ours))
}

/// Compares the two builds' machine code; the report, or the first difference as the error.
fn compare(
    sh: &Shell,
    nightly: &Toolchain,
    target: Target,
    official: &Path,
    ours: &Path,
) -> Result<String> {
    let official_code = disasm::Code::of(sh, official)?;
    let ours_code = disasm::Code::of(sh, ours)?;
    let version = guest_version(official)?;
    let ours_version = guest_version(ours)?;
    if ours_version != version {
        bail!(
            "{} carries hyperlight version {ours_version:?}, cargo-hyperlight's build {version:?}",
            ours.display()
        );
    }
    let release = &nightly.version.release;
    let nightly_name = nightly.name.as_str();
    let stack_only = official_code.compare(&ours_code).map_err(|difference| {
        anyhow::anyhow!(
            "the machine code for {target} differs between the official and our {nightly_name} \
             build: {difference}"
        )
    })?;
    let official_how = format!(
        "cargo-hyperlight {} + {release}",
        demo::CARGO_HYPERLIGHT.version
    );
    let ours_how = format!("plain cargo + {release} with the installed target");
    let mut report = String::new();
    let mut line = |text: String| {
        report.push_str(&text);
        report.push('\n');
    };
    line(format!(
        "compared {target} (debug profile, hyperlight-guest-bin {version}):"
    ));
    line(format!(
        "  official: {}",
        describe(official, &official_code, &official_how)
    ));
    line(format!(
        "  ours:     {}",
        describe(ours, &ours_code, &ours_how)
    ));
    line(format!(
        "  compared: the disassembly of every function in {} ({})",
        official_code.sections.join(", "),
        official_code.method()
    ));
    line(format!(
        "  result:   same machine code on {nightly_name}: {} functions, {} instructions; {} \
         identical, {} identical except for which stack slot holds which local (same \
         instructions and frame size){}",
        official_code.functions(),
        official_code.instructions(),
        official_code.functions() - stack_only.len(),
        stack_only.len(),
        if stack_only.is_empty() {
            String::new()
        } else {
            format!(": {}", stack_only.join(", "))
        }
    ));
    Ok(report)
}

fn describe(elf: &Path, code: &disasm::Code, how: &str) -> String {
    format!(
        "{} ({how}): {} bytes of code in {}, {} functions",
        elf.display(),
        code.bytes,
        code.sections.join(", "),
        code.functions()
    )
}

/// The `.note.hyperlight-version` desc: the guest library version the guest was built with.
pub fn guest_version(elf: &Path) -> Result<String> {
    let bytes = std::fs::read(elf).with_context(|| format!("reading {}", elf.display()))?;
    find_note(&bytes).with_context(|| format!("{} has no .note.hyperlight-version", elf.display()))
}

fn find_note(bytes: &[u8]) -> Option<String> {
    use object::{Object, ObjectSection};
    let file = object::File::parse(bytes).ok()?;
    let section = file.section_by_name(".note.hyperlight-version")?;
    let data = section.data().ok()?;
    // An ELF note: namesz, descsz, type, then name and desc, each padded to 4 bytes.
    let word =
        |at: usize| Some(u32::from_le_bytes(data.get(at..at + 4)?.try_into().ok()?) as usize);
    let (namesz, descsz, kind) = (word(0)?, word(4)?, word(8)?);
    let name = data.get(12..12 + namesz)?;
    if name.strip_suffix(b"\0").unwrap_or(name) != b"Hyperlight" || kind != 1 {
        return None;
    }
    let start = 12 + namesz.next_multiple_of(4);
    let desc = data.get(start..start + descsz)?;
    Some(String::from_utf8_lossy(desc.split(|&b| b == 0).next()?).into_owned())
}
