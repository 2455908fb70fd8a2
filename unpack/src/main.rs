//! `hyperlight-unpack ARCHIVE.tar.gz DEST`: what install.sh runs to unpack a release archive.
//!
//! Exit codes: 0 unpacked; 1 the archive is refused (unsafe member, not a valid tar.gz, too
//! large), and nothing was written; 2 bad usage; 3 writing DEST failed.

use std::fs::File;
use std::path::Path;
use std::process::ExitCode;

use hyperlight_unpack::{unpack_tar_gz, Limits, UnpackError};

const USAGE: &str = "usage: hyperlight-unpack ARCHIVE.tar.gz DEST (DEST must be empty or missing)";

fn main() -> ExitCode {
    let args: Vec<_> = std::env::args_os().skip(1).collect();
    let [archive, dest] = args.as_slice() else {
        eprintln!("hyperlight-unpack: error: expected 2 arguments\n{USAGE}");
        return ExitCode::from(2);
    };
    let (archive, dest) = (Path::new(archive), Path::new(dest));
    let file = match File::open(archive) {
        Ok(file) => file,
        Err(err) => {
            eprintln!(
                "hyperlight-unpack: error: cannot open {}: {err}",
                archive.display()
            );
            return ExitCode::from(2);
        }
    };
    match unpack_tar_gz(std::io::BufReader::new(file), dest, Limits::default()) {
        Ok(_) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("hyperlight-unpack: error: {err}");
            ExitCode::from(match err {
                UnpackError::Io(_) => 3,
                _ => 1,
            })
        }
    }
}
