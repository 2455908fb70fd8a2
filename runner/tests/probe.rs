//! The probe test guest (tests/guests/probe) misbehaving on purpose: memory protections,
//! hypercall validation, and runtime services.

mod common;

use common::*;

fn probe_case(args: &[&str]) -> std::process::Output {
    let elf = probe();
    run_with_watchdog(runner().arg(&elf).args(args)).0
}

/// Runs a case that must crash with exit 134 and one error line containing all `needles`.
fn assert_crash(case: &str, needles: &[&str]) {
    assert_crash_report(&probe_case(&[case]), needles);
}

#[test]
fn null_page_is_unmapped() {
    testkit::require_kvm!();
    assert_crash("null-read", &["page fault", "address 0x18", "null page"]);
}

#[test]
fn runner_pages_are_out_of_reach() {
    testkit::require_kvm!();
    assert_crash("read-system-page", &["page fault", "address 0x2000"]);
    assert_crash("read-page-tables", &["page fault", "address 0x10000"]);
    assert_crash(
        "write-boot-info",
        &["page fault", "writing a protected page"],
    );
}

#[test]
fn code_and_rodata_are_not_writable() {
    testkit::require_kvm!();
    assert_crash("write-text", &["page fault", "writing a protected page"]);
    assert_crash("write-rodata", &["page fault", "writing a protected page"]);
}

#[test]
fn heap_and_stack_are_not_executable() {
    testkit::require_kvm!();
    assert_crash("exec-heap", &["page fault", "executing a protected page"]);
    assert_crash("exec-stack", &["page fault", "executing a protected page"]);
}

#[test]
fn stack_overflow_hits_the_guard_page() {
    testkit::require_kvm!();
    assert_crash(
        "stack-overflow",
        &[
            "page fault",
            "stack guard page: stack overflow",
            "probe::recurse",
        ],
    );
    let text = stderr(&probe_case(&["stack-overflow"]));
    assert!(
        text.contains("the same frame"),
        "recursion is folded:\n{text}"
    );
    assert!(text.lines().count() < 20, "{text}");
}

#[test]
fn cpu_exceptions_are_named_with_location() {
    testkit::require_kvm!();
    assert_crash(
        "ud2",
        &["invalid opcode (#UD)", "probe::main", "probe/src/main.rs:"],
    );
    assert_crash("divide-error", &["divide error (#DE)", "probe::main"]);
    assert_crash("privileged", &["general protection fault (#GP)"]);
    assert_crash("hlt", &["general protection fault (#GP)"]);
    assert_crash("port-outside-bitmap", &["general protection fault (#GP)"]);
}

#[test]
fn bad_hypercall_buffers_end_the_guest() {
    testkit::require_kvm!();
    for case in [
        "write-outside-memory",
        "write-null",
        "write-length-overflow",
        "write-straddling-end",
        "random-outside-memory",
    ] {
        assert_crash(case, &["invalid hypercall", "buffer outside guest memory"]);
    }
}

#[test]
fn bad_hypercall_arguments_end_the_guest() {
    testkit::require_kvm!();
    assert_crash(
        "write-bad-stream",
        &["invalid hypercall", "unknown stream 7"],
    );
    assert_crash(
        "unknown-port",
        &["invalid hypercall", "unknown hypercall port 0x14"],
    );
    assert_crash("exception-port", &["invalid hypercall", "exception port"]);
    assert_crash("bad-clock", &["invalid hypercall", "unknown clock id 99"]);
}

#[test]
fn exit_codes_pass_through() {
    testkit::require_kvm!();
    for code_in in ["0", "3", "255"] {
        let output = probe_case(&["exit", code_in]);
        assert_eq!(code(&output).to_string(), code_in);
    }
    // Like a native process: only the low 8 bits survive.
    assert_eq!(code(&probe_case(&["exit", "257"])), 1);
}

