//! How the guest runtime reaches guest projects without naming a path of this machine.
//!
//! A project depends on the runtime crates through a registry of their own,
//! `hyperlight-rt = { version = "0.1", registry = "hyperlight" }`. Every install copies the
//! runtime crates the target ships (the directories of its `src/` but the sysroot crate) to
//! `$CARGO_HOME/hyperlight/src/<crate>-<version>` and adds three tables to
//! `$CARGO_HOME/config.toml`: the registry, named by an index URL that never resolves
//! (`.invalid`), and a source replacement taking that registry's crates from the copies (a
//! directory source). Unlike `[patch]`, these tables are inert in projects that do not use the
//! registry, and a guest project's `Cargo.lock` records only the URL. Uninstalling the last
//! target removes the tables and the copies.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, Item, Table, TableLike};

use crate::build::CRATE_DIR;
use crate::runner::cargo_home;
use crate::transaction::{copy_tree, remove_tree, trees_equal, write_atomically};

/// The registry name guest projects depend on the runtime crates by.
pub const REGISTRY: &str = "hyperlight";
/// Its index: `.invalid` never resolves, so nothing is ever fetched from it; it only names the
/// registry, in configs and lock files.
pub const INDEX: &str = "sparse+https://hyperlight.invalid/index/";
/// The source whose crates cargo replaces: the registry, named by its index.
pub const REGISTRY_SOURCE: &str = "hyperlight-registry";
/// The directory source holding the installed copies.
pub const INSTALLED_SOURCE: &str = "hyperlight-installed";

/// The directory source, below `$CARGO_HOME`. It must hold nothing but crate directories.
const SOURCES: &str = "hyperlight/src";
/// Where copies are staged before being renamed into `SOURCES`.
const STAGING: &str = "hyperlight/.staging";
/// A directory source's crates each need one. No checksums: the copies are local, made by the
/// installer, and cargo then records none in lock files either.
const CHECKSUM_FILE: &str = ".cargo-checksum.json";
const CHECKSUM: &str = "{\"files\":{},\"package\":null}\n";

/// The directory source of `cargo_home`.
pub fn sources_dir(cargo_home: &Path) -> PathBuf {
    cargo_home.join(SOURCES)
}

/// Registers the runtime crates of the installed target at `target_dir` in `$CARGO_HOME`;
/// returns the directories cargo now takes them from.
pub fn register(target_dir: &Path) -> Result<Vec<PathBuf>> {
    register_in(&cargo_home()?, target_dir)
}

/// Removes what `register` added to `$CARGO_HOME`.
pub fn unregister() -> Result<()> {
    unregister_in(&cargo_home()?)
}

/// `register` into the cargo home `cargo_home`, for installs into temporary ones.
pub fn register_in(cargo_home: &Path, target_dir: &Path) -> Result<Vec<PathBuf>> {
    let cargo_home = std::path::absolute(cargo_home)?;
    fs::create_dir_all(&cargo_home)
        .with_context(|| format!("creating {}", cargo_home.display()))?;
    let _lock = lock(&cargo_home)?;
    let sources = sources_dir(&cargo_home);
    let directory = sources.to_str().with_context(|| {
        let path = sources.display();
        format!("{path} is not UTF-8, which a cargo config cannot name")
    })?;
    fs::create_dir_all(&sources).with_context(|| format!("creating {}", sources.display()))?;
    let mut placed = Vec::new();
    for name in crates(target_dir)? {
        let from = target_dir.join("src").join(&name);
        let dir_name = format!("{name}-{}", version(&from)?);
        place_copy(
            &from,
            &cargo_home.join(STAGING).join(&dir_name),
            &sources.join(&dir_name),
        )?;
        placed.push(sources.join(dir_name));
    }
    let _ = fs::remove_dir(cargo_home.join(STAGING));
    // The last install wins: other versions (another toolchain's target) go.
    for entry in fs::read_dir(&sources)? {
        let path = entry?.path();
        if !placed.contains(&path) {
            remove_tree(&path)?;
        }
    }
    edit_config(&cargo_home, |doc| {
        set(doc, &["registries", REGISTRY], &[("index", INDEX)])?;
        let replace = [("registry", INDEX), ("replace-with", INSTALLED_SOURCE)];
        set(doc, &["source", REGISTRY_SOURCE], &replace)?;
        set(
            doc,
            &["source", INSTALLED_SOURCE],
            &[("directory", directory)],
        )
    })?;
    Ok(placed)
}

