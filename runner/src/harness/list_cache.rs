//! A test binary's list, kept beside the binary: cargo-nextest starts the runner once per test,
//! and each would otherwise boot the binary twice, once only to learn its tests' attributes.
//! An entry names the file it was read from (device, inode, size, modification time), so a
//! rebuilt binary is listed afresh; one that cannot be written is simply not kept.

use std::fs;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use crate::GuestFile;

pub struct ListCache {
    path: PathBuf,
    identity: String,
}

impl ListCache {
    /// The entry for what `guest` prints when booted with `args`.
    pub fn new(guest: &GuestFile, args: &[&str]) -> Option<ListCache> {
        let meta = guest.metadata();
        let identity = format!(
            "{} {} {} {}.{:09}",
            meta.dev(),
            meta.ino(),
            meta.len(),
            meta.mtime(),
            meta.mtime_nsec()
        );
        let mut hasher = DefaultHasher::new();
        args.hash(&mut hasher);
        let elf = guest.path();
        let name = elf.file_name()?.to_str()?;
        let path = elf.with_file_name(format!(".{name}.{:016x}.hyperlight-list", hasher.finish()));
        Some(ListCache { path, identity })
    }

    /// The list kept for this very file, if any.
    pub fn read(&self) -> Option<String> {
        let text = fs::read_to_string(&self.path).ok()?;
        let (identity, list) = text.split_once('\n')?;
        (identity == self.identity).then(|| list.to_owned())
    }

    /// Keeps `list`, replacing the entry at once so that a reader never sees half of one.
    pub fn write(&self, list: &str) {
        let staged = self
            .path
            .with_extension(format!("{}.tmp", std::process::id()));
        let written = fs::write(&staged, format!("{}\n{list}", self.identity))
            .and_then(|()| fs::rename(&staged, &self.path));
        if written.is_err() {
            let _ = fs::remove_file(&staged);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_serves_only_the_file_and_arguments_it_was_made_for() {
        let dir = std::env::temp_dir().join(format!("list-cache-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let elf = dir.join("tests-0123");
        fs::write(&elf, b"first build").unwrap();
        let new = |args: &[&str]| ListCache::new(&GuestFile::open(&elf).unwrap(), args).unwrap();
        let cache = new(&["--list"]);
        assert_eq!(cache.read(), None);
        cache.write("a: test\nb: test\n");
        assert_eq!(
            new(&["--list"]).read().as_deref(),
            Some("a: test\nb: test\n")
        );
        assert_eq!(new(&["--list", "--ignored"]).read(), None);
        // A rebuilt binary (a new file in its place) is listed afresh.
        fs::remove_file(&elf).unwrap();
        fs::write(&elf, b"second build, longer").unwrap();
        assert_eq!(new(&["--list"]).read(), None);
        fs::remove_dir_all(&dir).unwrap();
    }
}
