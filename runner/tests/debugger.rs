//! `--gdb` and `HYPERLIGHT_GDB`: real gdb and lldb, in batch mode, debugging guests in real
//! micro-VMs over loopback TCP; and clients that speak garbage.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;

/// Longer than any debugging session here should take.
const WATCHDOG: Duration = Duration::from_secs(60);
const WAITING: &str = "hyperlight-run: waiting for gdb on ";

/// A process that prints the runner's waiting line on stderr (the runner itself, or cargo
/// running it), its stdout and the rest of its stderr drained on threads.
struct Waiting {
    child: Child,
    address: String,
    /// What stderr said before and including the waiting line.
    stderr_before: String,
    /// Stdout so far, filled as it comes.
    stdout: Arc<Mutex<String>>,
    stdout_reader: JoinHandle<()>,
    stderr: JoinHandle<String>,
}

struct Finished {
    status: ExitStatus,
    stdout: String,
    /// All of stderr.
    stderr: String,
}

impl Waiting {
    fn spawn(command: &mut Command) -> Waiting {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawning");
        let mut stderr = BufReader::new(child.stderr.take().unwrap());
        let mut stderr_before = String::new();
        let address = loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                let _ = child.kill();
                panic!("no waiting line on stderr:\n{stderr_before}");
            }
            stderr_before.push_str(&line);
            if let Some(address) = line.trim_end().strip_prefix(WAITING) {
                break address.to_owned();
            }
        };
        let mut stdout = child.stdout.take().unwrap();
        let stdout_text = Arc::new(Mutex::new(String::new()));
        let filled = Arc::clone(&stdout_text);
        Waiting {
            child,
            address,
            stderr_before,
            stdout: stdout_text,
            stdout_reader: std::thread::spawn(move || {
                let mut chunk = [0; 4096];
                while let Ok(n @ 1..) = stdout.read(&mut chunk) {
                    filled
                        .lock()
                        .unwrap()
                        .push_str(&String::from_utf8_lossy(&chunk[..n]));
                }
            }),
            stderr: std::thread::spawn(move || {
                let mut text = String::new();
                stderr.read_to_string(&mut text).unwrap();
                text
            }),
        }
    }

    /// `hyperlight-run --gdb 0 ARGS...` (a free loopback port).
    fn runner(args: &[&str]) -> Waiting {
        Waiting::spawn(runner().arg("--gdb").arg("0").args(args))
    }

    fn port(&self) -> u16 {
        self.address.rsplit(':').next().unwrap().parse().unwrap()
    }

    /// Waits until the guest has printed `text`.
    fn wait_for_stdout(&self, text: &str) {
        let started = Instant::now();
        while !self.stdout.lock().unwrap().contains(text) {
            assert!(
                started.elapsed() < WATCHDOG,
                "the guest never printed {text:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn finish(mut self) -> Finished {
        let status = wait_with_watchdog(&mut self.child, "the debugged process", WATCHDOG);
        self.stdout_reader.join().unwrap();
        Finished {
            status,
            stdout: std::mem::take(&mut *self.stdout.lock().unwrap()),
            stderr: self.stderr_before + &self.stderr.join().unwrap(),
        }
    }
}

/// Whether `tool --version` runs; reports the test skipped by name when it does not.
fn tool_or_skip(tool: &str) -> bool {
    if Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
    {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("<unnamed test>")
        .to_owned();
    testkit::skip(
        &test,
        &format!("{tool} is not installed (Debian package `{tool}`)"),
    );
    false
}

/// First line of a test that needs KVM and `tool`.
macro_rules! require {
    ($tool:expr) => {
        testkit::require_kvm!();
        if !tool_or_skip($tool) {
            return;
        }
    };
}

/// gdb in batch mode on `elf`, attached to `port`, running `commands`; its output (stdout
/// and stderr in order) once it ends.
fn gdb_command(elf: &Path, port: u16, commands: &[&str]) -> Command {
    let mut gdb = Command::new("gdb");
    gdb.args(["-batch", "-nx", "-ex", "set confirm off", "-ex"])
        .arg(format!("target remote 127.0.0.1:{port}"));
    for command in commands {
        gdb.args(["-ex", command]);
    }
    gdb.arg(elf).stdin(Stdio::null());
    gdb
}

fn gdb(elf: &Path, port: u16, commands: &[&str]) -> String {
    output_of(gdb_command(elf, port, commands), "gdb")
}

/// Runs `command` with stderr merged into stdout, under the watchdog.
fn output_of(mut command: Command, what: &str) -> String {
    let (mut read, write) = std::io::pipe().unwrap();
    let mut child = command
        .stdout(write.try_clone().unwrap())
        .stderr(write)
        .spawn()
        .unwrap_or_else(|err| panic!("spawning {what}: {err}"));
    // The command holds the write ends: dropping it leaves them to the child alone, so that
    // reading ends with the process.
    drop(command);
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        read.read_to_string(&mut text).unwrap();
        text
    });
    wait_with_watchdog(&mut child, what, WATCHDOG);
    reader.join().unwrap()
}

