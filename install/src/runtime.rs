//! How the guest runtime reaches guest projects without naming a path of this machine.
//!
//! A project depends on the runtime crates by their crates.io names (`hyperlight-rt = "0.1"`).
//! Every install copies the runtime crates the target ships (the directories of its `src/`)
//! to `$CARGO_HOME/hyperlight/src/<crate>-<version>` and points cargo at them with
//! `[patch.crates-io]` entries in `$CARGO_HOME/config.toml`. The copy outside the toolchain
//! keeps the entries valid whichever toolchain has the target; uninstalling the last target
//! removes both.

use std::fs::{self, File};
use std::io;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use toml_edit::{DocumentMut, InlineTable, Item, Table, TableLike};

use crate::runner::cargo_home;
use crate::transaction::{copy_tree, remove_tree, trees_equal, write_atomically};

/// Where the runtime crates are copied, below `$CARGO_HOME`.
const SOURCES: &str = "hyperlight/src";

/// A runtime crate and where cargo's `[patch.crates-io]` entry for it points (`None`: no entry).
#[derive(Debug, PartialEq, Eq)]
pub struct Patch {
    pub name: String,
    pub path: Option<PathBuf>,
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
    let sources = cargo_home.join(SOURCES);
    let mut placed = Vec::new();
    for name in crates(target_dir)? {
        let from = target_dir.join("src").join(&name);
        let dir = sources.join(format!("{name}-{}", version(&from)?));
        place_copy(&from, &dir)?;
        placed.push((name, dir));
    }
    let mut replaced = Vec::new();
    edit_config(&cargo_home, |patches| {
        for (name, dir) in &placed {
            let previous = patches.get(name).and_then(entry_path);
            if previous.as_deref() == Some(dir.as_path()) {
                continue;
            }
            let path = dir.to_str().with_context(|| {
                format!(
                    "{} is not UTF-8, which a cargo config cannot name",
                    dir.display()
                )
            })?;
            let mut entry = InlineTable::new();
            entry.insert("path", path.into());
            patches.insert(name, Item::Value(entry.into()));
            replaced.extend(previous.filter(|p| p.starts_with(&sources)));
        }
        Ok(())
    })?;
    // Other versions of the crates, no longer named by the config.
    for dir in replaced {
        if dir.exists() {
            remove_tree(&dir)?;
        }
    }
    Ok(placed.into_iter().map(|(_, dir)| dir).collect())
}

/// `unregister` from the cargo home `cargo_home`.
pub fn unregister_in(cargo_home: &Path) -> Result<()> {
    let cargo_home = std::path::absolute(cargo_home)?;
    if !cargo_home.is_dir() {
        return Ok(());
    }
    let _lock = lock(&cargo_home)?;
    let sources = cargo_home.join(SOURCES);
    edit_config(&cargo_home, |patches| {
        let ours: Vec<String> = patches
            .iter()
            .filter(|(_, entry)| entry_path(entry).is_some_and(|p| p.starts_with(&sources)))
            .map(|(name, _)| name.to_owned())
            .collect();
        for name in ours {
            patches.remove(&name);
        }
        Ok(())
    })?;
    if sources.exists() {
        remove_tree(&sources)?;
    }
    // Only if empty: nothing but this module puts anything there.
    let _ = fs::remove_dir(sources.parent().unwrap());
    Ok(())
}

/// The runtime crates the installed target at `target_dir` ships: the directories of its `src/`.
pub fn crates(target_dir: &Path) -> Result<Vec<String>> {
    let src = target_dir.join("src");
    let entries = match fs::read_dir(&src) {
        Ok(entries) => entries,
        Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err).context(format!("reading {}", src.display())),
    };
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            names.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    names.sort();
    Ok(names)
}

