//! The part of xtask that reads untrusted input, as a library so `fuzz/` can drive it: the
//! release manifest parser. The `cargo xtask` binary keeps its own module
//! tree; these files are compiled into both.

pub mod toolchain;

pub mod dist {
    pub mod error;
    pub mod manifest;
}