/// Line number of the `// line: NAME` marker in `source`.
fn line_of(source: &Path, name: &str) -> usize {
    let text = std::fs::read_to_string(source).unwrap();
    let marker = format!("// line: {name}");
    text.lines()
        .position(|line| line.trim_end().ends_with(&marker))
        .unwrap_or_else(|| panic!("no {marker} in {}", source.display()))
        + 1
}

fn debuggee() -> PathBuf {
    testkit::build_guest(&testkit::project_root().join("tests/guests"), "debuggee")
}

fn debuggee_source() -> PathBuf {
    testkit::project_root().join("tests/guests/debuggee/src/main.rs")
}

fn assert_has(text: &str, needle: &str) {
    assert!(text.contains(needle), "expected {needle:?} in:\n{text}");
}

/// gdb's lines that start with `prefix`.
fn lines_starting<'t>(text: &'t str, prefix: &str) -> Vec<&'t str> {
    text.lines()
        .filter(|line| line.starts_with(prefix))
        .collect()
}

#[test]
fn gdb_breaks_at_a_line_steps_prints_and_continues_to_the_exit_code() {
    require!("gdb");
    let elf = debuggee();
    let source = debuggee_source();
    let (main, call, scale) = (
        line_of(&source, "main"),
        line_of(&source, "call"),
        line_of(&source, "scale"),
    );
    let waiting = Waiting::runner(&[path_str(&elf)]);
    assert!(
        waiting.address.starts_with("127.0.0.1:"),
        "{}",
        waiting.address
    );
    let text = gdb(
        &elf,
        waiting.port(),
        &[
            &format!("break main.rs:{main}"),
            "continue",
            "next",
            "next",
            "print base",
            "step",
            "bt",
            "print value * factor",
            "continue",
        ],
    );
    let finished = waiting.finish();
    // Symbols and lines resolve at the load bias without add-symbol-file.
    assert_has(&text, &format!("file debuggee/src/main.rs, line {main}."));
    assert_has(
        &text,
        &format!("Breakpoint 1, debuggee::main () at debuggee/src/main.rs:{main}\n"),
    );
    assert_has(
        &text,
        &format!("\n{call}\t    let scaled = scale(base, factor);"),
    );
    assert_has(&text, "\n$1 = 20\n");
    assert_has(
        &text,
        &format!("debuggee::scale (value=20, factor=2) at debuggee/src/main.rs:{scale}\n"),
    );
    let frames = lines_starting(&text, "#");
    assert_eq!(frames.len(), 4, "{text}");
    assert_eq!(
        frames[0],
        format!("#0  debuggee::scale (value=20, factor=2) at debuggee/src/main.rs:{scale}")
    );
    assert!(
        frames[1].ends_with(&format!(
            " in debuggee::main () at debuggee/src/main.rs:{call}"
        )),
        "{text}"
    );
    assert!(
        frames[3].contains("hyperlight_rt::start::entrypoint"),
        "{text}"
    );
    assert_has(&text, "\n$2 = 40\n");
    // 20 * 2 + 1 - 38, in gdb's octal.
    assert_has(&text, "[Inferior 1 (process 1) exited with code 03]");
    assert_eq!(finished.status.code(), Some(3), "{}", finished.stderr);
    assert_eq!(finished.stdout, "scaled 41\n");
    assert_eq!(
        finished.stderr,
        format!("{WAITING}{}\n", waiting_address(&finished))
    );
}

