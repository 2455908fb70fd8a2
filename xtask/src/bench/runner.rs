//! The runner's figures: whole-process start-up against `/bin/true`, in-process
//! boot-to-exit, and guest stdout throughput.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use hyperlight_install::signature::PublicKey;
use hyperlight_install::Target;
use xshell::{cmd, PushDir, PushEnv, Shell};

use super::{median, time_process, Report};
use crate::sysroot;
use crate::toolchain::{project_root, Toolchain, TARGET};

const PROCESS_RUNS: usize = 300;
const IN_PROCESS_RUNS: u32 = 300;
const IN_PROCESS_PROCESSES: usize = 5;
const FIRST_BOOT_PROCESSES: usize = 51;
const THROUGHPUT_RUNS: usize = 5;
const THROUGHPUT_BYTES: u64 = 100 << 20;

const PROCESS_RATIO_GOAL: f64 = 3.5;
const BOOT_GOAL: Duration = Duration::from_micros(600);
const THROUGHPUT_GOAL_MIB_S: f64 = 500.0;

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Runner (hyperlight-run)");
    // The binary `cargo xtask install` installs.
    // The key `cargo xtask install` builds with, so that both share one build.
    let trusted = crate::signing::public_key(None)?;
    let runner = crate::runner::build_release(sh, &trusted)?;
    let hello = build_example(sh, "hello")?;
    let bigout = build_example(sh, "bigout")?;
    whole_process(report, &runner, &hello)?;
    in_process(sh, report, &runner, &hello, &trusted)?;
    throughput(report, &runner, &bigout)?;
    report.note(&format!(
        "Release runner, release guests. Whole process: median of {PROCESS_RUNS} runs of each, \
         alternated. In-process: `hyperlight-run --repeat {IN_PROCESS_RUNS}` (hidden flag) times \
         `hyperlight_run::run` from ELF parsing to the guest's exit hypercall (VM teardown \
         excluded); median of {IN_PROCESS_PROCESSES} such processes' medians. After each, \
         runner/examples/kvm_floor.rs boots a guest whose only instructions are the exit \
         hypercall as often, through the runner's own VM code with its memory prepared \
         beforehand: KVM's share of a boot; the rest is the runner reading the ELF and \
         preparing memory, and hello's own run. As in `cargo \
         test`, each VM is torn down after the next one ran, so KVM's kernel-wide switches stay \
         on between boots; a process's first boot, which `cargo run` gets, is measured apart \
         (median of {FIRST_BOOT_PROCESSES} processes). Throughput: whole process including \
         boot, median of {THROUGHPUT_RUNS}. KVM here is PVM with shadow paging: creating the \
         VM, its memory slot and the vCPU are most of a boot, and every first touch of a guest \
         page is a shadow page fault; the figures swing with the load other builds put on the 2 \
         cores, and with the core a process runs on (here one boots about a quarter slower than \
         the other)."
    ));
    Ok(())
}

/// Whole process, alternating with `/bin/true` so that load changes hit both alike.
fn whole_process(report: &mut Report, runner: &Path, hello: &Path) -> Result<()> {
    let (mut baseline, mut guest) = (Vec::new(), Vec::new());
    for _ in 0..PROCESS_RUNS {
        baseline.push(time_process(&mut Command::new("/bin/true"))?);
        let mut command = Command::new(runner);
        command.arg(hello);
        guest.push(time_process(&mut command)?);
    }
    let (baseline, guest) = (median(baseline), median(guest));
    let ratio = guest.as_secs_f64() / baseline.as_secs_f64();
    report.row(
        "whole process: `hyperlight-run hello` / `/bin/true`",
        format!("{ratio:.2}× ({:.2} ms / {:.2} ms)", ms(guest), ms(baseline)),
        &format!("≤ {PROCESS_RATIO_GOAL}×"),
        Some(ratio <= PROCESS_RATIO_GOAL),
    );
    Ok(())
}