#[test]
fn main_returning_err_exits_1_like_std() {
    testkit::require_kvm!();
    let output = probe_case(&["result-error"]);
    assert_eq!(code(&output), 1);
    assert_eq!(stderr(&output), "Error: \"it went wrong\"\n");
}

#[test]
fn allocation_failure_is_a_panic() {
    testkit::require_kvm!();
    let output = probe_case(&["out-of-memory"]);
    assert_eq!(code(&output), 101);
    assert!(stderr(&output).contains("memory allocation of 1099511627776 bytes failed"));
}

#[test]
fn clocks_and_random_seed_work() {
    testkit::require_kvm!();
    let output = probe_case(&["clock"]);
    assert_eq!(code(&output), 0);
    let text = stdout(&output);
    assert!(text.contains("monotonic ok: true"), "{text}");
    let seconds: u64 = text
        .lines()
        .find_map(|line| line.strip_prefix("unix seconds: "))
        .unwrap()
        .parse()
        .unwrap();
    let host = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    assert!(seconds.abs_diff(host) < 60, "guest {seconds}, host {host}");

    let first = stdout(&probe_case(&["random"]));
    let second = stdout(&probe_case(&["random"]));
    assert_eq!(first.trim().len(), 64);
    assert_ne!(first, second, "the seed must differ between runs");
}

#[test]
fn output_is_binary_safe_and_streams_keep_their_order() {
    testkit::require_kvm!();
    let output = probe_case(&["binary"]);
    assert_eq!(output.stdout, [0, 1, 2, 255, b'\n', 0xc3, 0x28]);

    // With both streams on one pipe, the interleaving survives stdout's buffering.
    let elf = probe();
    let output = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!("'{RUNNER}' '{}' interleave 2>&1", elf.display()))
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "out 0\nerr 0\nout 1\nerr 1\nout 2\nerr 2\n"
    );
}

#[test]
fn environment_is_exactly_what_e_gives() {
    testkit::require_kvm!();
    let elf = probe();
    let (output, _) = run_with_watchdog(
        runner()
            .env("SECRET", "host value")
            .args(["-e", "A=1", "-e", "B=two=2", "-e", "EMPTY="])
            .arg(&elf)
            .arg("env"),
    );
    assert_eq!(stdout(&output), "A=1\nB=two=2\nEMPTY=\n");
}

#[test]
fn closed_stdout_ends_the_run_cleanly() {
    testkit::require_kvm!();
    use std::io::Read;
    let elf = example("bigout");
    let mut child = runner()
        .arg(&elf)
        .arg("104857600")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Like `| head -c 1`: read a byte, then close the pipe.
    let mut stdout = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    stdout.read_exact(&mut byte).unwrap();
    drop(stdout);
    let output = child.wait_with_output().unwrap();
    assert_eq!(code(&output), 141);
    assert_eq!(stderr(&output), "", "no panic, no message");
}

#[test]
fn a_guest_sees_nothing_of_the_guest_before_it_on_the_same_thread() {
    testkit::require_kvm!();
    // `cargo test` and `--repeat` boot guest after guest on one thread, each reusing the
    // memory of the one before; every boot here dirties what the next one checks.
    use hyperlight_run::{Captured, Config, Outcome};
    let elf = probe();
    let guest = hyperlight_run::GuestFile::open(&elf).unwrap();
    let args = [elf.clone().into_os_string(), "leftovers".into()];
    let config = Config {
        seccomp: false,
        ..Config::default()
    };
    for boot in 0..3 {
        let mut output = Captured::default();
        let report = hyperlight_run::run(&guest, &args, &config, &mut output).unwrap();
        assert!(
            matches!(report.outcome, Outcome::Exited(0)),
            "boot {boot}: {:?}",
            report.outcome
        );
        assert_eq!(
            String::from_utf8(output.stdout).unwrap(),
            "nonzero words: 0 in .bss, 0 in the heap\n",
            "boot {boot}"
        );
    }
}