/// The address in the (only) waiting line of `finished`'s stderr.
fn waiting_address(finished: &Finished) -> &str {
    finished
        .stderr
        .lines()
        .find_map(|line| line.strip_prefix(WAITING))
        .unwrap()
}

#[test]
fn gdb_reads_and_writes_registers_and_memory_and_refuses_unmapped_memory() {
    require!("gdb");
    let elf = debuggee();
    let main = line_of(&debuggee_source(), "main");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let text = gdb(
        &elf,
        waiting.port(),
        &[
            // Before the first instruction: the entry point, the guest's segments.
            "print $pc == &entrypoint",
            "print/x $cs",
            "print/x $ss",
            "print/x $mxcsr",
            "x/x 0",
            "x/x 0x10000",
            &format!("break main.rs:{main}"),
            "continue",
            // A static in a read-only page (the guest reads it from there next), and registers.
            "set var debuggee::FACTOR = 3",
            "print debuggee::FACTOR",
            "set var $xmm0.v4_int32[1] = 7",
            "print $xmm0.v4_int32[1]",
            "set var $r12 = 0x1234",
            "print/x $r12",
            "continue",
        ],
    );
    let finished = waiting.finish();
    let values = lines_starting(&text, "$");
    assert_eq!(
        values,
        [
            "$1 = true",
            "$2 = 0x33",
            "$3 = 0x2b",
            "$4 = 0x1f80",
            "$5 = 3",
            "$6 = 7",
            "$7 = 0x1234"
        ],
        "{text}"
    );
    // The null page and the page tables are not the guest's: an error, not a crash.
    assert_has(&text, "Cannot access memory at address 0x0\n");
    assert_has(&text, "Cannot access memory at address 0x10000\n");
    // 20 * 3 + 1 - 38 = 23, octal 027.
    assert_has(&text, "[Inferior 1 (process 1) exited with code 027]");
    assert_eq!(finished.status.code(), Some(23), "{}", finished.stderr);
    assert_eq!(finished.stdout, "scaled 61\n");
}

#[test]
fn the_fault_example_stops_at_its_faulting_line_with_sigsegv() {
    require!("gdb");
    let elf = example("fault");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let text = gdb(&elf, waiting.port(), &["continue", "bt", "continue"]);
    let finished = waiting.finish();
    assert_has(
        &text,
        "\nProgram received signal SIGSEGV, Segmentation fault.\n",
    );
    assert_has(
        &text,
        " in fault::read_unmapped () at fault/src/main.rs:15\n",
    );
    assert_has(&text, "\n15\t    unsafe { *pointer }\n");
    let frames = lines_starting(&text, "#");
    assert!(
        frames[0].ends_with(" in fault::read_unmapped () at fault/src/main.rs:15"),
        "{text}"
    );
    assert!(
        frames[1].ends_with(" in fault::main () at fault/src/main.rs:20"),
        "{text}"
    );
    // Continuing delivers the signal: the guest ends as it would have without gdb.
    assert_has(
        &text,
        "\nProgram terminated with signal SIGSEGV, Segmentation fault.\n",
    );
    assert_eq!(finished.status.code(), Some(134));
    assert_eq!(finished.stdout, "reading 0x7f00deadb000\n");
    let report: Vec<&str> = finished.stderr.lines().collect();
    assert!(report[0].starts_with(WAITING), "{}", finished.stderr);
    assert!(
        report[1].starts_with(
            "hyperlight-run: error: guest crashed: page fault (#PF) at address 0x7f00deadb000"
        ),
        "{}",
        finished.stderr
    );
}

