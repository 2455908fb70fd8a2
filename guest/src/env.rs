//! Arguments and environment, as passed by the runner (`hyperlight-run ELF ARGS...` and
//! `-e KEY=VALUE`). The guest sees no host environment variable unless given with `-e`.

use core::fmt;

use crate::boot::{bytes, slices};
use crate::start::boot_info;

/// The arguments as raw bytes; the first is the program name.
pub fn args_os() -> impl ExactSizeIterator<Item = &'static [u8]> + Clone {
    let info = boot_info();
    slices(info.args, info.argc).iter().map(bytes)
}

/// The arguments as strings; the first is the program name.
///
/// # Panics
/// If an argument is not valid UTF-8, like `std::env::args` (use [`args_os`] then).
pub fn args() -> impl ExactSizeIterator<Item = &'static str> + Clone {
    args_os().map(|arg| core::str::from_utf8(arg).expect("argument is not valid UTF-8"))
}

/// The environment as raw `(key, value)` pairs.
pub fn vars_os() -> impl Iterator<Item = (&'static [u8], &'static [u8])> + Clone {
    let info = boot_info();
    slices(info.env, info.envc).iter().map(|slice| {
        let entry = bytes(slice);
        match entry.iter().position(|&b| b == b'=') {
            Some(eq) => (&entry[..eq], &entry[eq + 1..]),
            None => (entry, &entry[entry.len()..]),
        }
    })
}

/// Why [`var`] found no value, like `std::env::VarError`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum VarError {
    NotPresent,
    NotUnicode,
}

impl fmt::Display for VarError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VarError::NotPresent => f.write_str("environment variable not found"),
            VarError::NotUnicode => f.write_str("environment variable was not valid unicode"),
        }
    }
}

impl core::error::Error for VarError {}

/// The raw value of `key`; the last `-e` for a key wins.
pub fn var_os(key: &str) -> Option<&'static [u8]> {
    vars_os()
        .filter(|(name, _)| *name == key.as_bytes())
        .last()
        .map(|(_, value)| value)
}

/// The value of `key`, like `std::env::var`.
pub fn var(key: &str) -> Result<&'static str, VarError> {
    let value = var_os(key).ok_or(VarError::NotPresent)?;
    core::str::from_utf8(value).map_err(|_| VarError::NotUnicode)
}