/// In-process: the runner's hidden --repeat boots the guest again and again, in a few
/// processes, since the scheduler's choice of core moves a process's figures; each is followed
/// by the same number of boots of KVM's part alone (runner/examples/kvm_floor.rs).
fn in_process(
    sh: &Shell,
    report: &mut Report,
    runner: &Path,
    hello: &Path,
    trusted: &PublicKey,
) -> Result<()> {
    let kvm_floor = crate::runner::build_release_example(sh, "kvm_floor", trusted)?;
    let count = IN_PROCESS_RUNS.to_string();
    let (mut boots, mut floors) = (Vec::new(), Vec::new());
    for _ in 0..IN_PROCESS_PROCESSES {
        boots.push(repeat_median(sh, runner, hello, &count)?);
        let text = cmd!(sh, "{kvm_floor} {count}").read()?;
        floors.push(median_in(&text, "kvm floor median ")?);
    }
    let (boot, floor) = (median(boots), median(floors));
    report.row(
        "in-process boot-to-exit of hello (median)",
        format!("{:.3} ms", ms(boot)),
        &format!("≤ {:.1} ms", ms(BOOT_GOAL)),
        Some(boot <= BOOT_GOAL),
    );
    report.row(
        "of which KVM alone: VM, memory slot, vCPU, one KVM_RUN (median)",
        format!("{:.3} ms", ms(floor)),
        "none (this machine's floor)",
        None,
    );
    // The first boot of a process, which is what `cargo run` gets.
    let mut firsts = Vec::new();
    for _ in 0..FIRST_BOOT_PROCESSES {
        firsts.push(repeat_median(sh, runner, hello, "1")?);
    }
    report.row(
        "first boot-to-exit in a fresh process (median)",
        format!("{:.3} ms", ms(median(firsts))),
        "none (whole process above)",
        None,
    );
    Ok(())
}

/// Throughput: 100 MiB to /dev/null, boot included.
fn throughput(report: &mut Report, runner: &Path, bigout: &Path) -> Result<()> {
    let mut times = Vec::new();
    for _ in 0..THROUGHPUT_RUNS {
        let mut command = Command::new(runner);
        command.arg(bigout).arg(THROUGHPUT_BYTES.to_string());
        times.push(time_process(&mut command)?);
    }
    let time = median(times);
    let mib_s = (THROUGHPUT_BYTES as f64 / (1 << 20) as f64) / time.as_secs_f64();
    report.row(
        "guest stdout throughput (bigout, 100 MiB to /dev/null)",
        format!("{mib_s:.0} MiB/s ({:.0} ms)", ms(time)),
        &format!("≥ {THROUGHPUT_GOAL_MIB_S:.0} MiB/s"),
        Some(mib_s >= THROUGHPUT_GOAL_MIB_S),
    );
    Ok(())
}

/// `hyperlight-run --repeat COUNT ELF`'s median boot-to-exit.
fn repeat_median(sh: &Shell, runner: &Path, elf: &Path, count: &str) -> Result<Duration> {
    let text = cmd!(sh, "{runner} --repeat {count} {elf}").read()?;
    median_in(&text, "boot-to-exit median ")
}

/// The duration in a `PREFIX<N> ns` line.
fn median_in(text: &str, prefix: &str) -> Result<Duration> {
    let nanos: u64 = text
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(" ns"))
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("expected `{prefix}N ns`, got: {text}"))?;
    Ok(Duration::from_nanos(nanos))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// Builds examples/NAME in release against the project's sysroot (built if missing).
pub(super) fn build_example(sh: &Shell, name: &str) -> Result<PathBuf> {
    build_guest(sh, &project_root().join("examples"), name)
}

/// Builds binary NAME of the guest workspace WORKSPACE in release against the project's
/// sysroot (built if missing).
pub(super) fn build_guest(sh: &Shell, workspace: &Path, name: &str) -> Result<PathBuf> {
    let _env = guest_env(sh, workspace)?;
    cmd!(sh, "cargo build --release --target {TARGET} --bin {name}")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .run()?;
    let elf = workspace
        .join("target")
        .join(TARGET)
        .join("release")
        .join(name);
    ensure_file(&elf)?;
    Ok(elf)
}

/// Enters WORKSPACE with the environment that builds guests against the project's sysroot
/// (built if missing), until the returned guards are dropped.
pub(super) fn guest_env<'a>(
    sh: &'a Shell,
    workspace: &Path,
) -> Result<(PushDir<'a>, [PushEnv<'a>; 3])> {
    let toolchain = Toolchain::resolve(None)?;
    let sysroot_dir = sysroot::default_out(&toolchain);
    if !sysroot::target_dir(&sysroot_dir)
        .join("target.json")
        .is_file()
    {
        sysroot::build(sh, &toolchain, Target::None, &sysroot_dir)?;
    }
    let rustflags = [
        format!("--sysroot={}", sysroot_dir.display()),
        "-Zunstable-options".into(),
        "--cfg=hyperlight".into(),
        "--check-cfg=cfg(hyperlight)".into(),
    ]
    .join("\x1f");
    Ok((
        sh.push_dir(workspace),
        [
            sh.push_env("RUSTUP_TOOLCHAIN", &toolchain.name),
            sh.push_env("RUSTC_BOOTSTRAP", "1"),
            sh.push_env("CARGO_ENCODED_RUSTFLAGS", rustflags),
        ],
    ))
}

fn ensure_file(path: &Path) -> Result<()> {
    if !path.is_file() {
        bail!("{} was not built", path.display());
    }
    Ok(())
}
