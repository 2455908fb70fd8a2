//! `--core-dump DIR` and `HYPERLIGHT_CORE_DUMP_DIR`: ELF core files of crashed, panicked and
//! timed-out guests, opened by real gdb.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::*;
use object::elf;
use object::read::elf::{FileHeader, ProgramHeader};

/// Runs `hyperlight-run ARGS...` with `--core-dump DIR`; returns its output and the core file
/// the report's last line names (which must be the only file in DIR).
fn crash_with_core(dir: &Path, args: &[&str]) -> (Output, PathBuf) {
    let output = run_with_watchdog(runner().arg("--core-dump").arg(dir).args(args)).0;
    let core = core_named_by(&output, dir);
    (output, core)
}

fn core_named_by(output: &Output, dir: &Path) -> PathBuf {
    let text = stderr(output);
    let last = text.lines().last().unwrap_or_default();
    let core = PathBuf::from(
        last.strip_prefix("hyperlight-run: core dumped to ")
            .unwrap_or_else(|| panic!("the report's last line names no core file:\n{text}")),
    );
    assert_eq!(core.parent(), Some(dir));
    let name = core.file_name().unwrap().to_str().unwrap().to_owned();
    // Written atomically: no temporary file is left beside it.
    let entries: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    assert_eq!(entries, [name]);
    core
}

/// gdb in batch mode on `elf` and `core`, running `commands`.
fn gdb_on_core(elf: &Path, core: &Path, commands: &[&str]) -> String {
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx"]);
    for command in commands {
        gdb.args(["-ex", command]);
    }
    let output = run_with_watchdog(gdb.arg(elf).arg(core)).0;
    format!("{}{}", stdout(&output), stderr(&output))
}

fn gdb_installed() -> bool {
    let installed = Command::new("gdb")
        .arg("--version")
        .output()
        .is_ok_and(|output| output.status.success());
    if !installed {
        let test = std::thread::current()
            .name()
            .unwrap_or("<unnamed test>")
            .to_owned();
        testkit::skip(&test, "gdb is not installed (Debian package `gdb`)");
    }
    installed
}

fn frames(text: &str) -> Vec<&str> {
    text.lines().filter(|line| line.starts_with('#')).collect()
}