/// `unregister` from the cargo home `cargo_home`.
pub fn unregister_in(cargo_home: &Path) -> Result<()> {
    let cargo_home = std::path::absolute(cargo_home)?;
    if !cargo_home.is_dir() {
        return Ok(());
    }
    let _lock = lock(&cargo_home)?;
    let sources = sources_dir(&cargo_home);
    edit_config(&cargo_home, |doc| {
        // Only tables as `register` writes them: one the user changed is theirs now.
        for (keys, ours) in tables(&sources) {
            let parent = doc.get_mut(keys[0]).and_then(Item::as_table_like_mut);
            let Some(parent) = parent else { continue };
            if parent.get(keys[1]).is_some_and(|t| has(t, &ours)) {
                parent.remove(keys[1]);
            }
        }
        Ok(())
    })?;
    for dir in [cargo_home.join(SOURCES), cargo_home.join(STAGING)] {
        if dir.exists() {
            remove_tree(&dir)?;
        }
    }
    // Only if empty: nothing but this module puts anything there.
    let _ = fs::remove_dir(cargo_home.join(SOURCES).parent().unwrap());
    Ok(())
}

/// A table `register` writes: its keys (`<parent>.<name>`) and its entries.
type OurTable = ([&'static str; 2], Vec<(&'static str, String)>);

/// The tables `register` writes for the directory source `sources`.
fn tables(sources: &Path) -> [OurTable; 3] {
    [
        (["registries", REGISTRY], vec![("index", INDEX.into())]),
        (
            ["source", REGISTRY_SOURCE],
            vec![
                ("registry", INDEX.into()),
                ("replace-with", INSTALLED_SOURCE.into()),
            ],
        ),
        (
            ["source", INSTALLED_SOURCE],
            vec![("directory", sources.display().to_string())],
        ),
    ]
}

/// Whether `table` has each of `entries` (and maybe more).
fn has(table: &Item, entries: &[(&str, String)]) -> bool {
    entries
        .iter()
        .all(|(key, value)| table.get(key).and_then(Item::as_str) == Some(value.as_str()))
}

