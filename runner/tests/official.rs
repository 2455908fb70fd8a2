//! Official Hyperlight guests carry a `.note.hyperlight-version`; the runner refuses them with
//! exit code 126 and names the host version they need, instead of booting them.
//!
//! The guest here is the hello example with that note added (a crafted ELF, so the test needs
//! no official guest build); xtask/tests/sysroot.rs builds the real demo guest.

mod common;

use common::*;

const PHDR_SIZE: usize = 56;

/// `hello` with its PT_GNU_STACK header turned into a PT_NOTE pointing at a
/// "Hyperlight"/type 1 note appended to the file, as hyperlight-guest-bin emits it.
fn hello_with_version_note(version: &str) -> Vec<u8> {
    let mut bytes = std::fs::read(example("hello")).unwrap();
    let u16_at = |b: &[u8], at: usize| u16::from_le_bytes(b[at..at + 2].try_into().unwrap());
    let phoff = u64::from_le_bytes(bytes[32..40].try_into().unwrap()) as usize;
    let phnum = usize::from(u16_at(&bytes, 56));
    let header = (0..phnum)
        .map(|i| phoff + i * PHDR_SIZE)
        .find(|&at| u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) == 0x6474_e551)
        .expect("the hello guest has a PT_GNU_STACK header to repurpose");

    while !bytes.len().is_multiple_of(4) {
        bytes.push(0);
    }
    let offset = bytes.len() as u64;
    let mut desc = version.as_bytes().to_vec();
    desc.push(0);
    let mut note = Vec::new();
    note.extend_from_slice(&11u32.to_le_bytes()); // "Hyperlight\0"
    note.extend_from_slice(&(desc.len() as u32).to_le_bytes());
    note.extend_from_slice(&1u32.to_le_bytes());
    note.extend_from_slice(b"Hyperlight\0\0");
    note.extend_from_slice(&desc);
    while !note.len().is_multiple_of(4) {
        note.push(0);
    }
    bytes.extend_from_slice(&note);

    let put =
        |b: &mut Vec<u8>, at: usize, value: &[u8]| b[at..at + value.len()].copy_from_slice(value);
    put(&mut bytes, header, &4u32.to_le_bytes()); // PT_NOTE
    put(&mut bytes, header + 4, &4u32.to_le_bytes()); // PF_R
    put(&mut bytes, header + 8, &offset.to_le_bytes());
    put(&mut bytes, header + 16, &0u64.to_le_bytes());
    put(&mut bytes, header + 24, &0u64.to_le_bytes());
    put(&mut bytes, header + 32, &(note.len() as u64).to_le_bytes());
    put(&mut bytes, header + 40, &0u64.to_le_bytes());
    put(&mut bytes, header + 48, &4u64.to_le_bytes());
    bytes
}

#[test]
fn an_official_guest_is_refused_with_126_and_the_host_version_it_needs() {
    let dir = testkit::TempDir::new("official");
    let path = dir.path().join("official-guest");
    std::fs::write(&path, hello_with_version_note("0.18.0")).unwrap();

    let output = run([&path]);
    assert_eq!(code(&output), 126, "{}", stderr(&output));
    let line = assert_single_error_line(&output);
    assert!(
        line.contains("is an official Hyperlight guest")
            && line.contains("Hyperlight host, version 0.18.0"),
        "{line}"
    );
    assert!(stdout(&output).is_empty(), "the guest ran");
}

#[test]
fn exit_code_126_is_documented() {
    let output = run(["--help"]);
    assert!(
        stdout(&output).contains("126    an official Hyperlight guest"),
        "{}",
        stdout(&output)
    );
}
