//! Limits that must hold whatever the guest does (issue 6): memory use, seccomp confinement,
//! faults the probe guest does not cover, VM states a guest cannot reach on its own (provoked
//! with the runner's hidden test hooks), timeouts of guests that never yield, and output
//! floods into a closed pipe. Each asserts the exit code and the message.

mod common;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

const HOOK: &str = "HYPERLIGHT_RUN_TEST_HOOK";

/// Host memory `hyperlight-run` may use beyond `--memory` (README, "Running guests"):
/// the runner's own binary, heap and stacks, the mapped guest ELF and KVM's per-vCPU pages.
pub const HOST_OVERHEAD: u64 = 16 << 20;

fn limits_guest() -> PathBuf {
    testkit::build_guest(&testkit::project_root().join("tests/guests"), "limits")
}

fn limits_case(args: &[&str], hook: Option<&str>) -> std::process::Output {
    let mut command = runner();
    if let Some(hook) = hook {
        command.env(HOOK, hook);
    }
    let elf = limits_guest();
    let (flags, case): (Vec<&str>, Vec<&str>) = args.iter().partition(|a| a.starts_with("--"));
    run_with_watchdog(command.args(flags).arg(&elf).args(case)).0
}

// --- seccomp ---

#[test]
fn seccomp_filter_is_active_and_no_seccomp_turns_it_off() {
    testkit::require_kvm!();
    let hello = example("hello");
    let on = run_with_watchdog(runner().env(HOOK, "seccomp-status").arg(&hello)).0;
    assert_eq!(code(&on), 0, "{}", stderr(&on));
    // 2 = SECCOMP_MODE_FILTER.
    assert!(
        stderr(&on).contains("test hook: Seccomp:\t2"),
        "{}",
        stderr(&on)
    );

    let off = run_with_watchdog(
        runner()
            .env(HOOK, "seccomp-status")
            .arg("--no-seccomp")
            .arg(&hello),
    )
    .0;
    assert_eq!(code(&off), 0, "{}", stderr(&off));
    assert!(
        stderr(&off).contains("test hook: Seccomp:\t0"),
        "{}",
        stderr(&off)
    );
}

#[test]
fn a_forbidden_system_call_is_reported_and_exits_159() {
    testkit::require_kvm!();
    let hello = example("hello");
    let blocked = run_with_watchdog(runner().env(HOOK, "forbidden-syscall").arg(&hello)).0;
    assert_eq!(code(&blocked), 159, "{}", stderr(&blocked));
    let line = assert_single_error_line(&blocked);
    // 41 = socket on x86_64.
    assert!(
        line.starts_with("hyperlight-run: error: seccomp: blocked system call 41 "),
        "{line}"
    );

    let allowed = run_with_watchdog(
        runner()
            .env(HOOK, "forbidden-syscall")
            .arg("--no-seccomp")
            .arg(&hello),
    )
    .0;
    assert_eq!(code(&allowed), 0, "{}", stderr(&allowed));
    assert!(stdout(&allowed).contains("Hello"));
}

#[test]
fn help_documents_no_seccomp_and_exit_code_159() {
    let help = run(["--help"]);
    let text = stdout(&help);
    assert!(text.contains("--no-seccomp"), "{text}");
    assert!(text.contains("159"), "{text}");
}

// --- memory ---