/// The runtime crates the installed target at `target_dir` ships: the directories of its
/// `src/`, except the crate the sysroot is built with.
pub fn crates(target_dir: &Path) -> Result<Vec<String>> {
    let src = target_dir.join("src");
    let entries = match fs::read_dir(&src) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).context(format!("reading {}", src.display())),
    };
    let sysroot_crate = Path::new(CRATE_DIR).file_name().unwrap();
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() && entry.file_name() != sysroot_crate {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// How `cargo_home` serves the runtime crates of the installed target at `target_dir`.
#[derive(Debug, PartialEq, Eq)]
pub struct Status {
    /// The config file.
    pub config: PathBuf,
    /// Each crate as `<name> <version>`, found in the directory source.
    pub served: Vec<String>,
    /// What keeps guest projects from resolving them, one item each; empty when nothing does.
    pub problems: Vec<String>,
}

/// Checks that `cargo_home`'s config has the three tables `register` writes and that their
/// directory source holds the runtime crates of the installed target at `target_dir`.
pub fn status(cargo_home: &Path, target_dir: &Path) -> Result<Status> {
    let config = config_path(cargo_home);
    let doc = read_config(&config)?.1;
    let mut problems = Vec::new();
    let mut directory = None;
    for ([parent, name], entries) in tables(&sources_dir(cargo_home)) {
        let header = format!("[{parent}.{name}]");
        let Some(table) = doc.get(parent).and_then(|p| p.get(name)) else {
            problems.push(format!("{header} is missing"));
            continue;
        };
        for (key, expected) in entries {
            let value = table.get(key).and_then(Item::as_str);
            if key == "directory" {
                // Any directory will do as long as it holds the crates.
                directory = value.map(PathBuf::from);
                if directory.is_none() {
                    problems.push(format!("{header} has no {key}"));
                }
            } else if value != Some(expected.as_str()) {
                problems.push(format!("{header} has no {key} = \"{expected}\""));
            }
        }
    }
    let mut served = Vec::new();
    let crates = crates(target_dir)?;
    if crates.is_empty() {
        problems.push(format!("the target in {} ships none", target_dir.display()));
    }
    if let Some(directory) = directory {
        for name in crates {
            let version = version(&target_dir.join("src").join(&name))?;
            let dir = directory.join(format!("{name}-{version}"));
            if dir.join("Cargo.toml").is_file() && dir.join(CHECKSUM_FILE).is_file() {
                served.push(format!("{name} {version}"));
            } else {
                problems.push(format!("{} has no {name}-{version}", directory.display()));
            }
        }
    }
    Ok(Status {
        config,
        served,
        problems,
    })
}

/// The cargo config file of `cargo_home`: cargo reads `config`, the old name, in preference to
/// `config.toml` when it exists.
pub fn config_path(cargo_home: &Path) -> PathBuf {
    let old = cargo_home.join("config");
    if old.is_file() {
        old
    } else {
        cargo_home.join("config.toml")
    }
}

/// Applies `edit` to the config, and writes the file only if that changed it. Top-level
/// tables the edit created or emptied go; a user's own empty ones stay.
fn edit_config(cargo_home: &Path, edit: impl FnOnce(&mut DocumentMut) -> Result<()>) -> Result<()> {
    let path = config_path(cargo_home);
    // Write through a link, as an editor would, rather than replace it.
    let path = fs::canonicalize(&path).unwrap_or(path);
    let (text, mut doc) = read_config(&path)?;
    let is_empty = |doc: &DocumentMut, key| {
        doc.get(key)
            .and_then(Item::as_table_like)
            .map(TableLike::is_empty)
    };
    let before = ["registries", "source"].map(|key| is_empty(&doc, key));
    edit(&mut doc)?;
    for (key, was_empty) in ["registries", "source"].into_iter().zip(before) {
        if is_empty(&doc, key) == Some(true) && was_empty != Some(true) {
            doc.remove(key);
        }
    }
    let edited = doc.to_string();
    if edited == text {
        return Ok(());
    }
    if edited.trim().is_empty() {
        return fs::remove_file(&path).with_context(|| format!("removing {}", path.display()));
    }
    let permissions = fs::metadata(&path).map(|m| m.permissions());
    write_atomically(&path, &edited)?;
    if let Ok(permissions) = permissions {
        fs::set_permissions(&path, permissions)?;
    }
    Ok(())
}

/// Sets `entries` in the table `doc.<keys[0]>.<keys[1]>`, creating it and its parent as needed
/// (the parent only as a header-less table); entries already so are left untouched.
fn set(doc: &mut DocumentMut, keys: &[&str; 2], entries: &[(&str, &str)]) -> Result<()> {
    let not_a_table = || format!("`{}` in the cargo config is not a table", keys.join("."));
    let parent = doc.entry(keys[0]).or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    let parent = parent.as_table_like_mut().with_context(not_a_table)?;
    let table = parent
        .entry(keys[1])
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .with_context(not_a_table)?;
    for (key, value) in entries {
        if table.get(key).and_then(Item::as_str) != Some(*value) {
            table.insert(key, toml_edit::value(*value));
        }
    }
    Ok(())
}

/// The config's text (empty when there is none) and its parsed document.
fn read_config(path: &Path) -> Result<(String, DocumentMut)> {
    let text = match fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == io::ErrorKind::NotFound => String::new(),
        Err(err) => return Err(err).context(format!("reading {}", path.display())),
    };
    let doc = text
        .parse()
        .with_context(|| format!("parsing {}", path.display()))?;
    Ok((text, doc))
}

