//! Writes a deterministic byte pattern to stdout: 10 MiB, or the byte count given as the
//! first argument. Byte `i` is `(i ^ (i >> 8) ^ (i >> 16)) as u8`.
#![no_std]
#![no_main]

hyperlight_rt::main!(main);

const CHUNK: usize = 64 * 1024;
const DEFAULT_SIZE: u64 = 10 * 1024 * 1024;

fn main() -> Result<(), &'static str> {
    let size = match hyperlight_rt::env::args().nth(1) {
        Some(arg) => arg
            .parse::<u64>()
            .map_err(|_| "the argument must be a byte count")?,
        None => DEFAULT_SIZE,
    };
    // Within a 64 KiB chunk the pattern is `j ^ (j >> 8)` XOR the chunk number, so each chunk
    // is the base chunk XORed with one byte, done a word at a time.
    let mut base = [0u64; CHUNK / 8];
    for (word_index, word) in base.iter_mut().enumerate() {
        let mut bytes = [0u8; 8];
        for (k, byte) in bytes.iter_mut().enumerate() {
            let j = word_index * 8 + k;
            *byte = (j ^ (j >> 8)) as u8;
        }
        *word = u64::from_le_bytes(bytes);
    }
    let mut chunk = [0u64; CHUNK / 8];
    let mut written = 0u64;
    let mut chunk_number = 0u64;
    while written < size {
        let splat = (chunk_number & 0xff) * 0x0101_0101_0101_0101;
        for (out, word) in chunk.iter_mut().zip(base.iter()) {
            *out = word ^ splat;
        }
        // SAFETY: a u64 array is readable as bytes.
        let bytes = unsafe { core::slice::from_raw_parts(chunk.as_ptr().cast::<u8>(), CHUNK) };
        let n = (size - written).min(CHUNK as u64) as usize;
        hyperlight_rt::io::write_stdout(&bytes[..n]);
        written += n as u64;
        chunk_number += 1;
    }
    Ok(())
}
