//! Why the runner could not run a guest. Each message says what to change; the CLI prints it
//! after "hyperlight-run: error: " and exits with [`Error::exit_code`].

use std::path::PathBuf;

use crate::{exit_code, layout};

/// Why the runner could not run the guest: exit code 125, or 126 for an official guest.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Kvm(#[from] KvmError),
    /// The ELF file could not be read or was rejected.
    #[error("cannot load {}: {reason}", path.display())]
    Load { path: PathBuf, reason: LoadError },
    /// The guest does not fit the configured memory, or similar.
    #[error(transparent)]
    Setup(#[from] SetupError),
    #[error("writing the guest's output failed: {0}")]
    Output(std::io::Error),
    #[error(transparent)]
    Debugger(#[from] crate::gdb::DebugError),
    /// An official Hyperlight guest; `version` is its `.note.hyperlight-version`.
    #[error(
        "{} is an official Hyperlight guest (hyperlight-guest-bin {version}); it needs a \
         Hyperlight host, version {version} (hyperlight-host), and hyperlight-run does not boot it",
        path.display()
    )]
    OfficialGuest { path: PathBuf, version: String },
}

impl Error {
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::OfficialGuest { .. } => exit_code::OFFICIAL_GUEST,
            _ => exit_code::RUNNER_FAILED,
        }
    }
}

/// Why the guest file could not be loaded; completes "cannot load GUEST: ".
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Read(#[from] std::io::Error),
    #[error(transparent)]
    Elf(#[from] crate::elf::ElfError),
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
}

/// KVM is missing, refused us, or failed.
#[derive(Debug, thiserror::Error)]
pub enum KvmError {
    #[error("invalid KVM device path {}", .0.display())]
    InvalidPath(PathBuf),
    #[error(
        "{} does not exist: KVM is not available here; enable hardware virtualization (or \
         nested virtualization in a VM) and load the kvm module",
        .0.display()
    )]
    Missing(PathBuf),
    #[error(
        "permission denied opening {}: add your user to the `kvm` group \
         (`sudo usermod -aG kvm $USER`, then log in again)",
        .0.display()
    )]
    PermissionDenied(PathBuf),
    #[error("cannot open {}: {source}", device.display())]
    Open {
        device: PathBuf,
        source: kvm_ioctls::Error,
    },
    #[error("KVM API version {0} is not supported (need 12)")]
    ApiVersion(i32),
    #[error("KVM is too old: it lacks {0} (Linux 4.16 or newer is needed)")]
    MissingCapability(&'static str),
    #[error("{ioctl} failed: {source}")]
    Ioctl {
        ioctl: &'static str,
        source: kvm_ioctls::Error,
    },
}

/// The guest's memory could not be prepared, or the process not confined.
#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(
        "--memory must be between {} and {}",
        layout::human(crate::MIN_MEMORY),
        layout::human(crate::MAX_MEMORY)
    )]
    MemorySize,
    #[error("cannot reserve {} of guest memory: {source}", layout::human(*size))]
    ReserveMemory { size: u64, source: std::io::Error },
    #[error(transparent)]
    Layout(#[from] layout::LayoutError),
    #[error(
        "the guest's arguments and environment are too large (limit {} bytes)",
        crate::boot::ARGUMENTS_LIMIT
    )]
    ArgumentsTooLarge,
    #[error("seccomp: installing the filter failed: {0}")]
    Seccomp(seccompiler::Error),
}
