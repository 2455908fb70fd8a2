//! Where guest output goes.

use std::fs::File;
use std::io::{self, Write};
use std::mem::ManuallyDrop;
use std::os::fd::FromRawFd;

/// A guest output stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives the guest's output, complete and in order.
pub trait Output {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()>;
}

/// The runner's own stdout and stderr, written unbuffered with `write_all` on the raw file
/// descriptors, so output is binary-safe and nothing is held back at exit.
pub struct HostStdio {
    stdout: ManuallyDrop<File>,
    stderr: ManuallyDrop<File>,
}

impl HostStdio {
    pub fn new() -> HostStdio {
        // SAFETY: fds 1 and 2 belong to the process for its whole life; ManuallyDrop keeps
        // them open when this is dropped.
        unsafe {
            HostStdio {
                stdout: ManuallyDrop::new(File::from_raw_fd(1)),
                stderr: ManuallyDrop::new(File::from_raw_fd(2)),
            }
        }
    }
}

impl Default for HostStdio {
    fn default() -> Self {
        HostStdio::new()
    }
}

impl Output for HostStdio {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.write_all(bytes),
            Stream::Stderr => self.stderr.write_all(bytes),
        }
    }
}

/// Collects output in memory (tests, benchmarks).
#[derive(Default)]
pub struct Captured {
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output for Captured {
    fn write(&mut self, stream: Stream, bytes: &[u8]) -> io::Result<()> {
        match stream {
            Stream::Stdout => self.stdout.extend_from_slice(bytes),
            Stream::Stderr => self.stderr.extend_from_slice(bytes),
        }
        Ok(())
    }
}

/// Discards output.
pub struct Discard;

impl Output for Discard {
    fn write(&mut self, _: Stream, _: &[u8]) -> io::Result<()> {
        Ok(())
    }
}
