//! Reading the guest ELF. Booting needs only the headers and the bytes the program headers
//! describe, which sit at the front of the file; a debug build's symbols and DWARF follow
//! them and are read only to explain a crash. Reading those few bytes with `pread` costs a
//! fraction of mapping the file, faulting its pages in and unmapping it again.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::{elf, Error};

/// The first read: the headers, and for a small guest everything it loads.
const FIRST_READ: u64 = 16 << 10;

/// A guest ELF, opened once per process: its front is what every boot of it reads.
pub struct GuestFile {
    path: PathBuf,
    file: File,
    metadata: Metadata,
    front: Vec<u8>,
}

impl GuestFile {
    pub fn open(path: &Path) -> Result<GuestFile, Error> {
        let read = || {
            let file = File::open(path)?;
            let metadata = file.metadata()?;
            let front = read_front(metadata.len(), |buffer, offset| {
                file.read_exact_at(buffer, offset)
            })?;
            io::Result::Ok((file, metadata, front))
        };
        let (file, metadata, front) = read().map_err(|err| Error::Load {
            path: path.to_path_buf(),
            reason: err.into(),
        })?;
        Ok(GuestFile {
            path: path.to_path_buf(),
            file,
            metadata,
            front,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's metadata as it was opened.
    pub fn metadata(&self) -> &Metadata {
        &self.metadata
    }

    /// The headers and everything the program headers describe (or the whole file, if they
    /// point past its end).
    pub fn front(&self) -> &[u8] {
        &self.front
    }

    /// The whole file, for unwinding through a crashed guest's stack.
    pub fn everything(&self) -> io::Result<Vec<u8>> {
        let mut bytes = self.front.clone();
        let start = bytes.len();
        bytes.resize(self.metadata.len() as usize, 0);
        self.file.read_exact_at(&mut bytes[start..], start as u64)?;
        Ok(bytes)
    }
}

/// The front of a file of `len` bytes, read with `read_at(buffer, offset)`: the first
/// [`FIRST_READ`] bytes, extended as far as [`elf::bytes_needed`] asks.
pub fn read_front(
    len: u64,
    mut read_at: impl FnMut(&mut [u8], u64) -> io::Result<()>,
) -> io::Result<Vec<u8>> {
    let mut front = Vec::new();
    let mut wanted = len.min(FIRST_READ);
    // Each read reaches further, so this ends: at the latest with the third read, as the first
    // may end inside the program headers, and the second then has all of them.
    while wanted > front.len() as u64 {
        let start = front.len();
        // `wanted` never exceeds the file's length, so this allocates only what the file holds,
        // whatever its headers claim.
        front.resize(wanted as usize, 0);
        read_at(&mut front[start..], start as u64)?;
        wanted = elf::bytes_needed(&front).min(len);
    }
    Ok(front)
}
