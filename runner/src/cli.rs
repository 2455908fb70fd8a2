//! The command line: options, `--help` (with the exit codes), and turning outcomes into
//! messages and exit codes.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use hyperlight_install::Target;
use hyperlight_run::{Config, HostStdio, Outcome};

/// The environment variable that overrides the KVM device (tests point it at a missing path).
const KVM_DEVICE_VAR: &str = "HYPERLIGHT_KVM_DEVICE";

const AFTER_HELP: &str = "\
Exit status:
  0-255  the guest's own exit code
  101    the guest panicked
  124    --timeout expired
  125    hyperlight-run failed (KVM unavailable, ELF rejected, guest does not fit --memory, ...)
  126    an official Hyperlight guest (has .note.hyperlight-version): not booted; the message
         names the Hyperlight host version it needs
  134    the guest crashed (CPU exception such as a page fault) or made an invalid hypercall
  141    the reader of the guest's output closed it
  159    the runner's seccomp filter refused one of its own system calls (a runner bug or an
         exploit attempt; the message names the call's number)
  2      invalid command line

Every error message starts with `hyperlight-run: error:`.

Also:
  hyperlight-run new <PATH> [--name NAME] [--std]
                                            create a guest crate, with --std a std guest for
                                            x86_64-hyperlight-hermit (exit 1 if PATH exists)
  hyperlight-run doctor [--toolchain T]     check KVM, the installed target, the guest
                                            project's config, clang and llvm-ar
                                            (exit 0 only if ready)
  hyperlight-run target add|remove|list     install, remove or list the target per toolchain
Started as hyperlight-cc (a link to it), it is the guest config's C compiler: it copies
picolibc's prebuilt objects from the installed target where a compile matches one exactly,
and runs clang for everything else.
As a rustc wrapper (`hyperlight-run rustc ...`, the guest config's build.rustc-wrapper) it
installs the target for the toolchain a build uses when missing or stale, then runs rustc.
Environment: HYPERLIGHT_KVM_DEVICE overrides the KVM device (default /dev/kvm).
As cargo's runner: set `runner = \"hyperlight-run\"` for target x86_64-hyperlight-none or
x86_64-hyperlight-hermit (std guests).";

#[derive(Parser)]
#[command(
    name = "hyperlight-run",
    version,
    about = "Boot an x86_64-hyperlight-none guest in a KVM micro-VM and run it like a program",
    after_help = AFTER_HELP
)]
struct Cli {
    /// Guest memory, e.g. 64M or 1G (reserved lazily: untouched memory costs nothing).
    #[arg(short, long, value_name = "SIZE", default_value = "64M", value_parser = parse_size)]
    memory: u64,

    /// Guest stack size; a guard page below it turns overflows into a reported fault.
    #[arg(long, value_name = "SIZE", default_value = "1M", value_parser = parse_size)]
    stack: u64,

    /// Stop the guest after this long and exit 124, e.g. 500ms, 10s, 2m. Under `cargo test`:
    /// the time limit of each test that sets none of its own.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,

    /// Set a guest environment variable (repeatable); `-e KEY` passes the host's value.
    /// The guest sees no host environment otherwise.
    #[arg(short, long = "env", value_name = "KEY=VALUE")]
    env: Vec<OsString>,

    /// Do not confine the runner with seccomp (debugging only). By default, once the VM is
    /// built, the runner can make only the few system calls its run loop needs.
    #[arg(long)]
    no_seccomp: bool,

    /// Boot the guest this many times in-process and print the median boot-to-exit time
    /// (benchmarking; output is discarded; runs without seccomp, which would forbid the next boot).
    #[arg(long, hide = true, value_name = "N")]
    repeat: Option<u32>,

    /// The guest ELF (cargo passes the built binary here).
    #[arg(value_name = "GUEST-ELF")]
    guest: PathBuf,

    /// Arguments for the guest.
    #[arg(
        value_name = "GUEST-ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    args: Vec<OsString>,
}

fn error(message: impl std::fmt::Display) {
    // Not eprintln!: it panics when stderr is a closed pipe, and a report is not worth that.
    let _ = writeln!(std::io::stderr(), "hyperlight-run: error: {message}");
}

/// The tools beside running a guest. A guest ELF named like one of them runs as `./new`.
#[derive(Parser)]
#[command(name = "hyperlight-run", version)]
enum Tool {
    /// Create a guest crate that builds, runs and tests as it is; exit 1 if PATH exists.
    New {
        /// The directory to create.
        path: PathBuf,
        /// The package name (default: the directory's name).
        #[arg(long)]
        name: Option<String>,
        /// A std guest for x86_64-hyperlight-hermit instead of a no_std one.
        #[arg(long)]
        std: bool,
    },
    /// Check what building and running a guest needs; exit 0 only when all is in place.
    Doctor {
        /// The toolchain to check (default: the one cargo uses in this directory).
        #[arg(long)]
        toolchain: Option<String>,
    },
    /// Install, remove or list the x86_64-hyperlight-none target in Rust toolchains.
    Target {
        #[command(subcommand)]
        command: crate::target::TargetCommand,
    },
}

fn tool(kvm_device: &Path) -> i32 {
    let tool = match Tool::try_parse() {
        Ok(tool) => tool,
        Err(err) => {
            let _ = err.print();
            return err.exit_code();
        }
    };
    match tool {
        Tool::New { path, name, std } => {
            let target = if std { Target::Hermit } else { Target::None };
            match crate::scaffold::create(&path, name.as_deref(), target) {
                Ok(message) => {
                    println!("{message}");
                    0
                }
                Err(message) => {
                    error(message);
                    1
                }
            }
        }
        Tool::Doctor { toolchain } => crate::doctor::run(toolchain.as_deref(), kvm_device),
        Tool::Target { command } => crate::target::run(command),
    }
}