#[test]
fn gdb_reads_the_fault_examples_core_with_its_backtrace_and_registers() {
    testkit::require_kvm!();
    if !gdb_installed() {
        return;
    }
    let dir = testkit::TempDir::new("core-fault");
    let elf = example("fault");
    let (output, core) = crash_with_core(dir.path(), &[path_str(&elf)]);
    assert_crash_report_then_core(&output, &["page fault", "fault::read_unmapped"]);
    assert_eq!(
        core.file_name().unwrap().to_str().unwrap(),
        format!("core.fault.{}", core_pid(&core))
    );
    let text = gdb_on_core(
        &elf,
        &core,
        &["bt", "info registers rip", "print/x $cs", "print/x $mxcsr"],
    );
    assert!(
        text.contains("\nProgram terminated with signal SIGSEGV, Segmentation fault.\n"),
        "{text}"
    );
    let frames = frames(&text);
    assert!(
        frames[0].ends_with(" in fault::read_unmapped () at fault/src/main.rs:15"),
        "{text}"
    );
    assert!(
        frames
            .iter()
            .any(|frame| frame.ends_with(" in fault::main () at fault/src/main.rs:20")),
        "{text}"
    );
    // The crash report's rip is gdb's.
    let rip = stderr(&output)
        .split("rip ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .unwrap()
        .to_owned();
    let rip_line = text.lines().find(|line| line.starts_with("rip ")).unwrap();
    assert!(
        rip_line.split_whitespace().nth(1) == Some(rip.as_str()),
        "{rip} vs {rip_line}"
    );
    assert!(text.contains("\n$1 = 0x33\n$2 = 0x1f80\n"), "{text}");
}

/// A crash report (summary and backtrace) whose last line names the core file.
fn assert_crash_report_then_core(output: &Output, needles: &[&str]) {
    assert_eq!(code(output), 134, "{}", stderr(output));
    let text = stderr(output);
    let lines: Vec<&str> = text.lines().collect();
    assert!(
        lines[0].starts_with("hyperlight-run: error: guest crashed"),
        "{text}"
    );
    for needle in needles {
        assert!(lines[0].contains(needle), "{needle:?} in {}", lines[0]);
    }
    assert!(lines.contains(&"guest backtrace:"), "{text}");
}

/// The pid in `core.NAME.PID`.
fn core_pid(core: &Path) -> String {
    core.extension().unwrap().to_str().unwrap().to_owned()
}

#[test]
fn the_core_holds_the_touched_guest_memory_and_a_small_header_only() {
    testkit::require_kvm!();
    let dir = testkit::TempDir::new("core-size");
    let elf = example("fault");
    // A large --memory, which the core must not reflect.
    let (output, core) = crash_with_core(dir.path(), &["--memory", "1G", path_str(&elf)]);
    assert_eq!(code(&output), 134);
    let data = std::fs::read(&core).unwrap();
    let header = elf::FileHeader64::<object::LittleEndian>::parse(&*data).unwrap();
    let endian = object::LittleEndian;
    assert_eq!(header.e_type(endian), elf::ET_CORE);
    let segments = header.program_headers(endian, &*data).unwrap();
    assert_eq!(segments[0].p_type(endian), elf::PT_NOTE);
    let loads: Vec<_> = segments[1..].iter().collect();
    assert!(loads.iter().all(|ph| ph.p_type(endian) == elf::PT_LOAD));
    let memory: u64 = loads.iter().map(|ph| ph.p_filesz(endian)).sum();
    let first = loads[0].p_offset(endian);
    // Exactly a header (ELF header, program headers, notes, padding to a page) and the
    // segments; the fault example touches well under a megabyte of its gigabyte.
    assert_eq!(data.len() as u64, first + memory);
    assert!(first <= 8192, "header of {first} bytes");
    assert!(memory < 1 << 20, "{memory} bytes of guest memory");
    // No page of the runner's own (below the boot information at 1 MiB) is in it.
    assert!(loads.iter().all(|ph| ph.p_vaddr(endian) >= 0x10_0000));
    // The image's code is there, executable.
    assert!(loads
        .iter()
        .any(|ph| ph.p_vaddr(endian) >= 0x20_0000 && ph.p_flags(endian) & elf::PF_X != 0));
}

#[test]
fn a_panic_and_a_timeout_dump_core_too_and_hyperlight_core_dump_dir_works() {
    testkit::require_kvm!();
    if !gdb_installed() {
        return;
    }
    let dir = testkit::TempDir::new("core-panic");
    let elf = example("panic");
    let output = run_with_watchdog(
        runner()
            .env("HYPERLIGHT_CORE_DUMP_DIR", dir.path())
            .arg(&elf),
    )
    .0;
    assert_eq!(code(&output), 101);
    let core = core_named_by(&output, dir.path());
    let text = gdb_on_core(&elf, &core, &["bt"]);
    assert!(
        text.contains("\nProgram terminated with signal SIGABRT, Aborted.\n"),
        "{text}"
    );
    assert!(
        frames(&text)
            .iter()
            .any(|frame| frame.ends_with(" in panic::main () at panic/src/main.rs:10")),
        "{text}"
    );

    let dir = testkit::TempDir::new("core-timeout");
    let elf = example("spin");
    let (output, core) = crash_with_core(dir.path(), &["--timeout", "300ms", path_str(&elf)]);
    assert_eq!(code(&output), 124);
    assert!(
        stderr(&output).starts_with("hyperlight-run: error: the guest did not finish"),
        "{}",
        stderr(&output)
    );
    let text = gdb_on_core(&elf, &core, &["bt"]);
    assert!(
        text.contains("\nProgram terminated with signal SIGALRM, Alarm clock.\n"),
        "{text}"
    );
    assert!(
        // Innermost, or below the spin loop's `pause` (core::hint::spin_loop).
        frames(&text)
            .iter()
            .any(|frame| frame.contains("spin::main () at spin/src/main.rs:11")),
        "{text}"
    );
}

#[test]
fn a_guest_that_exits_leaves_no_core() {
    testkit::require_kvm!();
    let dir = testkit::TempDir::new("core-none");
    let target = dir.path().join("cores");
    let output = run([
        "--core-dump",
        path_str(&target),
        path_str(&example("hello")),
    ]);
    assert_eq!(code(&output), 0);
    assert_eq!(stderr(&output), "");
    assert!(!target.exists());
}

#[test]
fn core_dumps_run_without_the_seccomp_filter() {
    testkit::require_kvm!();
    let dir = testkit::TempDir::new("core-seccomp");
    let output = run_with_watchdog(
        runner()
            .env("HYPERLIGHT_RUN_TEST_HOOK", "seccomp-status")
            .arg("--core-dump")
            .arg(dir.path())
            .arg(example("fault")),
    )
    .0;
    // Writing the file needs calls the filter refuses; 0 = SECCOMP_MODE_DISABLED.
    assert!(
        stderr(&output).starts_with("test hook: Seccomp:\t0\n"),
        "{}",
        stderr(&output)
    );
    assert_eq!(code(&output), 134);
    core_named_by(&output, dir.path());
}

#[test]
fn under_cargo_test_each_failed_test_leaves_a_core_named_after_it() {
    testkit::require_kvm!();
    if !gdb_installed() {
        return;
    }
    let dir = testkit::TempDir::new("core-tests");
    let elf = testkit::build_guest_tests(&testkit::project_root().join("tests/guests"), "tested");
    let output = run_with_watchdog(
        runner()
            .env("HYPERLIGHT_CORE_DUMP_DIR", dir.path())
            .arg(&elf),
    )
    .0;
    // Some of tested's tests fail on purpose: libtest's exit code.
    assert_eq!(code(&output), 101, "{}", stderr(&output));
    let mut cores: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    cores.sort();
    let prefix = format!("core.{}.", elf.file_name().unwrap().to_str().unwrap());
    let tests: Vec<&str> = cores
        .iter()
        .map(|name| {
            let rest = name.strip_prefix(&prefix).unwrap();
            rest.split_once('.').unwrap().1
        })
        .collect();
    // The crash, the failed assertion, the timeout and the unexpected panic message; not the
    // panics #[should_panic] expected, nor the failures that end without a crash or panic.
    assert_eq!(
        tests,
        [
            "tests::crashes",
            "tests::fails",
            "tests::hangs",
            "tests::panics_with_another_message"
        ]
    );
    let crashes = dir.path().join(&cores[0]);
    let report = stdout(&output);
    assert!(
        report.contains(&format!(
            "\nhyperlight-run: core dumped to {}\n",
            crashes.display()
        )),
        "{report}"
    );
    let text = gdb_on_core(&elf, &crashes, &["bt"]);
    assert!(
        text.contains("\nProgram terminated with signal SIGSEGV, Segmentation fault.\n"),
        "{text}"
    );
    assert!(
        frames(&text)
            .iter()
            .any(|frame| frame.contains("tested::tests::crashes () at tested/src/main.rs:")),
        "{text}"
    );
}
