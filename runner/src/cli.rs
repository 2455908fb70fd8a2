//! The command line: options, `--help` (with the exit codes), and turning outcomes into
//! messages and exit codes.

use std::ffi::OsString;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Parser;
use hyperlight_install::Target;
use hyperlight_run::{Config, GuestFile, HostStdio, Outcome};

/// The environment variable that overrides the KVM device (tests point it at a missing path).
const KVM_DEVICE_VAR: &str = "HYPERLIGHT_KVM_DEVICE";
/// `--gdb`'s value for runs started by cargo (`cargo run`, `cargo test NAME`).
const GDB_VAR: &str = "HYPERLIGHT_GDB";
/// `--core-dump`'s value for runs started by cargo.
const CORE_DUMP_VAR: &str = "HYPERLIGHT_CORE_DUMP_DIR";

const AFTER_HELP: &str = "\
Exit status:
  0-255  the guest's own exit code
  101    the guest panicked
  124    --timeout expired
  125    hyperlight-run failed (KVM unavailable, ELF rejected, guest does not fit --memory, ...)
  126    an official Hyperlight guest (has .note.hyperlight-version): not booted; the message
         names the Hyperlight host version it needs
  134    the guest crashed (CPU exception such as a page fault) or made an invalid hypercall
  137    under --gdb, the debugger killed the guest
  141    the reader of the guest's output closed it
  159    the runner's seccomp filter refused one of its own system calls (a runner bug or an
         exploit attempt; the message names the call's number)
  2      invalid command line

Every error message starts with `hyperlight-run: error:`. A guest ELF named like a command
runs as `./new`.

Started as hyperlight-cc (a link to it), it is the guest config's C compiler: it copies
picolibc's prebuilt objects from the installed target where a compile matches one exactly,
and runs clang for everything else.
As a rustc wrapper (`hyperlight-run rustc ...`, the guest config's build.rustc-wrapper) it
installs the target for the toolchain a build uses when missing or stale, then runs rustc.
Environment: HYPERLIGHT_KVM_DEVICE overrides the KVM device (default /dev/kvm);
HYPERLIGHT_GDB=[HOST:]PORT does what --gdb does, HYPERLIGHT_CORE_DUMP_DIR=DIR what
--core-dump does.
As cargo's runner: set `runner = \"hyperlight-run\"` for target x86_64-hyperlight-none or
x86_64-hyperlight-hermit (std guests).";

/// The whole command line: a guest to run, or one of the tools.
#[derive(Parser)]
#[command(
    name = "hyperlight-run",
    version,
    about = "Boot an x86_64-hyperlight-none guest in a KVM micro-VM and run it like a program",
    after_help = AFTER_HELP,
    args_conflicts_with_subcommands = true,
    subcommand_negates_reqs = true,
    disable_help_subcommand = true
)]
struct Cli {
    #[command(subcommand)]
    tool: Option<Tool>,
    #[command(flatten)]
    run: RunArgs,
}

#[derive(clap::Args)]
struct RunArgs {
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

    /// Wait for gdb (or lldb) on [HOST:]PORT before the guest's first instruction and run it
    /// under the debugger (HOST: 127.0.0.1 unless given; port 0 picks a free one). The runner
    /// then runs without seccomp and ignores --timeout. Also HYPERLIGHT_GDB.
    #[arg(long, value_name = "[HOST:]PORT", value_parser = parse_gdb_address)]
    gdb: Option<SocketAddr>,

    /// Write an ELF core file (`gdb GUEST CORE` opens it) into DIR when the guest crashes,
    /// panics or times out; the report's last line names it. Also HYPERLIGHT_CORE_DUMP_DIR.
    #[arg(long, value_name = "DIR")]
    core_dump: Option<PathBuf>,

    /// Boot the guest this many times in-process and print the median boot-to-exit time
    /// (benchmarking; output is discarded; runs without seccomp, which would forbid the next boot).
    #[arg(long, hide = true, value_name = "N")]
    repeat: Option<u32>,

    /// The guest ELF (cargo passes the built binary here).
    #[arg(value_name = "GUEST-ELF", required = true)]
    guest: Option<PathBuf>,

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

/// The tools beside running a guest.
#[derive(clap::Subcommand)]
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
    /// Install, remove or list this project's targets in Rust toolchains.
    Target {
        #[command(subcommand)]
        command: crate::target::TargetCommand,
    },
    // What install.sh hands over to, with its options (its help and errors speak as it).
    #[command(hide = true, override_usage = "install.sh [OPTIONS]")]
    Init(crate::target::InitArgs),
}

fn tool(tool: Tool, kvm_device: &Path) -> i32 {
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
        Tool::Init(args) => crate::target::init(args),
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
    match Cli::try_parse() {
        Ok(Cli {
            tool: Some(command),
            ..
        }) => tool(command, &kvm_device),
        Ok(Cli { run, .. }) => run_guest(run, kvm_device),
        Err(err) => {
            let code = err.exit_code();
            let _ = err.print();
            code
        }
    }
}