#[test]
fn each_exception_stops_with_its_signal_and_an_invalid_hypercall_ends_the_guest() {
    require!("gdb");
    let elf = probe();
    for (case, stop) in [
        (
            "ud2",
            "Program received signal SIGILL, Illegal instruction.",
        ),
        (
            "divide-error",
            "Program received signal SIGFPE, Arithmetic exception.",
        ),
        (
            "privileged",
            "Program received signal SIGSEGV, Segmentation fault.",
        ),
        (
            "stack-overflow",
            "Program received signal SIGSEGV, Segmentation fault.",
        ),
        (
            "unknown-port",
            "Program terminated with signal SIGSYS, Bad system call.",
        ),
    ] {
        let waiting = Waiting::runner(&[path_str(&elf), case]);
        let text = gdb(&elf, waiting.port(), &["continue", "continue"]);
        let finished = waiting.finish();
        assert_has(&text, &format!("\n{stop}\n"));
        assert_eq!(
            finished.status.code(),
            Some(134),
            "{case}: {}",
            finished.stderr
        );
        assert_has(&finished.stderr, "hyperlight-run: error: ");
    }
}

#[test]
fn a_panic_stops_with_sigabrt_before_the_guest_exits() {
    require!("gdb");
    let elf = example("panic");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let text = gdb(&elf, waiting.port(), &["continue", "bt", "continue"]);
    let finished = waiting.finish();
    assert_has(&text, "\nProgram received signal SIGABRT, Aborted.\n");
    assert!(
        lines_starting(&text, "#")
            .iter()
            .any(|frame| frame.ends_with(" in panic::main () at panic/src/main.rs:10")),
        "{text}"
    );
    assert_has(&text, "[Inferior 1 (process 1) exited with code 0145]");
    assert_eq!(finished.status.code(), Some(101));
    assert_has(&finished.stderr, "the answer was 41, not 42");
}

#[test]
fn ctrl_c_interrupts_a_spinning_guest_and_kill_ends_the_runner() {
    require!("gdb");
    let elf = example("spin");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let (mut read, write) = std::io::pipe().unwrap();
    let mut gdb = gdb_command(&elf, waiting.port(), &["continue", "bt", "kill"])
        .stdout(write.try_clone().unwrap())
        .stderr(write)
        .spawn()
        .unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        read.read_to_string(&mut text).unwrap();
        text
    });
    // gdb connected and continued: the guest runs, and spins after this line. Then what
    // Ctrl-C sends gdb.
    waiting.wait_for_stdout("spinning forever\n");
    std::thread::sleep(Duration::from_millis(200));
    // SAFETY: signalling our own child.
    unsafe { libc::kill(gdb.id() as libc::pid_t, libc::SIGINT) };
    wait_with_watchdog(&mut gdb, "gdb", WATCHDOG);
    let text = reader.join().unwrap();
    let finished = waiting.finish();
    assert_has(&text, "\nProgram received signal SIGINT, Interrupt.\n");
    assert!(
        // Innermost, or below the spin loop's `pause` (core::hint::spin_loop).
        lines_starting(&text, "#")
            .iter()
            .any(|frame| frame.contains("spin::main () at spin/src/main.rs:11")),
        "{text}"
    );
    assert_eq!(finished.status.code(), Some(137), "{}", finished.stderr);
    assert_eq!(finished.stdout, "spinning forever\n");
    assert!(
        finished
            .stderr
            .ends_with("\nhyperlight-run: error: the debugger killed the guest\n"),
        "{}",
        finished.stderr
    );
}

