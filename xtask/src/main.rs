//! The project's automation: `cargo xtask <command>`; see `cargo xtask --help`.

mod bench;
mod c_headers;
mod c_objects;
mod compat;
mod dist;
mod fuzz;
mod publish;
mod runner;
mod signing;
mod suite;
mod sysroot;
mod toolchain;
mod tools;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};
use hyperlight_install::runner::Removal;
use hyperlight_install::{runner as installed_runner, transaction, Target};
use xshell::Shell;

use crate::toolchain::{Toolchain, FOR_SYSROOT, RUST_SRC};

#[derive(Parser)]
#[command(
    about = "Build, install and ship the x86_64-hyperlight-none and x86_64-hyperlight-hermit targets"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build a target's sysroot: core, alloc and compiler_builtins for x86_64-hyperlight-none;
    /// std, test and the Hermit ABI for x86_64-hyperlight-hermit.
    Sysroot {
        /// Toolchain whose rust-src and rustc build the sysroot (default: the pinned one).
        #[arg(long)]
        toolchain: Option<String>,
        /// The target to build it for.
        #[arg(long, default_value = Target::None.name())]
        target: Target,
        /// Sysroot directory to write (default: target/sysroot/<TOOLCHAIN>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Install the sysroot into a toolchain and hyperlight-run into cargo's bin directory.
    Install {
        /// Toolchain to install into (default: the pinned one).
        #[arg(long)]
        toolchain: Option<String>,
        /// The targets to install; repeat for several (default: x86_64-hyperlight-none).
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<Target>,
        /// Install into this sysroot instead of the toolchain's own.
        #[arg(long, value_name = "SYSROOT")]
        prefix: Option<PathBuf>,
        /// Install the sysroot only, leaving hyperlight-run as it is.
        #[arg(long)]
        no_runner: bool,
        #[command(flatten)]
        key: signing::KeyArg,
    },
    /// Remove exactly what `install` put into a toolchain, and the runner when no toolchain needs it.
    Uninstall {
        /// Toolchain to remove the targets from (default: the pinned one).
        #[arg(long)]
        toolchain: Option<String>,
        /// The targets to remove; repeat for several (default: every one installed).
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<Target>,
        /// Remove from this sysroot instead of the toolchain's own.
        #[arg(long, value_name = "SYSROOT")]
        prefix: Option<PathBuf>,
    },
    /// Write a release to DIR: sysroot tarballs, the source archive, the runner, install.sh and
    /// manifest.json.
    Dist {
        /// Toolchain to build sysroots with; repeat for several (default: the pinned one).
        #[arg(long = "toolchain", value_name = "T")]
        toolchains: Vec<String>,
        /// The targets to build or pack sysroots of; repeat for several (default: all). The
        /// sources of every target are always included.
        #[arg(long = "target", value_name = "TARGET")]
        targets: Vec<Target>,
        /// Pack this sysroot, already built by `cargo xtask sysroot`, instead of building one.
        #[arg(long = "sysroot", value_name = "DIR")]
        sysroots: Vec<PathBuf>,
        /// Add the sysroots (and, with --no-runner, the runner) of another dist
        /// directory.
        #[arg(long = "include", value_name = "DIR")]
        includes: Vec<PathBuf>,
        /// Do not build the runner (hyperlight-run, the release's installer too).
        #[arg(long)]
        no_runner: bool,
        /// Output directory (default: dist/).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        #[command(flatten)]
        key: signing::KeyArg,
    },
    /// Upload a dist directory to DEST, merging its manifest with the one already there.
    Publish {
        /// An http(s):// base URL taking PUT, or github:OWNER/REPO@TAG (needs GITHUB_TOKEN).
        #[arg(long, value_name = "DEST")]
        to: String,
        /// The directory `cargo xtask dist` wrote (default: dist/).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
        /// Replace release assets that differ from ours (GitHub).
        #[arg(long)]
        force: bool,
        /// After merging, keep only the newest N nightly and the newest N beta sysroots
        /// (stable ones always stay), removing the files of the others (default: keep all).
        #[arg(long, value_name = "N")]
        keep_nightlies: Option<usize>,
        #[command(flatten)]
        key: signing::KeyArg,
    },
    /// Write a new release signing key to FILE (mode 0600) and its public key to FILE.pub.
    Keygen {
        /// The key file to create; an existing one is never replaced.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },
    /// Install the pinned cargo-nextest the test suite needs into target/tools, as `test` does
    /// first when it is missing: on its own, CI builds it while other work leaves a core idle.
    TestTools,
    /// Run the whole test suite, after checking that what it needs is installed.
    Test {
        /// Passed on to `cargo test`, e.g. a test name filter.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        cargo_test_args: Vec<String>,
    },
    /// Measure the project against its performance goals; figures go to BENCHMARKS.md.
    Bench {
        /// Only these sections (sysroot, compat, runner, harness, limits, dist, heal); default all.
        sections: Vec<String>,
    },
    /// Run COMMAND (a runner process cargo-nextest starts), append its wall time in nanoseconds
    /// to LOG and exit with its code: how `bench harness` times the runner under nextest.
    #[command(hide = true)]
    TimeRunner {
        log: PathBuf,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<std::ffi::OsString>,
    },
    /// Run every fuzz target (fuzz/, cargo-fuzz on nightly) for N seconds each; fails on a crash.
    Fuzz {
        /// Seconds per target.
        #[arg(long, value_name = "N", default_value_t = fuzz::DEFAULT_SECONDS)]
        seconds: u32,
        /// Only these targets (default: all).
        #[arg(long = "target", value_name = "NAME")]
        targets: Vec<String>,
    },
    /// Build the official Hyperlight demo guest with cargo-hyperlight and with plain cargo,
    /// and compare the machine code.
    Compat {
        /// Only write the demo project to DIR (its last component must be `official-demo`).
        #[arg(long, hide = true, value_name = "DIR")]
        generate: Option<PathBuf>,
    },
}

fn main() -> ExitCode {
    let mut args = std::env::args_os();
    // Recording picolibc's objects (`c_objects`) runs this binary as the C compiler.
    if hyperlight_install::c_objects::is_front(&args.next().unwrap_or_default()) {
        let code = hyperlight_install::c_objects::front(args.collect());
        return ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // One line, the causes after the message: no backtrace for errors the user can fix.
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let sh = Shell::new()?;
    match cli.command {
        Command::Sysroot {
            toolchain,
            target,
            out,
        } => {
            let toolchain =
                Toolchain::provision(&sh, toolchain.as_deref(), &[RUST_SRC], &[], FOR_SYSROOT)?;
            let out = out.unwrap_or_else(|| sysroot::default_out(&toolchain));
            sysroot::build(&sh, &toolchain, target, &out)
        }
        Command::Install {
            toolchain,
            targets,
            prefix,
            no_runner,
            key,
        } => install(
            &sh,
            toolchain.as_deref(),
            Target::or_default(targets),
            prefix,
            (!no_runner).then_some(key),
        ),
        Command::Uninstall {
            toolchain,
            targets,
            prefix,
        } => uninstall(toolchain.as_deref(), &targets, prefix),
        Command::Dist {
            toolchains,
            targets,
            sysroots,
            includes,
            no_runner,
            out,
            key,
        } => {
            let options = dist::DistOptions {
                toolchains,
                targets,
                sysroots,
                includes,
                no_runner,
                out,
                signing_key: key.signing_key,
            };
            provision_dist(&sh, &options)?;
            dist::run(&sh, options)
        }
        Command::Publish {
            to,
            dir,
            force,
            keep_nightlies,
            key,
        } => {
            let key = signing::resolve(key.signing_key.as_deref())?;
            let dir = dir.unwrap_or_else(dist::default_out);
            publish::run(&to, &dir, force, keep_nightlies, &key)
        }
        Command::Keygen { out } => keygen(&out),
        Command::TestTools => tools::CARGO_NEXTEST.ensure(&sh).map(drop),
        Command::Test { cargo_test_args } => suite::run(&sh, &cargo_test_args),
        Command::Bench { sections } => bench::run(&sh, &sections),
        Command::TimeRunner { log, command } => bench::time_runner(&log, &command),
        Command::Fuzz { seconds, targets } => fuzz::run(&sh, seconds, &targets),
        Command::Compat { generate: None } => compat::run(&sh),
        Command::Compat {
            generate: Some(dir),
        } => compat::demo::generate(&sh, &dir),
    }
}

/// `cargo xtask install`: builds the targets' sysroots (and, given `runner_key`, the runner
/// trusting it) for `toolchain`, then installs them into `prefix` or the toolchain.
fn install(
    sh: &Shell,
    toolchain: Option<&str>,
    targets: Vec<Target>,
    prefix: Option<PathBuf>,
    runner_key: Option<signing::KeyArg>,
) -> Result<()> {
    let toolchain = Toolchain::provision(sh, toolchain, &[RUST_SRC], &[], FOR_SYSROOT)?;
    let built = sysroot::default_out(&toolchain);
    for &target in &targets {
        sysroot::build(sh, &toolchain, target, &built)?;
    }
    let sysroot = prefix.unwrap_or_else(|| toolchain.sysroot.clone());
    // Built before anything is installed, so a failing build leaves the toolchain as it was.
    let runner = match runner_key {
        Some(key) => {
            let trusted = signing::public_key(key.signing_key.as_deref())?;
            Some(runner::build_release(sh, &trusted)?)
        }
        None => None,
    };
    for &target in &targets {
        match transaction::install(&built, &sysroot, target)? {
            transaction::Outcome::Installed => {
                eprintln!("installed {target} into {}", sysroot.display())
            }
            transaction::Outcome::AlreadyInstalled => {
                eprintln!("{target} is already installed in {}", sysroot.display())
            }
        }
    }
    if let Some(runner) = runner {
        let runner = installed_runner::install(&runner, &installed_runner::bin_dir()?)?;
        eprintln!("installed {}", runner.display());
    }
    Ok(())
}

/// `cargo xtask uninstall`: removes `targets` (all when empty) from `prefix` or the toolchain,
/// and the runner unless another toolchain still has a target.
fn uninstall(toolchain: Option<&str>, targets: &[Target], prefix: Option<PathBuf>) -> Result<()> {
    let toolchain = Toolchain::resolve(toolchain)?;
    let sysroot = prefix.unwrap_or_else(|| toolchain.sysroot.clone());
    transaction::uninstall_targets(&sysroot, targets, |said| eprintln!("{said}"))?;
    match installed_runner::uninstall(&sysroot)? {
        Removal::Removed(runner) => eprintln!("removed {}", runner.display()),
        Removal::Kept { runner, user } => eprintln!(
            "kept {}: the toolchain at {} still uses it",
            runner.display(),
            user.display()
        ),
        Removal::NotInstalled => {}
    }
    Ok(())
}

fn keygen(out: &Path) -> Result<()> {
    let public = signing::keygen(out)?;
    eprintln!(
        "wrote the signing key to {} (keep it secret) and its public key to {}.pub:",
        out.display(),
        out.display()
    );
    println!("{public}");
    Ok(())
}

/// Adds what `dist` builds with before it starts: rust-src to each toolchain it builds a sysroot
/// with (the pinned one when it is given nothing, as `dist::run` decides), and the musl target
/// for the static host tools to the pinned one.
fn provision_dist(sh: &Shell, options: &dist::DistOptions) -> Result<()> {
    let nothing_given =
        options.toolchains.is_empty() && options.sysroots.is_empty() && options.includes.is_empty();
    let named = options.toolchains.iter().map(|name| Some(name.as_str()));
    for name in named.chain(nothing_given.then_some(None)) {
        Toolchain::provision(sh, name, &[RUST_SRC], &[], FOR_SYSROOT)?;
    }
    if !options.no_runner {
        let why = "needed to build the static hyperlight-run";
        Toolchain::provision(sh, None, &[], &[dist::RUNNER_HOST], why)?;
    }
    Ok(())
}
