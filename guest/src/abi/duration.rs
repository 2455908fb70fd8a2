//! One syntax for every time limit: `500ms`, `10s`, `1.5s`, `2m`, `1h`, `250us`, `100ns`; a
//! bare number is seconds.
//!
//! A `const fn`, so that `#[hyperlight_rt::test(timeout = "...")]` is checked when the test
//! compiles, with the same rules as the runner's `--timeout`.

use core::time::Duration;

const NANOS_PER_SECOND: u128 = 1_000_000_000;
/// Fraction digits beyond nanoseconds of a second change nothing.
const MAX_FRACTION_DIGITS: u32 = 9;

/// The duration `text` names (surrounding whitespace ignored), or `None` if it names none or
/// one too long for [`Duration::from_nanos`].
pub const fn parse(text: &str) -> Option<Duration> {
    let bytes = text.trim_ascii().as_bytes();
    let mut at = 0;
    let mut whole: u128 = 0;
    let mut digits = 0;
    while at < bytes.len() && bytes[at].is_ascii_digit() {
        whole = whole * 10 + (bytes[at] - b'0') as u128;
        if whole > u64::MAX as u128 {
            return None;
        }
        at += 1;
        digits += 1;
    }
    let (mut fraction, mut fraction_digits): (u128, u32) = (0, 0);
    if at < bytes.len() && bytes[at] == b'.' {
        at += 1;
        while at < bytes.len() && bytes[at].is_ascii_digit() {
            if fraction_digits < MAX_FRACTION_DIGITS {
                fraction = fraction * 10 + (bytes[at] - b'0') as u128;
                fraction_digits += 1;
            }
            at += 1;
            digits += 1;
        }
    }
    if digits == 0 {
        return None;
    }
    let unit_nanos: u128 = match bytes.split_at(at).1 {
        b"" | b"s" => NANOS_PER_SECOND,
        b"ms" => 1_000_000,
        b"us" | b"\xc2\xb5s" => 1_000, // µs
        b"ns" => 1,
        b"m" | b"min" => 60 * NANOS_PER_SECOND,
        b"h" => 3600 * NANOS_PER_SECOND,
        _ => return None,
    };
    let nanos = whole * unit_nanos + fraction * unit_nanos / 10u128.pow(fraction_digits);
    if nanos > u64::MAX as u128 {
        return None;
    }
    Some(Duration::from_nanos(nanos as u64))
}
