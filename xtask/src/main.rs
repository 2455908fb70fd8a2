//! The project's automation: `cargo xtask <command>`; see `cargo xtask --help`.

mod bench;
mod install;
mod runner;
mod sysroot;
mod toolchain;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xshell::Shell;

use crate::toolchain::{Toolchain, TARGET};

#[derive(Parser)]
#[command(about = "Build, install and ship the x86_64-hyperlight-none target")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build core, alloc and compiler_builtins for x86_64-hyperlight-none.
    Sysroot {
        /// Toolchain whose rust-src and rustc build the sysroot (default: the pinned one).
        #[arg(long)]
        toolchain: Option<String>,
        /// Sysroot directory to write (default: target/sysroot/<TOOLCHAIN>).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Install the sysroot into a toolchain and hyperlight-run into cargo's bin directory.
    Install {
        /// Toolchain to install into (default: the pinned one).
        #[arg(long)]
        toolchain: Option<String>,
        /// Install into this sysroot instead of the toolchain's own.
        #[arg(long, value_name = "SYSROOT")]
        prefix: Option<PathBuf>,
    },
    /// Remove exactly what `install` put into a toolchain, and the runner when no toolchain needs it.
    Uninstall {
        /// Toolchain to remove the target from (default: the pinned one).
        #[arg(long)]
        toolchain: Option<String>,
        /// Remove from this sysroot instead of the toolchain's own.
        #[arg(long, value_name = "SYSROOT")]
        prefix: Option<PathBuf>,
    },
    /// Measure the project against its performance goals; figures go to BENCHMARKS.md.
    Bench,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let sh = Shell::new()?;
    match cli.command {
        Command::Sysroot { toolchain, out } => {
            let toolchain = Toolchain::resolve(&sh, toolchain.as_deref())?;
            let out = out.unwrap_or_else(|| sysroot::default_out(&toolchain));
            sysroot::build(&sh, &toolchain, &out)
        }
        Command::Install { toolchain, prefix } => {
            let toolchain = Toolchain::resolve(&sh, toolchain.as_deref())?;
            let built = sysroot::default_out(&toolchain);
            sysroot::build(&sh, &toolchain, &built)?;
            let sysroot = prefix.unwrap_or_else(|| toolchain.sysroot.clone());
            let runner = runner::build_release(&sh)?;
            match install::install(&built, &sysroot)? {
                install::Outcome::Installed => {
                    eprintln!("installed {TARGET} into {}", sysroot.display())
                }
                install::Outcome::AlreadyInstalled => {
                    eprintln!("{TARGET} is already installed in {}", sysroot.display())
                }
            }
            let runner = runner::install(&runner, &runner::bin_dir()?)?;
            eprintln!("installed {}", runner.display());
            Ok(())
        }
        Command::Uninstall { toolchain, prefix } => {
            let toolchain = Toolchain::resolve(&sh, toolchain.as_deref())?;
            let sysroot = prefix.unwrap_or_else(|| toolchain.sysroot.clone());
            if install::uninstall(&sysroot)? {
                eprintln!("removed {TARGET} from {}", sysroot.display());
            } else {
                eprintln!("{TARGET} is not installed in {}", sysroot.display());
            }
            runner::uninstall(&sysroot)
        }
        Command::Bench => bench::run(&sh),
    }
}
