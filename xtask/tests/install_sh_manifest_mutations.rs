//! install.sh's manifest reading (`flatten_json`, its JSON reader in awk) against a few
//! thousand mutated manifests, beside serde_json and the fuzzed Rust parser
//! (`xtask::dist::manifest::Manifest`), as install_sh_archive_mutations.rs does for unpacking.
//!
//! The mutations work on a pretty-printed manifest: bytes deleted or inserted (JSON
//! punctuation, escapes), lines duplicated, dropped or swapped (duplicate keys, missing
//! fields), values replaced, the text truncated; a fixed seed. For every case:
//! - `flatten_json` ends, and either prints `path<TAB>value` lines or fails with its `!error`;
//! - a document serde_json accepts, `flatten_json` accepts too, with the same paths, and the
//!   same value for every string, number and literal (so a valid manifest reads right);
//! - a manifest the Rust parser accepts, install.sh either refuses or reads exactly the same
//!   sysroot, runner and unpacker entries from.
//!
//! `INSTALL_SH_MUTATIONS=N` runs N cases instead of the default.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::time::Duration;

use support::{mutation_cases, run_cases_in_two_shells, Rng};
use testkit::TempDir;
use xtask::dist::manifest::Manifest;

const DEFAULT_CASES: usize = 3000;

/// A release manifest with two sysroots, the runner and the unpacker, as `cargo xtask dist`
/// writes them.
fn seed() -> String {
    let sysroot = |release: &str, commit: char, date: &str| {
        serde_json::json!({
            "release": release,
            "commit-hash": commit.to_string().repeat(40),
            "commit-date": date,
            "host": "x86_64-unknown-linux-gnu",
            "url": format!("rust-std-{release}-{}-x86_64-hyperlight-none.tar.gz", commit.to_string().repeat(9)),
            "sha256": "e".repeat(64),
            "size": 21228204,
            "installed-sha256": "f".repeat(64),
        })
    };
    let manifest = serde_json::json!({
        "manifest-version": "1",
        "date": "2026-05-19",
        "target": "x86_64-hyperlight-none",
        "component": "rust-std-x86_64-hyperlight-none",
        "sysroots": [
            sysroot("1.96.0-nightly", 'a', "2026-05-18"),
            sysroot("1.95.0", 'b', "2026-04-14"),
        ],
        "runner": {
            "version": "0.1.0",
            "host": "x86_64-unknown-linux-musl",
            "url": "hyperlight-run-0.1.0-x86_64-unknown-linux-musl.tar.gz",
            "sha256": "c".repeat(64),
            "size": 860073,
            "bin-sha256": "d".repeat(64),
        },
        "unpacker": {
            "version": "0.1.0",
            "host": "x86_64-unknown-linux-musl",
            "url": "hyperlight-unpack-0.1.0-x86_64-unknown-linux-musl",
            "sha256": "a".repeat(64),
            "size": 514232,
        },
    });
    serde_json::to_string_pretty(&manifest).unwrap() + "\n"
}

fn mutate(seed: &str, rng: &mut Rng) -> Vec<u8> {
    const INSERTS: &[&str] = &[
        "{", "}", "[", "]", ",", ":", "\"", "\\", " ", "\n", "\t", "0", "-", "e", ".", "\\\"",
        "\\\\", "\\/", "\\n", "\\t", "\\u00e9", "\\ud83d", "true", "null", "/",
    ];
    const VALUES: &[&str] = &[
        "null",
        "true",
        "false",
        "-0",
        "1e5",
        "1.5E-3",
        "[]",
        "{}",
        "\"\"",
        "\"../x\"",
        "\"a/b.tar.gz\"",
        "\"1\"",
        "\"2\"",
        "[1,[2,{\"k\":3}]]",
        "\"tab\\there\"",
    ];
    let mut lines: Vec<String> = seed.lines().map(str::to_owned).collect();
    for _ in 0..1 + rng.below(4) {
        let line = rng.below(lines.len());
        match rng.below(8) {
            0 => {
                let text = &mut lines[line];
                if !text.is_empty() {
                    let at = rng.below(text.len());
                    if text.is_char_boundary(at) {
                        text.remove(at);
                    }
                }
            }
            1 | 2 => {
                let text = &mut lines[line];
                let at = rng.below(text.len() + 1);
                if text.is_char_boundary(at) {
                    let insert = *rng.pick(INSERTS);
                    text.insert_str(at, insert);
                }
            }
            3 => {
                let copy = lines[line].clone();
                lines.insert(line, copy);
            }
            4 => {
                lines.remove(line);
            }
            5 => {
                let other = rng.below(lines.len());
                lines.swap(line, other);
            }
            6 => {
                if let Some(colon) = lines[line].find(": ") {
                    let comma = if lines[line].ends_with(',') { "," } else { "" };
                    let value = *rng.pick(VALUES);
                    lines[line] = format!("{}: {value}{comma}", &lines[line][..colon]);
                }
            }
            _ => {
                lines.truncate(line + 1);
                let text = &mut lines[line];
                let at = rng.below(text.len() + 1);
                if text.is_char_boundary(at) {
                    text.truncate(at);
                }
            }
        }
        if lines.is_empty() {
            lines.push(String::new());
        }
    }
    (lines.join("\n") + "\n").into_bytes()
}