/// The `package.version` of the crate in `dir`.
fn version(dir: &Path) -> Result<String> {
    let manifest = dir.join("Cargo.toml");
    let (_, doc) = read_config(&manifest)?;
    let version = doc.get("package").and_then(|p| p.get("version"));
    version
        .and_then(Item::as_str)
        .map(str::to_owned)
        .with_context(|| format!("{} has no package.version", manifest.display()))
}

/// Puts a copy of `from` with its checksum file at `to` unless `to` already is one. The copy
/// is made at `staged`, outside the directory source (which must hold only crates), and
/// renamed into place, so no build sees half of it.
fn place_copy(from: &Path, staged: &Path, to: &Path) -> Result<()> {
    let previous = staged.with_file_name(format!(
        "{}.old",
        staged.file_name().unwrap().to_string_lossy()
    ));
    for leftover in [staged, &previous] {
        if leftover.exists() {
            remove_tree(leftover)?;
        }
    }
    copy_tree(from, staged).with_context(|| format!("copying {}", from.display()))?;
    fs::write(staged.join(CHECKSUM_FILE), CHECKSUM)?;
    if trees_equal(staged, to)? {
        return remove_tree(staged);
    }
    if to.exists() {
        fs::rename(to, &previous)?;
    }
    fs::rename(staged, to).with_context(|| format!("renaming into {}", to.display()))?;
    if previous.exists() {
        remove_tree(&previous)?;
    }
    Ok(())
}

