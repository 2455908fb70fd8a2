//! The `hyperlight-unpack` binary as install.sh runs it: exit codes, the error line, and a
//! refused archive leaving nothing behind.

use std::fs;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Output};

use testkit::TempDir;

/// A tar.gz of `pkg/bin/tool` (executable) plus, if given, one member of `kind` named `name`.
fn archive(extra: Option<(&str, tar::EntryType)>) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let mut file = tar::Header::new_gnu();
    file.set_size(3);
    file.set_mode(0o755);
    file.set_path("pkg/bin/tool").unwrap();
    file.set_cksum();
    builder.append(&file, &b"abc"[..]).unwrap();
    if let Some((name, kind)) = extra {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(kind);
        header.set_size(0);
        header.set_mode(0o644);
        header.set_path(name).unwrap();
        header.set_link_name("/etc/passwd").unwrap();
        header.set_cksum();
        builder.append(&header, &b""[..]).unwrap();
    }
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(&builder.into_inner().unwrap()).unwrap();
    gz.finish().unwrap()
}

fn unpack(args: &[&Path]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_hyperlight-unpack"))
        .args(args)
        .output()
        .unwrap()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn a_plain_archive_unpacks_silently() {
    let dir = TempDir::new("unpack-cli-plain");
    let tarball = dir.path().join("a.tar.gz");
    fs::write(&tarball, archive(None)).unwrap();
    let dest = dir.path().join("dest");
    let output = unpack(&[&tarball, &dest]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    assert!(output.stdout.is_empty() && output.stderr.is_empty());
    assert_eq!(fs::read(dest.join("pkg/bin/tool")).unwrap(), b"abc");
}

#[test]
fn a_hostile_archive_is_refused_with_exit_1_and_writes_nothing() {
    let dir = TempDir::new("unpack-cli-hostile");
    let tarball = dir.path().join("a.tar.gz");
    fs::write(
        &tarball,
        archive(Some(("pkg/link", tar::EntryType::Symlink))),
    )
    .unwrap();
    let dest = dir.path().join("dest");
    let output = unpack(&[&tarball, &dest]);
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        stderr(&output),
        "hyperlight-unpack: error: refusing archive member `pkg/link`: symbolic link\n"
    );
    assert!(!dest.exists(), "a refused archive must write nothing");

    fs::write(&tarball, b"not gzip").unwrap();
    let output = unpack(&[&tarball, &dest]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).starts_with("hyperlight-unpack: error: not a valid tar archive: "),
        "{}",
        stderr(&output)
    );
    assert!(!dest.exists());
}

#[test]
fn usage_errors_exit_2_and_a_full_destination_exits_3() {
    let dir = TempDir::new("unpack-cli-usage");
    let output = unpack(&[]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("usage: hyperlight-unpack ARCHIVE.tar.gz DEST"));

    let missing = dir.path().join("missing.tar.gz");
    let output = unpack(&[&missing, dir.path()]);
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).starts_with("hyperlight-unpack: error: cannot open "));

    let tarball = dir.path().join("a.tar.gz");
    fs::write(&tarball, archive(None)).unwrap();
    // `dir` already holds the tarball: DEST must be empty.
    let output = unpack(&[&tarball, dir.path()]);
    assert_eq!(output.status.code(), Some(3));
    assert!(
        stderr(&output).contains("is not empty"),
        "{}",
        stderr(&output)
    );
}
