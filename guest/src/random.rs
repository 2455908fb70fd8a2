//! Randomness: the runner passes 32 bytes from the host's random source to every run.

/// 32 random bytes, different for every run; seed your own generator with them.
pub fn seed() -> [u8; 32] {
    crate::start::boot_info().random_seed
}