/// `hyperlight-run init [install.sh's options]`: what install.sh hands over to.
fn init() -> i32 {
    let args = std::iter::once(OsString::from("install.sh")).chain(std::env::args_os().skip(2));
    match crate::target::InitArgs::try_parse_from(args) {
        Ok(args) => crate::target::init(args),
        Err(err) => {
            let _ = err.print();
            err.exit_code()
        }
    }
}

pub fn main() -> i32 {
    let kvm_device =
        std::env::var_os(KVM_DEVICE_VAR).map_or_else(|| PathBuf::from("/dev/kvm"), PathBuf::from);
    let mut args = std::env::args_os();
    if hyperlight_install::c_objects::is_front(&args.next().unwrap_or_default()) {
        return hyperlight_install::c_objects::front(args.collect());
    }
    let first = std::env::args_os().nth(1).unwrap_or_default();
    if crate::heal::is_wrapper_call(Path::new(&first)) {
        return crate::heal::main(std::env::args_os().skip(1).collect());
    }
    match first.to_str() {
        Some("new" | "doctor" | "target") => return tool(&kvm_device),
        Some("init") => return init(),
        _ => {}
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => {
            let code = err.exit_code();
            let _ = err.print();
            return code;
        }
    };
    let mut env = Vec::with_capacity(cli.env.len());
    for entry in &cli.env {
        if entry.as_encoded_bytes().contains(&b'=') {
            env.push(entry.clone());
        } else if let Some(value) = std::env::var_os(entry) {
            let mut pair = entry.clone();
            pair.push("=");
            pair.push(value);
            env.push(pair);
        }
    }
    let config = Config {
        memory: cli.memory,
        stack: cli.stack,
        timeout: cli.timeout,
        env,
        kvm_device,
        // One guest per process, so the filter can stay for the rest of its life.
        seccomp: !cli.no_seccomp && cli.repeat.is_none(),
        ..Config::default()
    };
    let mut args = Vec::with_capacity(cli.args.len() + 1);
    args.push(cli.guest.clone().into_os_string());
    args.extend(cli.args.iter().cloned());

    if let Some(times) = cli.repeat {
        return repeat(&cli, &args, &config, times);
    }
    if let Some(protocol) = hyperlight_run::harness::Protocol::of(&cli.guest) {
        // One process boots a VM per test, so the filter that would forbid creating the
        // next VM is not installed: test binaries are the developer's own code.
        let config = Config {
            seccomp: false,
            ..config
        };
        return hyperlight_run::harness::run(&cli.guest, protocol, &cli.args, &config);
    }

    let mut output = HostStdio::new();
    match hyperlight_run::run(&cli.guest, &args, &config, &mut output) {
        Ok(report) => {
            match &report.outcome {
                Outcome::Crashed(report) => {
                    error(&report.summary);
                    if !report.backtrace.is_empty() {
                        let _ = writeln!(
                            std::io::stderr(),
                            "guest backtrace:\n{}",
                            report.backtrace.join("\n")
                        );
                    }
                }
                Outcome::TimedOut(after) => error(format_args!(
                    "the guest did not finish within {after:?} (--timeout); stopped it"
                )),
                Outcome::Exited(_) | Outcome::OutputClosed => {}
            }
            report.outcome.exit_code()
        }
        Err(err) => {
            error(&err);
            err.exit_code()
        }
    }
}

fn repeat(cli: &Cli, args: &[OsString], config: &Config, times: u32) -> i32 {
    let mut samples = Vec::new();
    for _ in 0..times.max(1) {
        match hyperlight_run::run(&cli.guest, args, config, &mut hyperlight_run::Discard) {
            Ok(report) => samples.push(report.boot_to_exit),
            Err(err) => {
                error(&err);
                return err.exit_code();
            }
        }
    }
    samples.sort();
    println!(
        "boot-to-exit median {} ns",
        samples[samples.len() / 2].as_nanos()
    );
    0
}

/// `64M`, `1G`, `512K`, `4096`; binary units, an optional `B`/`iB` suffix.
fn parse_size(text: &str) -> Result<u64, String> {
    let lower = text.trim().to_ascii_lowercase();
    let lower = lower
        .strip_suffix("ib")
        .or_else(|| lower.strip_suffix('b'))
        .unwrap_or(&lower);
    let (digits, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower, 0),
    };
    let number: u64 = digits
        .parse()
        .map_err(|_| format!("`{text}` is not a size like 64M or 1G"))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| format!("`{text}` is too large"))
}

/// `500ms`, `10s`, `2m`, `1.5s`; a bare number is seconds (the syntax of a test's `timeout`
/// too, `hyperlight_rt::abi::duration`).
fn parse_duration(text: &str) -> Result<Duration, String> {
    hyperlight_rt::abi::duration::parse(text)
        .ok_or_else(|| format!("`{}` is not a duration like 500ms, 10s or 2m", text.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("64M"), Ok(64 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512KiB"), Ok(512 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("lots").is_err());
        assert!(parse_size("99999999999G").is_err());
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration(" 250us "), Ok(Duration::from_micros(250)));
        assert_eq!(parse_duration("0.1h"), Ok(Duration::from_secs(360)));
        assert_eq!(
            parse_duration("1.0000000015s"),
            Ok(Duration::from_nanos(1_000_000_001))
        );
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("-1s").is_err());
        assert!(parse_duration("1 s").is_err() && parse_duration("ms").is_err());
        assert!(parse_duration("99999999999h").is_err());
    }
}
