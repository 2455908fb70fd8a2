//! Limits (issue 6): the runner's peak resident memory when a guest touches all of its
//! `--memory`, i.e. the host overhead above guest memory; and what the seccomp filter costs a
//! whole run.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use xshell::{cmd, Shell};

use super::runner::{build_example, build_guest};
use super::{median, time_process, Report};
use crate::toolchain::project_root;

/// The overhead runner/tests/limits.rs enforces (HOST_OVERHEAD) and the README documents.
const OVERHEAD_GOAL: u64 = 16 << 20;
const RSS_RUNS: usize = 3;
const SECCOMP_RUNS: usize = 200;
/// "Not noticeable": within this of the unconfined run, per whole process.
const SECCOMP_GOAL: Duration = Duration::from_micros(100);

pub fn run(sh: &Shell, report: &mut Report) -> Result<()> {
    report.section("Limits (hyperlight-run)");
    let root = project_root();
    cmd!(sh, "cargo build --release -p hyperlight-run").run()?;
    let runner = root.join("target/release/hyperlight-run");
    let limits = build_guest(sh, &root.join("tests/guests"), "limits")?;
    peak_rss_rows(report, &runner, &limits)?;
    let hello = build_example(sh, "hello")?;
    seccomp_cost(report, &runner, &hello)?;
    report.note(&format!(
        "Peak RSS is `ru_maxrss` of the runner process (wait4), median of {RSS_RUNS} runs of \
         tests/guests' `limits touch-all`, which allocates and writes every heap page it can get. \
         Guest memory is one MAP_NORESERVE mapping, so untouched memory costs nothing; the \
         overhead is the runner itself (binary, heap, KVM's vCPU pages, the guest ELF's loaded \
         part). \
         Seccomp: median of {SECCOMP_RUNS} runs each, alternated; the filter is compiled and \
         installed once per process after the VM is built. Its cost is that one seccomp(2) \
         call: the kernel checks the program, walks it once for every system call number to \
         find the calls it may allow without running it, and JIT-compiles it. The runner's \
         filter is a binary search over the allowed numbers (runner/src/seccomp.rs), a walk of \
         at most 10 instructions where seccompiler's chain of comparisons takes up to 66; even a \
         one-instruction filter adds about 50 µs to a process here. The run loop is not slower \
         with it (a guest touching all of 64 MiB takes the same time either way)."
    ));
    Ok(())
}

/// Peak RSS of a guest that touches all its memory, at two `--memory` sizes.
fn peak_rss_rows(report: &mut Report, runner: &Path, limits: &Path) -> Result<()> {
    for (label, memory) in [("64M", 64u64 << 20), ("1G", 1 << 30)] {
        let mut peaks = Vec::new();
        let mut touched = 0;
        for _ in 0..RSS_RUNS {
            let (peak, stdout) = peak_rss(
                Command::new(runner)
                    .args(["--memory", label])
                    .arg(limits)
                    .arg("touch-all"),
            )?;
            touched = stdout
                .trim()
                .strip_prefix("touched ")
                .and_then(|rest| rest.strip_suffix(" KiB"))
                .and_then(|kib| kib.parse::<u64>().ok())
                .with_context(|| format!("unexpected touch-all output: {stdout}"))?
                * 1024;
            peaks.push(peak);
        }
        peaks.sort();
        let peak = peaks[peaks.len() / 2];
        // What is resident besides the guest's own pages: the runner, its page tables and
        // image in guest memory, KVM's per-vCPU pages.
        let overhead = peak.saturating_sub(touched);
        report.row(
            &format!("peak RSS, `--memory {label}`, guest touches all its memory"),
            format!(
                "{} (guest touched {} of its heap; host overhead {})",
                mib(peak),
                mib(touched),
                mib(overhead)
            ),
            &format!("≤ --memory + {}", mib(OVERHEAD_GOAL)),
            Some(peak <= memory + OVERHEAD_GOAL),
        );
    }
    Ok(())
}

/// Whole-process hello with and without the seccomp filter, alternated.
fn seccomp_cost(report: &mut Report, runner: &Path, hello: &Path) -> Result<()> {
    let (mut on, mut off) = (Vec::new(), Vec::new());
    for _ in 0..SECCOMP_RUNS {
        on.push(time_process(Command::new(runner).arg(hello))?);
        off.push(time_process(
            Command::new(runner).arg("--no-seccomp").arg(hello),
        )?);
    }
    let (on, off) = (median(on), median(off));
    let cost = on.saturating_sub(off);
    report.row(
        "seccomp: whole-process `hyperlight-run hello`, filter on vs `--no-seccomp`",
        format!(
            "{:.3} ms vs {:.3} ms (+{:.0} µs)",
            ms(on),
            ms(off),
            cost.as_secs_f64() * 1e6
        ),
        &format!("≤ +{} µs", SECCOMP_GOAL.as_micros()),
        Some(cost <= SECCOMP_GOAL),
    );
    Ok(())
}

/// Runs `command` to completion and returns its peak resident set in bytes and its stdout.
// The child is reaped by wait4 (which also returns its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn peak_rss(command: &mut Command) -> Result<(u64, String)> {
    let child = command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let pid = child.id() as libc::pid_t;
    let mut stdout = String::new();
    std::io::Read::read_to_string(&mut child.stdout.unwrap(), &mut stdout)?;
    let mut status = 0;
    // SAFETY: an all-zero rusage is valid; wait4 on our own child with valid pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    if unsafe { libc::wait4(pid, &mut status, 0, &mut usage) } != pid {
        bail!("wait4 failed: {}", std::io::Error::last_os_error());
    }
    if !libc::WIFEXITED(status) || libc::WEXITSTATUS(status) != 0 {
        bail!("{command:?} failed (wait status {status:#x})");
    }
    // Linux reports ru_maxrss in KiB.
    Ok((usage.ru_maxrss as u64 * 1024, stdout))
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1 << 20) as f64)
}