/// Runs the guest the command line names: a test binary's tests, or the program itself.
fn run_guest(cli: RunArgs, kvm_device: PathBuf) -> i32 {
    let Some(path) = &cli.guest else {
        unreachable!("clap requires GUEST-ELF unless a command is given")
    };
    let config = match config(&cli, kvm_device) {
        Ok(config) => config,
        Err(err) => {
            error(format_args!("{GDB_VAR}: {err}"));
            return 2;
        }
    };
    let guest = match GuestFile::open(path) {
        Ok(guest) => guest,
        Err(err) => {
            error(&err);
            return err.exit_code();
        }
    };
    let mut args = Vec::with_capacity(cli.args.len() + 1);
    args.push(path.clone().into_os_string());
    args.extend(cli.args.iter().cloned());
    if let Some(times) = cli.repeat {
        return repeat(&guest, &args, &config, times);
    }
    if let Some(protocol) = hyperlight_run::harness::Protocol::of(&guest) {
        // One process boots a VM per test, so the filter that would forbid creating the
        // next VM is not installed: test binaries are the developer's own code.
        let config = Config {
            seccomp: false,
            ..config
        };
        return hyperlight_run::harness::run(&guest, protocol, &cli.args, &config);
    }
    match hyperlight_run::run(&guest, &args, &config, &mut HostStdio::new()) {
        Ok(report) => {
            explain(&report.outcome);
            match &report.core_dump {
                Some(Ok(path)) => {
                    let _ = writeln!(
                        std::io::stderr(),
                        "hyperlight-run: core dumped to {}",
                        path.display()
                    );
                }
                Some(Err(reason)) => error(format_args!("no core dump: {reason}")),
                None => {}
            }
            report.outcome.exit_code()
        }
        Err(err) => {
            error(&err);
            err.exit_code()
        }
    }
}

/// How to run a guest, from the options and the environment (HYPERLIGHT_GDB and
/// HYPERLIGHT_CORE_DUMP_DIR where the options say nothing).
fn config(cli: &RunArgs, kvm_device: PathBuf) -> Result<Config, ValueError> {
    let gdb = match cli.gdb {
        Some(address) => Some(address),
        None => match std::env::var(GDB_VAR) {
            Ok(value) if !value.is_empty() => Some(parse_gdb_address(&value)?),
            _ => None,
        },
    };
    if let Some(address) = gdb {
        if !address.ip().is_loopback() {
            let _ = writeln!(
                std::io::stderr(),
                "hyperlight-run: warning: gdb listens on {address}, reachable from other \
                 machines: whoever connects first controls the guest"
            );
        }
    }
    let core_dump_dir = cli.core_dump.clone().or_else(|| {
        std::env::var_os(CORE_DUMP_VAR)
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
    });
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
    Ok(Config {
        memory: cli.memory,
        stack: cli.stack,
        timeout: cli.timeout,
        env,
        kvm_device,
        // One guest per process, so the filter can stay for the rest of its life.
        seccomp: !cli.no_seccomp && cli.repeat.is_none(),
        gdb,
        core_dump_dir,
        ..Config::default()
    })
}

/// Says on stderr why a guest that did not exit ended.
fn explain(outcome: &Outcome) {
    match outcome {
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
        Outcome::Killed => error("the debugger killed the guest"),
        Outcome::Exited(_) | Outcome::OutputClosed => {}
    }
}

fn repeat(guest: &GuestFile, args: &[OsString], config: &Config, times: u32) -> i32 {
    let mut samples = Vec::new();
    for _ in 0..times.max(1) {
        match hyperlight_run::run(guest, args, config, &mut hyperlight_run::Discard) {
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

/// An option's value clap hands over that is not what the option takes.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
enum ValueError {
    #[error("`{0}` is not a size like 64M or 1G")]
    Size(String),
    #[error("`{0}` is too large")]
    TooLarge(String),
    #[error("`{0}` is not a duration like 500ms, 10s or 2m")]
    Duration(String),
    #[error("`{0}` is not [HOST:]PORT, e.g. 1234 or 127.0.0.1:1234")]
    GdbAddress(String),
}

/// `64M`, `1G`, `512K`, `4096`; binary units, an optional `B`/`iB` suffix.
fn parse_size(text: &str) -> Result<u64, ValueError> {
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
        .map_err(|_| ValueError::Size(text.to_owned()))?;
    number
        .checked_mul(1 << shift)
        .ok_or_else(|| ValueError::TooLarge(text.to_owned()))
}

/// `PORT`, `HOST:PORT` or `[IPv6]:PORT`; HOST is an IP address or `localhost`.
fn parse_gdb_address(text: &str) -> Result<SocketAddr, ValueError> {
    let text = text.trim();
    let invalid = || ValueError::GdbAddress(text.to_owned());
    if let Ok(port) = text.parse::<u16>() {
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    if let Some(port) = text.strip_prefix("localhost:") {
        let port = port.parse::<u16>().map_err(|_| invalid())?;
        return Ok(SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port));
    }
    text.parse().map_err(|_| invalid())
}

/// `500ms`, `10s`, `2m`, `1.5s`; a bare number is seconds (the syntax of a test's `timeout`
/// too, `hyperlight_rt::abi::duration`).
fn parse_duration(text: &str) -> Result<Duration, ValueError> {
    hyperlight_rt::abi::duration::parse(text)
        .ok_or_else(|| ValueError::Duration(text.trim().to_owned()))
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
    fn gdb_addresses() {
        let local = |port| SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), port);
        assert_eq!(parse_gdb_address("1234"), Ok(local(1234)));
        assert_eq!(parse_gdb_address("localhost:0"), Ok(local(0)));
        assert_eq!(
            parse_gdb_address("0.0.0.0:9000"),
            Ok("0.0.0.0:9000".parse().unwrap())
        );
        assert_eq!(parse_gdb_address("[::1]:7"), Ok("[::1]:7".parse().unwrap()));
        assert!(parse_gdb_address("gdb").is_err());
        assert!(parse_gdb_address("70000").is_err());
        assert!(parse_gdb_address("host:12").is_err());
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
