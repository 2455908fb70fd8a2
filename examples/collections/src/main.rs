//! Uses Vec, String, BTreeMap and format! heavily and prints a checksum.
#![no_std]
#![no_main]

use hyperlight_rt::alloc::collections::BTreeMap;
use hyperlight_rt::alloc::format;
use hyperlight_rt::alloc::string::String;
use hyperlight_rt::alloc::vec::Vec;
use hyperlight_rt::println;

hyperlight_rt::main!(main);

/// FNV-1a, 64-bit.
fn fnv1a(hash: u64, bytes: &[u8]) -> u64 {
    bytes.iter().fold(hash, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

fn main() {
    // Word counts of generated "words" in a BTreeMap.
    let mut counts: BTreeMap<String, u32> = BTreeMap::new();
    for i in 0..20_000u32 {
        let word = format!("w{}", (i * 7919) % 1000);
        *counts.entry(word).or_insert(0) += 1;
    }
    // A Vec of Strings, sorted and joined.
    let mut lines: Vec<String> = counts
        .iter()
        .map(|(word, count)| format!("{word}:{count}"))
        .collect();
    lines.sort();
    let joined = lines.join(",");
    // Many small vectors grown and dropped, to exercise reuse of freed blocks.
    let mut total: u64 = 0;
    for n in 0..2_000u64 {
        let squares: Vec<u64> = (0..n % 100).map(|x| x * x).collect();
        total = total.wrapping_add(squares.iter().sum::<u64>());
    }
    let checksum = fnv1a(
        fnv1a(0xcbf2_9ce4_8422_2325, joined.as_bytes()),
        &total.to_le_bytes(),
    );
    println!("words: {}", counts.len());
    println!("bytes: {}", joined.len());
    println!("sum of squares: {total}");
    println!("checksum: {checksum:016x}");
}