/// Runs the touch-all guest and returns its peak resident set (wait4's ru_maxrss).
// The child is reaped by wait4 (which also returns its rusage), not by Child::wait.
#[allow(clippy::zombie_processes)]
fn peak_rss_touching_all(memory: &str) -> (u64, std::process::Output) {
    let elf = limits_guest();
    let child = runner()
        .args(["--memory", memory])
        .arg(&elf)
        .arg("touch-all")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let mut stdout_pipe = child.stdout.unwrap();
    let mut stderr_pipe = child.stderr.unwrap();
    let out = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stdout_pipe.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let err = std::thread::spawn(move || {
        let mut bytes = Vec::new();
        stderr_pipe.read_to_end(&mut bytes).unwrap();
        bytes
    });
    let mut status = 0;
    // SAFETY: plain wait4 on our own child with valid out-pointers.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let waited = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(waited, pid);
    let output = std::process::Output {
        status: std::process::ExitStatus::from_raw(status),
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    (usage.ru_maxrss as u64 * 1024, output)
}

#[test]
fn guest_memory_stays_within_memory_plus_overhead() {
    testkit::require_kvm!();
    const MEMORY: u64 = 64 << 20;
    let (peak, output) = peak_rss_touching_all("64M");
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let touched: u64 = stdout(&output)
        .trim()
        .strip_prefix("touched ")
        .and_then(|rest| rest.strip_suffix(" KiB"))
        .unwrap()
        .parse()
        .unwrap();
    // The guest got (nearly) all of its memory: image, stack and runner pages aside.
    assert!(
        touched * 1024 > MEMORY - (4 << 20),
        "touched only {touched} KiB"
    );
    assert!(
        peak <= MEMORY + HOST_OVERHEAD,
        "peak RSS {} MiB exceeds --memory 64M + {} MiB",
        peak >> 20,
        HOST_OVERHEAD >> 20
    );
    // And it really is resident: the guest's pages count toward the runner.
    assert!(peak >= touched * 1024, "peak {peak} below what was touched");
}

// --- protections the probe guest does not cover ---

#[test]
fn data_is_not_executable() {
    testkit::require_kvm!();
    let output = limits_case(&["exec-data"], None);
    assert_crash_report(&output, &["page fault", "executing a protected page"]);
}

#[test]
fn guests_cannot_turn_interrupts_off() {
    testkit::require_kvm!();
    let output = limits_case(&["cli"], None);
    assert_crash_report(&output, &["general protection fault (#GP)"]);
}

// --- VM states that end the guest ---

#[test]
fn an_exit_the_runner_does_not_serve_ends_the_guest() {
    testkit::require_kvm!();
    let output = limits_case(&["port-in"], None);
    // The report's first line is the `hyperlight-run: error:` line.
    assert_crash_report(&output, &["IoIn"]);
}

#[test]
fn a_triple_fault_ends_the_guest() {
    testkit::require_kvm!();
    let output = limits_case(&["ud2"], Some("break-idt"));
    assert_crash_report(&output, &["triple fault"]);
}

#[test]
fn an_instruction_kvm_cannot_emulate_ends_the_guest() {
    testkit::require_kvm!();
    // --timeout bounds the run on a KVM that can emulate it (the stub then spins).
    let output = limits_case(&["--timeout=5s", "ud2"], Some("unemulable-stub"));
    if code(&output) == 124 {
        let test = "an_instruction_kvm_cannot_emulate_ends_the_guest";
        testkit::skip(
            test,
            "this KVM emulates SSE at CPL 0, so there is no failure to report",
        );
        return;
    }
    assert_eq!(code(&output), 134, "{}", stderr(&output));
    let line = assert_single_error_line(&output);
    assert!(
        line.contains("KVM could not execute the instruction at rip 0x3")
            && line.contains("(internal error)"),
        "{line}"
    );
}

#[test]
fn a_vcpu_state_kvm_refuses_is_one_clear_line_and_exit_125() {
    testkit::require_kvm!();
    let output = limits_case(&["ud2"], Some("refused-sregs"));
    assert_eq!(code(&output), 125, "{}", stderr(&output));
    let line = assert_single_error_line(&output);
    assert_eq!(
        line,
        "hyperlight-run: error: KVM_RUN failed: Invalid argument (os error 22)"
    );
}

#[test]
fn an_entry_failure_is_one_clear_line_and_exit_134() {
    use hyperlight_run::fault::{report, Crash};
    use hyperlight_run::{elf::Image, layout::MemoryMap, memory::GuestMemory, Outcome};
    // KVM_EXIT_FAIL_ENTRY cannot be provoked on this machine's KVM (PVM has no hardware VM
    // entry to fail), so check the report the run loop's crash turns into.
    let path = example("hello");
    let bytes = std::fs::read(&path).unwrap();
    let image = Image::parse(&bytes).unwrap();
    let map = MemoryMap::new(&image, 64 << 20, 1 << 20).unwrap();
    let memory = GuestMemory::new(64 << 20).unwrap();
    let crash = Crash::EntryFailure { reason: 33 };
    let crash_report = report(&crash, &map, &path, &bytes, &memory);
    assert_eq!(
        crash_report.summary,
        "KVM refused to enter the guest (hardware entry failure reason 0x21)"
    );
    assert!(crash_report.backtrace.is_empty());
    assert_eq!(Outcome::Crashed(crash_report).exit_code(), 134);
}

// --- time ---

fn assert_times_out(output: &std::process::Output, took: Duration) {
    assert_eq!(code(output), 124, "{}", stderr(output));
    let line = assert_single_error_line(output);
    assert!(line.contains("--timeout"), "{line}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
}

#[test]
fn timeout_stops_a_pause_spin() {
    testkit::require_kvm!();
    let started = Instant::now();
    let output = limits_case(&["--timeout=200ms", "spin-pause"], None);
    assert_times_out(&output, started.elapsed());
}

#[test]
fn timeout_stops_a_spin_at_cpl0_with_interrupts_off() {
    testkit::require_kvm!();
    let started = Instant::now();
    let output = limits_case(&["--timeout=200ms", "ud2"], Some("spin-in-stub"));
    assert_times_out(&output, started.elapsed());
}

// --- output ---

#[test]
fn flooding_a_closed_pipe_ends_cleanly() {
    testkit::require_kvm!();
    let elf = limits_guest();
    let mut child = runner()
        .arg(&elf)
        .arg("flood")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 1`: read one byte, then close the pipe.
    let mut stdout_pipe = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout_pipe.read_exact(&mut byte).unwrap();
    drop(stdout_pipe);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < Duration::from_secs(10), "still running");
        std::thread::sleep(Duration::from_millis(5));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(status.code(), Some(141), "{status:?}: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(
        err, "",
        "no message for a closed pipe, like a native program"
    );
}

#[test]
fn flooding_head_c_1_in_a_shell_pipeline() {
    testkit::require_kvm!();
    let elf = limits_guest();
    let script = format!(
        "'{}' '{}' flood | head -c 1 >/dev/null",
        common::RUNNER,
        elf.display()
    );
    let output = Command::new("bash")
        .args(["-o", "pipefail", "-c", &script])
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(141), "{}", stderr(&output));
    assert!(!stderr(&output).contains("panicked"));
}