/// Where the `[patch.crates-io]` entries of `cargo_home`'s config point the runtime crates of
/// the installed target at `target_dir`.
pub fn patches(cargo_home: &Path, target_dir: &Path) -> Result<Vec<Patch>> {
    let path = config_path(cargo_home);
    let doc = read_config(&path)?.1;
    let patches = doc
        .get("patch")
        .and_then(|patch| patch.get("crates-io"))
        .and_then(Item::as_table_like);
    Ok(crates(target_dir)?
        .into_iter()
        .map(|name| Patch {
            path: patches.and_then(|p| p.get(&name)).and_then(entry_path),
            name,
        })
        .collect())
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

/// Applies `edit` to the config's `[patch.crates-io]` table, leaving everything else as it is,
/// and writes the file only if that changed it.
fn edit_config(
    cargo_home: &Path,
    edit: impl FnOnce(&mut dyn TableLike) -> Result<()>,
) -> Result<()> {
    let path = config_path(cargo_home);
    // Write through a link, as an editor would, rather than replace it.
    let path = fs::canonicalize(&path).unwrap_or(path);
    let (text, mut doc) = read_config(&path)?;
    let had_patch = doc.contains_key("patch");
    let patch = doc.entry("patch").or_insert_with(|| {
        let mut table = Table::new();
        table.set_implicit(true);
        Item::Table(table)
    });
    let not_a_table = || format!("`patch` in {} is not a table", path.display());
    let patch = patch.as_table_like_mut().with_context(not_a_table)?;
    let had_crates_io = patch.contains_key("crates-io");
    let crates_io = patch
        .entry("crates-io")
        .or_insert(Item::Table(Table::new()))
        .as_table_like_mut()
        .with_context(not_a_table)?;
    let had_entries = !crates_io.is_empty();
    edit(crates_io)?;
    // Tables this edit created or emptied go; a user's own empty ones stay.
    if crates_io.is_empty() && (had_entries || !had_crates_io) {
        patch.remove("crates-io");
    }
    if patch.is_empty() && !had_patch {
        doc.remove("patch");
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

/// The `path` of a `[patch.crates-io]` entry.
fn entry_path(entry: &Item) -> Option<PathBuf> {
    Some(PathBuf::from(entry.get("path")?.as_str()?))
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

/// Puts a copy of `from` at `to` unless `to` already is one. The copy is staged beside `to`
/// and renamed into place, so no build sees half of it.
fn place_copy(from: &Path, to: &Path) -> Result<()> {
    if trees_equal(from, to)? {
        return Ok(());
    }
    let name = to.file_name().unwrap().to_string_lossy();
    let staged = to.with_file_name(format!(".{name}.new"));
    let previous = to.with_file_name(format!(".{name}.old"));
    for leftover in [&staged, &previous] {
        if leftover.exists() {
            remove_tree(leftover)?;
        }
    }
    copy_tree(from, &staged).with_context(|| format!("copying {}", from.display()))?;
    if to.exists() {
        fs::rename(to, &previous)?;
    }
    fs::rename(&staged, to).with_context(|| format!("renaming into {}", to.display()))?;
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
    use testkit::TempDir;

    /// An installed target's directory shipping two runtime crates, the runtime's at `version`.
    fn target_dir(root: &Path, version: &str) -> PathBuf {
        let target = root.join("x86_64-hyperlight-none");
        for (name, version) in [
            ("hyperlight-rt", version),
            ("hyperlight-rt-macros", "0.1.0"),
        ] {
            let dir = target.join("src").join(name);
            fs::create_dir_all(dir.join("src")).unwrap();
            let manifest = format!("[package]\nname = \"{name}\"\nversion = \"{version}\"\n");
            fs::write(dir.join("Cargo.toml"), manifest).unwrap();
            fs::write(dir.join("src/lib.rs"), format!("// {name} {version}\n")).unwrap();
        }
        target
    }

    fn entries(home: &Path, version: &str) -> String {
        let src = home.join(SOURCES);
        format!(
            "hyperlight-rt = {{ path = \"{}/hyperlight-rt-{version}\" }}\n\
             hyperlight-rt-macros = {{ path = \"{}/hyperlight-rt-macros-0.1.0\" }}\n",
            src.display(),
            src.display()
        )
    }

    fn config(home: &Path) -> String {
        fs::read_to_string(home.join("config.toml")).unwrap()
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
        assert_eq!(
            config(&home),
            format!("[patch.crates-io]\n{}", entries(&home, "0.1.0"))
        );
        for (dir, name) in dirs.iter().zip(["hyperlight-rt", "hyperlight-rt-macros"]) {
            assert!(trees_equal(&target.join("src").join(name), dir).unwrap());
        }
        let mut left: Vec<_> = fs::read_dir(&src)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        left.sort();
        assert_eq!(left, dirs, "no staging directories are left behind");
        assert_eq!(
            patches(&home, &target).unwrap(),
            [
                Patch {
                    name: "hyperlight-rt".into(),
                    path: Some(dirs[0].clone())
                },
                Patch {
                    name: "hyperlight-rt-macros".into(),
                    path: Some(dirs[1].clone())
                }
            ]
        );
    }

    /// A user's config, with a patch of their own and comments in odd places.
    const USER_CONFIG: &str = "# my settings\n[build]\njobs = 2 # two\n\n\
        [patch.crates-io]\n# mine\nserde = { path = \"/src/serde\" }\n\n\
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
        let expected = USER_CONFIG.replace(
            "serde = { path = \"/src/serde\" }\n",
            &format!(
                "serde = {{ path = \"/src/serde\" }}\n{}",
                entries(&home, "0.1.0")
            ),
        );
        assert_eq!(registered, expected);

        register_in(&home, &target).unwrap();
        assert_eq!(config(&home), registered);

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
        assert_eq!(
            config(&home),
            format!("[patch.crates-io]\n{}", entries(&home, "0.1.1"))
        );
        let src = home.join(SOURCES);
        assert!(!src.join("hyperlight-rt-0.1.0").exists());
        assert_eq!(
            fs::read_to_string(src.join("hyperlight-rt-0.1.1/src/lib.rs")).unwrap(),
            "// hyperlight-rt 0.1.1\n"
        );
    }

    #[test]
    fn unregister_removes_the_config_it_created_and_only_its_own_entries() {
        let temp = TempDir::new("runtime-unregister");
        let home = temp.path().join("cargo-home");
        register_in(&home, &target_dir(temp.path(), "0.1.0")).unwrap();
        unregister_in(&home).unwrap();
        assert!(!home.join("config.toml").exists());

        // An entry of the user's for a runtime crate, pointing elsewhere, is theirs.
        let theirs = "[patch.crates-io]\nhyperlight-rt = { path = \"/src/guest\" }\n";
        fs::write(home.join("config.toml"), theirs).unwrap();
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
            format!(
                "[net]\nretry = 3\n\n[patch.crates-io]\n{}",
                entries(&home, "0.1.0")
            )
        );
        assert!(!home.join("config.toml").exists());
    }
}