/// serde_json's leaves as `flatten_json` names them: keys joined with `.`, array indices as
/// numbers. `None` when a key is not printable ASCII or holds a `.`, which the flat form
/// cannot tell apart.
fn leaves(
    value: &serde_json::Value,
    path: &str,
    out: &mut Vec<(String, serde_json::Value)>,
) -> Option<()> {
    let join = |key: &str| {
        if path.is_empty() {
            key.to_owned()
        } else {
            format!("{path}.{key}")
        }
    };
    match value {
        serde_json::Value::Object(map) => {
            for (key, value) in map {
                if !key
                    .chars()
                    .all(|c| c.is_ascii() && !c.is_ascii_control() && c != '.')
                {
                    return None;
                }
                leaves(value, &join(key), out)?;
            }
        }
        serde_json::Value::Array(items) => {
            for (index, value) in items.iter().enumerate() {
                leaves(value, &join(&index.to_string()), out)?;
            }
        }
        leaf => out.push((path.to_owned(), leaf.clone())),
    }
    Some(())
}

/// Whether any object of the JSON document repeats a key (serde_json's `Value` keeps the last
/// one silently; install.sh and the Rust parser refuse such a manifest).
fn has_duplicate_keys(input: &[u8]) -> bool {
    use serde::de::{Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    struct Unique;
    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
            deserializer.deserialize_any(UniqueVisitor)
        }
    }
    struct UniqueVisitor;
    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("JSON")
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut keys = std::collections::HashSet::new();
            while let Some(key) = map.next_key::<String>()? {
                if !keys.insert(key) {
                    return Err(serde::de::Error::custom("duplicate key"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }
    }
    serde_json::from_slice::<Unique>(input).is_err()
}

/// What `flatten_json` printed, as install.sh's `mget` reads it: the first value of each path.
fn first_values(flat: &str) -> BTreeMap<&str, &str> {
    let mut values = BTreeMap::new();
    for line in flat.lines() {
        let (path, value) = line.split_once('\t').expect("a path<TAB>value line");
        values.entry(path).or_insert(value);
    }
    values
}

/// Does the flat value `flat` say what serde_json read?
fn same_value(flat: &str, value: &serde_json::Value) -> bool {
    match value {
        serde_json::Value::String(text) => {
            // install.sh turns \n and \t into spaces and \u escapes into `?`.
            let plain = text.chars().all(|c| c.is_ascii() && !c.is_ascii_control());
            !plain || flat == text
        }
        serde_json::Value::Number(number) => flat.parse::<f64>().ok() == number.as_f64(),
        serde_json::Value::Bool(true) => flat == "true",
        serde_json::Value::Bool(false) => flat == "false",
        _ => flat == "null",
    }
}

/// What install.sh takes from a manifest the Rust parser accepted must be what Rust read.
fn same_entries(flat: &BTreeMap<&str, &str>, manifest: &Manifest) -> Result<(), String> {
    let mut expected = vec![(
        "manifest-version".to_owned(),
        manifest.manifest_version.clone(),
    )];
    for (i, sysroot) in manifest.sysroots.iter().enumerate() {
        expected.push((
            format!("sysroots.{i}.commit-hash"),
            sysroot.commit_hash.clone(),
        ));
        expected.push((format!("sysroots.{i}.url"), sysroot.url.clone()));
        expected.push((format!("sysroots.{i}.sha256"), sysroot.sha256.clone()));
        expected.push((format!("sysroots.{i}.size"), sysroot.size.to_string()));
    }
    if let Some(runner) = &manifest.runner {
        expected.push(("runner.url".into(), runner.url.clone()));
        expected.push(("runner.sha256".into(), runner.sha256.clone()));
        expected.push(("runner.size".into(), runner.size.to_string()));
    }
    if let Some(unpacker) = &manifest.unpacker {
        expected.push(("unpacker.url".into(), unpacker.url.clone()));
        expected.push(("unpacker.sha256".into(), unpacker.sha256.clone()));
        expected.push(("unpacker.size".into(), unpacker.size.to_string()));
    }
    for (path, value) in expected {
        let got = flat.get(path.as_str()).copied();
        if got != Some(value.as_str())
            && got.and_then(|g| g.parse::<f64>().ok()) != value.parse::<f64>().ok()
        {
            return Err(format!("{path}: install.sh reads {got:?}, Rust {value:?}"));
        }
    }
    Ok(())
}

#[test]
fn install_sh_reads_manifests_as_the_rust_parser_does() {
    let cases = mutation_cases("INSTALL_SH_MUTATIONS", DEFAULT_CASES);
    let dir = TempDir::new("manifest-mutations");
    let seed = seed();
    let mut rng = Rng(0x5851_f42d_4c95_7f2d);
    let inputs: Vec<Vec<u8>> = (0..cases).map(|_| mutate(&seed, &mut rng)).collect();
    for (case, input) in inputs.iter().enumerate() {
        fs::write(dir.path().join(format!("case-{case:06}.json")), input).unwrap();
    }

    let script = r#"
        for json in "$1"/case-*$2.json; do
            flatten_json "$json" >"$json.flat"
            echo $? >"$json.status"
        done
    "#;
    run_cases_in_two_shells(
        script,
        dir.path(),
        &[],
        Duration::from_secs(60 + cases as u64 / 10),
    );

    let (mut valid_json, mut rust_accepted) = (0, 0);
    for (case, input) in inputs.iter().enumerate() {
        let base = dir.path().join(format!("case-{case:06}.json"));
        let shown = String::from_utf8_lossy(input);
        let flat = fs::read_to_string(base.with_extension("json.flat")).unwrap();
        let status = fs::read_to_string(base.with_extension("json.status")).unwrap();
        match status.trim() {
            "0" => assert!(
                flat.lines()
                    .all(|line| line.contains('\t') && !line.starts_with('!')),
                "case {case}: malformed output {flat:?}\n{shown}"
            ),
            "1" => assert!(
                flat.lines()
                    .last()
                    .is_some_and(|line| line.starts_with("!error\t")),
                "case {case}: failed without saying why: {flat:?}\n{shown}"
            ),
            other => panic!("case {case}: flatten_json exited {other}\n{shown}"),
        }
        let accepted = status.trim() == "0";

        if let Ok(value) = serde_json::from_slice::<serde_json::Value>(input) {
            valid_json += 1;
            let mut expected = Vec::new();
            // `\u` escapes read as `?` in install.sh (no manifest needs them): skip those.
            let lossy = shown.contains("\\u");
            if leaves(&value, "", &mut expected).is_some() && !lossy && !has_duplicate_keys(input) {
                assert!(accepted, "case {case}: valid JSON refused: {flat}\n{shown}");
                let all = first_values(&flat);
                let paths: Vec<&str> = expected.iter().map(|(path, _)| path.as_str()).collect();
                assert_eq!(
                    all.keys().copied().collect::<Vec<_>>(),
                    {
                        let mut sorted = paths.clone();
                        sorted.sort();
                        sorted.dedup();
                        sorted
                    },
                    "case {case}: paths differ\n{shown}"
                );
                for (path, value) in &expected {
                    let flat = all[path.as_str()];
                    assert!(
                        same_value(flat, value),
                        "case {case}: {path} is {value} for serde_json, {flat:?} for install.sh\n{shown}"
                    );
                }
            }
        }
        if let Ok(manifest) = Manifest::parse(input, "manifest.json") {
            rust_accepted += 1;
            if accepted {
                if let Err(difference) = same_entries(&first_values(&flat), &manifest) {
                    panic!("case {case}: {difference}\n{shown}");
                }
            }
        }
    }
    // The mutations must keep a fair share of the cases valid, or the comparisons prove little.
    assert!(
        valid_json * 10 > cases && rust_accepted * 20 > cases,
        "{valid_json} valid JSON and {rust_accepted} valid manifests out of {cases}"
    );
}