#[test]
fn a_cargo_test_is_debugged_by_name_through_hyperlight_gdb() {
    require!("gdb");
    let line = line_of(&debuggee_source(), "test");
    let runner_dir = Path::new(RUNNER).parent().unwrap();
    let path = std::env::join_paths(std::iter::once(runner_dir.to_path_buf()).chain(
        std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()),
    ))
    .unwrap();
    let guests = testkit::project_root().join("tests/guests");
    let mut cargo = testkit::guest_cargo(&guests, testkit::sysroot(), &testkit::pinned_toolchain());
    cargo
        .args([
            "test",
            "--package",
            "debuggee",
            "--bin",
            "debuggee",
            "--",
            "scales_by_two",
        ])
        .env("PATH", path)
        .env("HYPERLIGHT_GDB", "0");
    let waiting = Waiting::spawn(&mut cargo);
    // cargo names the test binary it runs: `Running unittests src/main.rs (PATH)`.
    let elf = waiting
        .stderr_before
        .lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Running unittests src/main.rs (")?
                .strip_suffix(')')
        })
        .map(|relative| guests.join(relative))
        .unwrap_or_else(|| panic!("no Running line:\n{}", waiting.stderr_before));
    let text = gdb(
        &elf,
        waiting.port(),
        &[&format!("break main.rs:{line}"), "continue", "continue"],
    );
    let finished = waiting.finish();
    assert_has(
        &text,
        &format!("debuggee::tests::scales_by_two () at debuggee/src/main.rs:{line}\n"),
    );
    assert_has(&text, "[Inferior 1 (process 1) exited normally]");
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert_has(&finished.stdout, "test tests::scales_by_two ... ok\n");
    assert_has(&finished.stdout, "test result: ok. 1 passed;");
}

/// Every test of a run waits for the debugger on the one port, the next once the last ended:
/// the runner runs them one at a time, whatever `--test-threads` says.
#[test]
fn under_hyperlight_gdb_the_tests_of_one_run_wait_for_the_debugger_in_turn() {
    require!("gdb");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let elf = testkit::build_guest_tests(&testkit::project_root().join("tests/guests"), "debuggee");
    let mut runner = runner();
    runner
        .arg(&elf)
        .arg("--test-threads=2")
        .env("HYPERLIGHT_GDB", port.to_string());
    let waiting = Waiting::spawn(&mut runner);
    // gdb retries a refused connection (`tcp auto-retry`) while the next test comes up.
    let first = gdb(&elf, port, &["continue"]);
    let second = gdb(&elf, port, &["continue"]);
    let finished = waiting.finish();
    for text in [&first, &second] {
        assert_has(text, "[Inferior 1 (process 1) exited normally]");
    }
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert_has(&finished.stdout, "test result: ok. 2 passed;");
    let waited = format!("hyperlight-run: waiting for gdb on 127.0.0.1:{port}\n");
    assert_eq!(
        finished.stderr.matches(&waited).count(),
        2,
        "{}",
        finished.stderr
    );
}

/// A std guest (x86_64-hyperlight-hermit) under gdb: its `main` reached through std's start-up
/// code (where gdb's backtrace ends, as for any program), its output, its exit.
#[test]
fn a_std_guest_stops_at_a_breakpoint_in_main_and_runs_to_its_exit() {
    require!("gdb");
    let guests = testkit::project_root().join("tests/std-guests");
    let output = testkit::std_guest_cargo(
        &guests,
        testkit::std_sysroot(),
        &testkit::pinned_toolchain(),
    )
    .args(["build", "--bin", "hello"])
    .output()
    .unwrap();
    testkit::assert_success(&output, "building the std hello");
    let elf = guests
        .join("target")
        .join(testkit::STD_TARGET)
        .join("debug/hello");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let text = gdb(
        &elf,
        waiting.port(),
        &["break main.rs:4", "continue", "bt", "continue"],
    );
    let finished = waiting.finish();
    assert_has(
        &text,
        "Breakpoint 1, hello::main () at hello/src/main.rs:4\n",
    );
    assert_has(&text, "#0  hello::main () at hello/src/main.rs:4\n");
    assert_has(&text, "[Inferior 1 (process 1) exited normally]");
    assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
    assert_eq!(finished.stdout, "Hello from a Hyperlight micro-VM!\n");
}