/// Serializes edits of one cargo home (installs into different toolchains share it) until
/// dropped. The lock is on the directory itself, so no lock file is left behind.
fn lock(cargo_home: &Path) -> Result<File> {
    let dir =
        File::open(cargo_home).with_context(|| format!("opening {}", cargo_home.display()))?;
    dir.lock()
        .with_context(|| format!("locking {}", cargo_home.display()))?;
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Target;
    use testkit::TempDir;

    /// An installed target's directory shipping two runtime crates, the runtime's at
    /// `version`, and the sysroot crate.
    fn target_dir(root: &Path, version: &str) -> PathBuf {
        let target = root.join(Target::None.name());
        for (name, version) in [
            ("hyperlight-rt", version),
            ("hyperlight-rt-macros", "0.1.0"),
            ("sysroot", "0.0.0"),
        ] {
            let dir = target.join("src").join(name);
            fs::create_dir_all(dir.join("src")).unwrap();
            let manifest = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n");
            fs::write(dir.join("Cargo.toml"), manifest).unwrap();
            fs::write(dir.join("src/lib.rs"), format!("// {name} {version}\n")).unwrap();
        }
        target
    }

    /// The tables `register` adds to a config.
    fn tables(home: &Path) -> String {
        format!(
            "[registries.hyperlight]\nindex = \"{INDEX}\"\n\n\
             [source.hyperlight-registry]\nregistry = \"{INDEX}\"\n\
             replace-with = \"hyperlight-installed\"\n\n\
             [source.hyperlight-installed]\ndirectory = \"{}\"\n",
            home.join(SOURCES).display()
        )
    }

    fn config(home: &Path) -> String {
        fs::read_to_string(home.join("config.toml")).unwrap()
    }

    fn listing(dir: &Path) -> Vec<PathBuf> {
        let mut paths: Vec<_> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        paths.sort();
        paths
    }

    #[test]
    fn register_creates_a_missing_config_and_copies_the_crates() {
        let temp = TempDir::new("runtime-missing");
        let home = temp.path().join("cargo-home");
        let target = target_dir(temp.path(), "0.1.0");
        let dirs = register_in(&home, &target).unwrap();
        let src = home.join(SOURCES);
        assert_eq!(
            dirs,
            [
                src.join("hyperlight-rt-0.1.0"),
                src.join("hyperlight-rt-macros-0.1.0")
            ]
        );
        assert_eq!(config(&home), tables(&home));
        for (dir, name) in dirs.iter().zip(["hyperlight-rt", "hyperlight-rt-macros"]) {
            assert_eq!(
                fs::read_to_string(dir.join(CHECKSUM_FILE)).unwrap(),
                CHECKSUM
            );
            fs::remove_file(dir.join(CHECKSUM_FILE)).unwrap();
            assert!(trees_equal(&target.join("src").join(name), dir).unwrap());
        }
        assert_eq!(
            listing(&src),
            dirs,
            "the directory source holds only crates"
        );
        assert_eq!(listing(&home.join("hyperlight")), [src]);
    }

    #[test]
    fn status_names_what_is_missing() {
        let temp = TempDir::new("runtime-status");
        let home = temp.path().join("cargo-home");
        let target = target_dir(temp.path(), "0.1.0");
        register_in(&home, &target).unwrap();
        let status = status(&home, &target).unwrap();
        assert_eq!(
            status,
            Status {
                config: home.join("config.toml"),
                served: vec![
                    "hyperlight-rt 0.1.0".into(),
                    "hyperlight-rt-macros 0.1.0".into()
                ],
                problems: vec![],
            }
        );

        let copy = home.join(SOURCES).join("hyperlight-rt-0.1.0");
        fs::remove_dir_all(&copy).unwrap();
        assert_eq!(
            super::status(&home, &target).unwrap().problems,
            [format!(
                "{} has no hyperlight-rt-0.1.0",
                home.join(SOURCES).display()
            )]
        );

        unregister_in(&home).unwrap();
        assert_eq!(
            super::status(&home, &target).unwrap().problems,
            [
                "[registries.hyperlight] is missing",
                "[source.hyperlight-registry] is missing",
                "[source.hyperlight-installed] is missing"
            ]
        );
    }

    /// A user's config, with sources and a registry of their own and comments in odd places.
    const USER_CONFIG: &str = "# my settings\n[build]\njobs = 2 # two\n\n\
        [registries.mine]\n# mine\nindex = \"sparse+https://example.com/index/\"\n\n\
        [source.vendored]\ndirectory = \"/src/vendor\"\n\n\
        [net]\nretry = 3\n";

    #[test]
    fn register_keeps_the_rest_of_a_config_and_is_idempotent_and_unregister_undoes_it() {
        let temp = TempDir::new("runtime-user");
        let home = temp.path().join("cargo-home");
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join("config.toml"), USER_CONFIG).unwrap();
        let target = target_dir(temp.path(), "0.1.0");

        register_in(&home, &target).unwrap();
        let registered = config(&home);
        // The user's lines stay as they were; the tables join their siblings.
        let tables = tables(&home);
        let (registry, sources) = tables.split_at(tables.find("[source.").unwrap());
        let expected = USER_CONFIG
            .replace(
                "\n[source.vendored]",
                &format!("\n{registry}[source.vendored]"),
            )
            .replace("\n[net]", &format!("\n{sources}\n[net]"));
        assert_eq!(registered, expected);

        let copy = home.join(SOURCES).join("hyperlight-rt-0.1.0/src/lib.rs");
        let modified = fs::metadata(&copy).unwrap().modified().unwrap();
        register_in(&home, &target).unwrap();
        assert_eq!(config(&home), registered);
        assert_eq!(fs::metadata(&copy).unwrap().modified().unwrap(), modified);

        unregister_in(&home).unwrap();
        assert_eq!(config(&home), USER_CONFIG);
        assert!(!home.join("hyperlight").exists());
    }

    #[test]
    fn a_new_version_replaces_the_old_one() {
        let temp = TempDir::new("runtime-upgrade");
        let home = temp.path().join("cargo-home");
        register_in(&home, &target_dir(&temp.path().join("old"), "0.1.0")).unwrap();
        register_in(&home, &target_dir(&temp.path().join("new"), "0.1.1")).unwrap();
        assert_eq!(config(&home), tables(&home));
        let src = home.join(SOURCES);
        assert_eq!(
            listing(&src),
            [
                src.join("hyperlight-rt-0.1.1"),
                src.join("hyperlight-rt-macros-0.1.0")
            ]
        );
        assert_eq!(
            fs::read_to_string(src.join("hyperlight-rt-0.1.1/src/lib.rs")).unwrap(),
            "// hyperlight-rt 0.1.1\n"
        );
    }

    #[test]
    fn unregister_removes_the_config_it_created_and_only_its_own_tables() {
        let temp = TempDir::new("runtime-unregister");
        let home = temp.path().join("cargo-home");
        register_in(&home, &target_dir(temp.path(), "0.1.0")).unwrap();
        unregister_in(&home).unwrap();
        assert!(!home.join("config.toml").exists());

        // A table of that name pointing elsewhere is the user's.
        let theirs = format!("[source.{INSTALLED_SOURCE}]\ndirectory = \"/src/mine\"\n");
        fs::write(home.join("config.toml"), &theirs).unwrap();
        unregister_in(&home).unwrap();
        assert_eq!(config(&home), theirs);
        // And a cargo home that never had anything is left alone.
        unregister_in(&temp.path().join("no-such-home")).unwrap();
        assert!(!temp.path().join("no-such-home").exists());
    }

    #[test]
    fn the_old_config_name_is_edited_when_cargo_reads_it() {
        let temp = TempDir::new("runtime-old-name");
        let home = temp.path().join("cargo-home");
        fs::create_dir_all(&home).unwrap();
        fs::write(home.join("config"), "[net]\nretry = 3\n").unwrap();
        register_in(&home, &target_dir(temp.path(), "0.1.0")).unwrap();
        assert_eq!(
            fs::read_to_string(home.join("config")).unwrap(),
            format!("[net]\nretry = 3\n\n{}", tables(&home))
        );
        assert!(!home.join("config.toml").exists());
    }

    /// `cargo` with `cargo_home`, offline, in `dir`.
    fn cargo(cargo_home: &Path, dir: &Path, args: &[&str]) -> std::process::Output {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        std::process::Command::new(cargo)
            .args(args)
            .current_dir(dir)
            .env("CARGO_HOME", cargo_home)
            .env("CARGO_NET_OFFLINE", "true")
            .env("CARGO_TARGET_DIR", dir.join("target"))
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_BUILD_TARGET")
            .output()
            .unwrap()
    }

    fn project(dir: &Path, dependencies: &str) {
        fs::create_dir_all(dir.join("src")).unwrap();
        let manifest = format!(
            "[package]\nname = \"p\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\n{dependencies}"
        );
        fs::write(dir.join("Cargo.toml"), manifest).unwrap();
        fs::write(dir.join("src/main.rs"), "fn main() {}\n").unwrap();
    }

    /// Unlike a `[patch]`, the tables are inert where the registry is not used: such a project
    /// builds `--locked` without a warning and its lock file stays as it was. One that uses it
    /// resolves it from the copies, and its lock file names only the index URL.
    #[test]
    fn other_projects_are_unaffected_and_users_resolve_the_copies() {
        let temp = TempDir::new("runtime-cargo");
        let home = temp.path().join("cargo-home");
        let other = temp.path().join("other");
        project(&other, "");
        let output = cargo(&home, &other, &["generate-lockfile"]);
        testkit::assert_success(&output, "cargo generate-lockfile");
        let lock = fs::read_to_string(other.join("Cargo.lock")).unwrap();

        register_in(&home, &target_dir(temp.path(), "0.1.0")).unwrap();
        let output = cargo(&home, &other, &["build", "--locked"]);
        testkit::assert_success(&output, "cargo build --locked");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("warning"), "{stderr}");
        assert_eq!(fs::read_to_string(other.join("Cargo.lock")).unwrap(), lock);

        let user = temp.path().join("user");
        project(
            &user,
            &format!("hyperlight-rt = {{ version = \"0.1\", registry = \"{REGISTRY}\" }}\n"),
        );
        let output = cargo(&home, &user, &["generate-lockfile"]);
        testkit::assert_success(&output, "cargo generate-lockfile (registry user)");
        let lock = fs::read_to_string(user.join("Cargo.lock")).unwrap();
        let entry = format!(
            "[[package]]\nname = \"hyperlight-rt\"\nversion = \"0.1.0\"\nsource = \"{INDEX}\"\n\n"
        );
        assert!(lock.contains(&entry), "{lock}");
    }
}
