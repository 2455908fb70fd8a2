//! The project's automation: `cargo xtask <command>`; see `cargo xtask --help`.

mod bench;
mod sysroot;
mod toolchain;

use std::path::PathBuf;

use anyhow::Result;
use clap::{Parser, Subcommand};
use xshell::Shell;

use crate::toolchain::Toolchain;

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
        Command::Bench => bench::run(&sh),
    }
}
