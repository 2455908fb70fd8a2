//! The parts of xtask that read untrusted input, as a library so `fuzz/` can drive them: the
//! release manifest parser and tarball unpacking. The `cargo xtask` binary keeps its own module
//! tree; these files are compiled into both.

pub mod toolchain;

pub mod dist {
    pub mod error;
    pub mod manifest;
}

pub mod unpack;