#[test]
fn after_detach_the_guest_runs_on_to_its_exit() {
    require!("gdb");
    let elf = debuggee();
    let scale = line_of(&debuggee_source(), "scale");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let text = gdb(
        &elf,
        waiting.port(),
        &[&format!("break main.rs:{scale}"), "continue", "detach"],
    );
    let finished = waiting.finish();
    assert_has(&text, "Breakpoint 1, debuggee::scale (value=20, factor=2)");
    assert_has(&text, "[Inferior 1 (process 1) detached]");
    // The breakpoint's int3 is gone: the guest finishes as it would have.
    assert_eq!(finished.status.code(), Some(3), "{}", finished.stderr);
    assert_eq!(finished.stdout, "scaled 41\n");
}

#[test]
fn rust_gdb_pretty_prints_vecs_and_strings() {
    require!("rust-gdb");
    let elf = debuggee();
    let print = line_of(&debuggee_source(), "print");
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let rust_gdb = gdb_command(
        &elf,
        waiting.port(),
        &[
            &format!("break main.rs:{print}"),
            "continue",
            "print words",
            "continue",
        ],
    );
    // rust-gdb is gdb with the toolchain's pretty printers allowed: the same arguments.
    let mut command = Command::new("rust-gdb");
    command.args(rust_gdb.get_args()).stdin(Stdio::null());
    let text = output_of(command, "rust-gdb");
    let finished = waiting.finish();
    assert_eq!(
        lines_starting(&text, "$"),
        [r#"$1 = Vec(size=2) = {"scaled", "by"}"#],
        "{text}"
    );
    assert_eq!(finished.status.code(), Some(3), "{}", finished.stderr);
}

#[test]
fn lldb_sets_a_breakpoint_steps_and_continues() {
    require!("lldb");
    let elf = debuggee();
    let (scale, call) = (
        line_of(&debuggee_source(), "scale"),
        line_of(&debuggee_source(), "call"),
    );
    let waiting = Waiting::runner(&[path_str(&elf)]);
    let mut lldb = Command::new("lldb");
    lldb.args(["--batch", "--no-lldbinit", "-o"])
        .arg(format!("gdb-remote 127.0.0.1:{}", waiting.port()))
        .args([
            "-o",
            &format!("breakpoint set --file main.rs --line {scale}"),
        ])
        .args([
            "-o",
            "continue",
            "-o",
            "bt",
            "-o",
            "frame variable value factor",
        ])
        .args([
            "-o",
            "register read cs",
            "-o",
            "thread step-over",
            "-o",
            "thread step-out",
        ])
        .args(["-o", "continue"])
        .arg(&elf)
        .stdin(Stdio::null());
    let text = output_of(lldb, "lldb");
    let finished = waiting.finish();
    assert_has(&text, "stop reason = breakpoint 1.1");
    assert_has(
        &text,
        &format!("debuggee`debuggee::scale(value=20, factor=2) at main.rs:{scale}"),
    );
    assert_has(
        &text,
        "(unsigned int) value = 20\n(unsigned int) factor = 2\n",
    );
    assert_has(&text, "cs = 0x00000033\n");
    assert_has(&text, "stop reason = step over");
    assert_has(
        &text,
        &format!(
            "debuggee`debuggee::scale(value=20, factor=2) at main.rs:{}",
            scale + 1
        ),
    );
    assert_has(&text, "Return value: (unsigned int) $0 = 41");
    assert_has(&text, &format!("debuggee`debuggee::main at main.rs:{call}"));
    assert_has(&text, "exited with status = 3");
    assert_eq!(finished.status.code(), Some(3), "{}", finished.stderr);
}

#[test]
fn hyperlight_gdb_does_what_gdb_does_and_other_hosts_get_a_warning() {
    testkit::require_kvm!();
    let elf = example("hello");
    // Any connection starts the session; one that closes at once leaves the guest to run.
    let env = Waiting::spawn(runner().env("HYPERLIGHT_GDB", "127.0.0.1:0").arg(&elf));
    drop(TcpStream::connect(&env.address).unwrap());
    let env = env.finish();
    assert_eq!(env.status.code(), Some(0), "{}", env.stderr);
    assert_eq!(env.stdout, "Hello from a Hyperlight micro-VM!\n");

    let any = Waiting::spawn(runner().args(["--gdb", "0.0.0.0:0"]).arg(&elf));
    assert_eq!(
        any.stderr_before,
        format!(
            "hyperlight-run: warning: gdb listens on 0.0.0.0:0, reachable from other machines: \
             whoever connects first controls the guest\n{WAITING}{}\n",
            any.address
        )
    );
    drop(TcpStream::connect(("127.0.0.1", any.port())).unwrap());
    assert_eq!(any.finish().status.code(), Some(0));

    // The debugger's socket calls are not in the seccomp filter: the runner goes without it.
    let unconfined = Waiting::spawn(
        runner()
            .env("HYPERLIGHT_RUN_TEST_HOOK", "seccomp-status")
            .args(["--gdb", "0"])
            .arg(&elf),
    );
    drop(TcpStream::connect(&unconfined.address).unwrap());
    let unconfined = unconfined.finish();
    assert_eq!(unconfined.status.code(), Some(0));
    // 0 = SECCOMP_MODE_DISABLED.
    assert_has(&unconfined.stderr, "test hook: Seccomp:\t0\n");

    let bad = run_with_watchdog(runner().env("HYPERLIGHT_GDB", "gdb").arg(&elf)).0;
    assert_eq!(code(&bad), 2);
    assert_eq!(
        assert_single_error_line(&bad),
        "hyperlight-run: error: HYPERLIGHT_GDB: `gdb` is not [HOST:]PORT, e.g. 1234 or \
         127.0.0.1:1234"
    );
}

/// Bytes no debugger sends: the runner must neither crash nor hang, and the guest runs on.
#[test]
fn garbage_truncated_and_oversized_packets_never_crash_or_hang_the_runner() {
    testkit::require_kvm!();
    let elf = example("hello");
    let cases: [Vec<u8>; 9] = [
        b"\xff\xfe\x00garbage\r\n".to_vec(),
        b"$qSupported:multiprocess+#ff".to_vec(),
        b"$g".to_vec(),
        packet("m0,ffffffffffffffff"),
        [
            packet("M200000,4:zz"),
            packet("Z0,0,1"),
            packet("X0,9999999:"),
        ]
        .concat(),
        [
            packet("vCont;q"),
            packet("qXfer:features:read:target.xml:ffffffff,ffff"),
            b"}}}}*$#".to_vec(),
        ]
        .concat(),
        packet(&"m".repeat(1 << 20)),
        b"\x03\x03$?#3f$g#67".to_vec(),
        // A register block too short for the registers (the runner's own parsing).
        [packet("?"), packet("G0011"), packet("P10=00")].concat(),
    ];
    for case in cases {
        let waiting = Waiting::runner(&[path_str(&elf)]);
        let mut client = TcpStream::connect(&waiting.address).unwrap();
        // The runner may close the connection before reading everything.
        let _ = client.write_all(&case);
        let _ = client.shutdown(std::net::Shutdown::Write);
        let mut replies = Vec::new();
        let _ = client.read_to_end(&mut replies);
        drop(client);
        let finished = waiting.finish();
        assert_eq!(finished.status.code(), Some(0), "{}", finished.stderr);
        assert_eq!(finished.stdout, "Hello from a Hyperlight micro-VM!\n");
        assert!(!finished.stderr.contains("panicked"), "{}", finished.stderr);
    }
}

/// `$BODY#CHECKSUM`: a well-formed packet, whatever it asks.
fn packet(body: &str) -> Vec<u8> {
    let sum = body.bytes().fold(0u8, |sum, byte| sum.wrapping_add(byte));
    format!("${body}#{sum:02x}").into_bytes()
}
