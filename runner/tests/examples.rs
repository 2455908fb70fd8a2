//! The examples in examples/, booted by the real runner on real KVM.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::*;

#[test]
fn hello_prints_its_greeting_and_exits_0() {
    testkit::require_kvm!();
    let output = run([example("hello")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), "Hello from a Hyperlight micro-VM!\n");
    assert_eq!(stderr(&output), "");
}

#[test]
fn echo_sees_its_arguments_and_only_the_environment_given_with_e() {
    testkit::require_kvm!();
    let elf = example("echo");
    let mut command = runner();
    command
        .env("GREETING", "from the host")
        .arg("-e")
        .arg("GREETING=bonjour")
        .arg(&elf)
        .args(["one", "two words", "--not-a-runner-flag"]);
    let (output, _) = run_with_watchdog(&mut command);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(
        stdout(&output),
        "one\ntwo words\n--not-a-runner-flag\nGREETING=bonjour\n"
    );

    // The host's GREETING does not leak in without -e.
    let (output, _) = run_with_watchdog(runner().env("GREETING", "from the host").arg(&elf));
    assert_eq!(code(&output), 0);
    assert_eq!(
        stdout(&output),
        "GREETING: environment variable not found\n"
    );

    // `-e KEY` passes the host's value through explicitly.
    let (output, _) = run_with_watchdog(
        runner()
            .env("GREETING", "passed")
            .args(["-e", "GREETING"])
            .arg(&elf),
    );
    assert_eq!(stdout(&output), "GREETING=passed\n");
}

#[test]
fn panic_exits_101_with_std_style_message() {
    testkit::require_kvm!();
    let output = run([example("panic")]);
    assert_eq!(code(&output), 101);
    assert_eq!(stdout(&output), "about to panic\n");
    assert_eq!(
        stderr(&output),
        "panicked at panic/src/main.rs:10:5:\nthe answer was 41, not 42\n"
    );
}

#[test]
fn fault_reports_page_fault_address_function_and_line() {
    testkit::require_kvm!();
    let output = run([example("fault")]);
    // Output buffered before the crash is not lost.
    assert_eq!(stdout(&output), "reading 0x7f00deadb000\n");
    assert_crash_report(
        &output,
        &[
            "page fault",
            "at address 0x7f00deadb000",
            "reading unmapped memory",
            "in fault::read_unmapped",
            "fault/src/main.rs:15:",
        ],
    );
    // The backtrace goes on through the callers to the runtime's entry point.
    let text = stderr(&output);
    let main_frame = text.find("fault::main at").expect(&text);
    let entry_frame = text.find("entrypoint at").expect(&text);
    assert!(main_frame < entry_frame, "{text}");
}

#[test]
fn timeout_stops_a_spinning_guest_with_124() {
    testkit::require_kvm!();
    let elf = example("spin");
    let (output, elapsed) = run_with_watchdog(runner().args(["--timeout", "200ms"]).arg(&elf));
    assert_eq!(code(&output), 124);
    assert_eq!(stdout(&output), "spinning forever\n");
    let line = assert_single_error_line(&output);
    assert!(line.contains("--timeout"), "{line}");
    assert!(elapsed < Duration::from_secs(5), "took {elapsed:?}");
}

/// Byte `i` of bigout's output.
fn pattern(i: usize) -> u8 {
    (i ^ (i >> 8) ^ (i >> 16)) as u8
}

#[test]
fn bigout_output_is_byte_identical() {
    testkit::require_kvm!();
    let output = run([example("bigout")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    let expected: Vec<u8> = (0..10 * 1024 * 1024).map(pattern).collect();
    assert_eq!(output.stdout.len(), expected.len());
    let first_difference = output
        .stdout
        .iter()
        .zip(&expected)
        .position(|(a, b)| a != b);
    assert_eq!(first_difference, None, "output differs from the pattern");
}

/// The same computation as examples/collections, with std.
fn expected_collections_output() -> String {
    fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
        bytes.iter().fold(hash, |hash, &byte| {
            (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
        })
    }
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..20_000u32 {
        *counts.entry(format!("w{}", (i * 7919) % 1000)).or_insert(0) += 1;
    }
    let mut lines: Vec<String> = counts.iter().map(|(w, c)| format!("{w}:{c}")).collect();
    lines.sort();
    let joined = lines.join(",");
    let total = (0..2_000u64).fold(0u64, |total, n| {
        total.wrapping_add((0..n % 100).map(|x| x * x).sum::<u64>())
    });
    let checksum = fnv1a(
        fnv1a(0xcbf2_9ce4_8422_2325, joined.as_bytes()),
        &total.to_le_bytes(),
    );
    format!(
        "words: {}\nbytes: {}\nsum of squares: {total}\nchecksum: {checksum:016x}\n",
        counts.len(),
        joined.len()
    )
}

#[test]
fn collections_prints_the_expected_checksum() {
    testkit::require_kvm!();
    let output = run([example("collections")]);
    assert_eq!(code(&output), 0, "{}", stderr(&output));
    assert_eq!(stdout(&output), expected_collections_output());
}

#[test]
fn cargo_run_boots_the_example() {
    testkit::require_kvm!();
    example("hello");
    let runner_dir = std::path::Path::new(RUNNER).parent().unwrap();
    let path = std::env::join_paths(
        std::iter::once(runner_dir.to_path_buf())
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
    )
    .unwrap();
    let output = testkit::guest_cargo(
        &testkit::project_root().join("examples/hello"),
        testkit::sysroot(),
        &testkit::pinned_toolchain(),
    )
    .env("PATH", path)
    .args(["run", "--quiet"])
    .output()
    .unwrap();
    testkit::assert_success(&output, "cargo run in examples/hello");
    assert_eq!(stdout(&output), "Hello from a Hyperlight micro-VM!\n");
}
