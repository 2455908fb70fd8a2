//! Prebuilt C objects: `hyperlight-cc`, the C compiler the guest config names for official
//! guests' C library (hyperlight-libc's build script compiles picolibc with
//! `$HYPERLIGHT_GUEST_clang`), copies an object out of the installed target's `c-objects/`
//! when the compile is one recorded there, and runs clang for anything else.
//!
//! A recorded compile is keyed by its command line, as its build script passes it, with the
//! package's and the build's own directories (`CARGO_MANIFEST_DIR`, `OUT_DIR`, which differ
//! per machine and project) written as placeholders and the output file left out; the key
//! names `<key>.o`, the object, and `<key>.deps` (both in a directory per two first hex digits
//! of the key): every file the compile read (its source and
//! each header, from clang's depfile) with its sha256. A compile is served only when all those
//! files still hash the same and no header is shadowed by a file of the same name in an include
//! directory searched before one holding it; any mismatch, an option or environment
//! variable outside that scheme, or any error compiles it.
//!
//! `cargo xtask sysroot` records them by running the build script with `HYPERLIGHT_CC_RECORD`
//! naming the store: each compile then runs clang with a depfile and with those directories
//! mapped to fixed paths, so the objects carry no build-machine paths.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

/// The store's directory in an installed target directory.
pub const OBJECTS_DIR: &str = "c-objects";
/// The name `hyperlight-run` answers to as the C compiler (a link to it, installed beside it).
pub const FRONT: &str = "hyperlight-cc";
/// Set to a store directory, every compile is run and recorded there.
pub const RECORD_VAR: &str = "HYPERLIGHT_CC_RECORD";
/// The compiler run for every compile not served.
const CLANG: &str = "clang";
/// Bumped whenever the key's or the deps file's layout, or the way objects are recorded,
/// changes: recorded stores are kept by it (`cargo xtask sysroot`).
pub const KEY_VERSION: &str = "hyperlight-cc 2";
const MANIFEST_DIR: &str = "${CARGO_MANIFEST_DIR}";
const OUT_DIR: &str = "${OUT_DIR}";
/// Variables through which clang reads more than its command line says: with any of them set,
/// nothing is served.
const CLANG_INPUT_VARS: &[&str] = &[
    "CPATH",
    "C_INCLUDE_PATH",
    "CPLUS_INCLUDE_PATH",
    "OBJC_INCLUDE_PATH",
    "CCC_OVERRIDE_OPTIONS",
    "SOURCE_DATE_EPOCH",
];
/// The options naming an include directory in the next argument, in the order clang searches
/// them (-iquote for quoted includes only, -idirafter last; `-I<dir>` counts as `-I`).
const INCLUDE_OPTIONS: &[&str] = &["-I", "-iquote", "-isystem", "-idirafter"];

/// Runs as the C compiler: serves, records or compiles `args` (without argv\[0\]); returns the
/// exit code.
pub fn front(args: Vec<OsString>) -> i32 {
    let compile = Compile::parse(&args);
    if let Some(store) = std::env::var_os(RECORD_VAR) {
        let package = format!(
            "/{}-{}",
            std::env::var("CARGO_PKG_NAME").unwrap_or_default(),
            std::env::var("CARGO_PKG_VERSION").unwrap_or_default()
        );
        return match compile.map(|compile| compile.record(Path::new(&store), &package)) {
            Some(Ok(code)) => code,
            Some(Err(err)) => {
                eprintln!("{FRONT}: error: {err:#}");
                1
            }
            None => clang(&args),
        };
    }
    if let Some(compile) = compile {
        if store().is_some_and(|store| compile.serve(&store).unwrap_or(false)) {
            return 0;
        }
    }
    clang(&args)
}

/// Runs clang with `args`; its exit code.
fn clang(args: &[OsString]) -> i32 {
    match Command::new(CLANG).args(args).status() {
        Ok(status) => status.code().unwrap_or(1),
        Err(err) => {
            eprintln!("{FRONT}: error: cannot run {CLANG}: {err}");
            1
        }
    }
}

/// One compile of one source file into one object, by a build script.
#[derive(Debug)]
struct Compile {
    /// The arguments with the output file's path left out (`-o` stays).
    args: Vec<String>,
    output: PathBuf,
    cwd: PathBuf,
    manifest_dir: String,
    out_dir: String,
    /// Where clang looks for headers, in its order (see [`INCLUDE_OPTIONS`]).
    include_dirs: Vec<PathBuf>,
}

impl Compile {
    /// The compile `args` describe, if it can be served: cc-rs's `... -o OUT -c SOURCE` from a
    /// build script (so `CARGO_MANIFEST_DIR` and `OUT_DIR` are set), nothing clang reads from
    /// its environment, no output but the object.
    fn parse(args: &[OsString]) -> Option<Compile> {
        if CLANG_INPUT_VARS
            .iter()
            .any(|var| std::env::var_os(var).is_some())
        {
            return None;
        }
        Compile::new(
            args,
            std::env::var("CARGO_MANIFEST_DIR").ok()?,
            std::env::var("OUT_DIR").ok()?,
            std::env::current_dir().ok()?,
        )
    }

    /// [`Compile::parse`] given the build script's directories and working directory.
    fn new(
        args: &[OsString],
        manifest_dir: String,
        out_dir: String,
        cwd: PathBuf,
    ) -> Option<Compile> {
        let args: Vec<String> = args
            .iter()
            .map(|arg| arg.to_str().map(str::to_owned))
            .collect::<Option<_>>()?;
        let [.., o, output, c, _source] = args.as_slice() else {
            return None;
        };
        if o != "-o" || c != "-c" {
            return None;
        }
        let output = cwd.join(output);
        let mut include_dirs: Vec<(usize, PathBuf)> = Vec::new();
        let mut options = args[..args.len() - 4].iter();
        while let Some(arg) = options.next() {
            // Anything that writes a second file, or reads a file not in the depfile (a
            // response file), or is an option not seen in a plain compile, is not served.
            if arg.starts_with('@')
                || arg.starts_with("-M")
                || arg == "-o"
                || arg == "-c"
                || !arg.starts_with('-')
            {
                return None;
            }
            if let Some(rank) = INCLUDE_OPTIONS.iter().position(|option| option == arg) {
                include_dirs.push((rank, PathBuf::from(options.next()?)));
            } else if let Some(dir) = arg.strip_prefix("-I") {
                include_dirs.push((0, PathBuf::from(dir)));
            } else if arg.starts_with("-i") || arg == "-Xclang" {
                // -include, -imacros, -isysroot, ... and options passed to clang's front end.
                return None;
            }
        }
        // -iquote directories come first only for quoted includes; searching them first for
        // the shadowing check is the cautious order.
        include_dirs.sort_by_key(|(rank, _)| match rank {
            1 => 0,
            rank => rank + 1,
        });
        let mut args = args;
        let at = args.len() - 3;
        args.remove(at);
        // The working directory comes with symbolic links resolved, the build script's
        // directories as cargo names them (a cargo home may be reached through a link).
        let resolved = |dir: &str| fs::canonicalize(dir).ok();
        let cwd = [&manifest_dir, &out_dir]
            .into_iter()
            .find(|dir| resolved(dir).is_some_and(|dir| fs::canonicalize(&cwd).ok() == Some(dir)))
            .map_or(cwd, PathBuf::from);
        Some(Compile {
            args,
            output,
            cwd,
            manifest_dir,
            out_dir,
            include_dirs: include_dirs.into_iter().map(|(_, dir)| dir).collect(),
        })
    }

    /// The store key: the command line and working directory with the build's directories as
    /// placeholders.
    fn key(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(KEY_VERSION);
        hasher.update([0]);
        hasher.update(self.placeholders(&self.cwd.to_string_lossy()));
        for arg in &self.args {
            hasher.update([0]);
            hasher.update(self.placeholders(arg));
        }
        hex(&hasher.finalize())
    }

    /// `text` with this build's directories replaced by placeholders (the longer first, since
    /// one may hold the other).
    fn placeholders(&self, text: &str) -> String {
        let mut dirs = [
            (self.manifest_dir.as_str(), MANIFEST_DIR),
            (self.out_dir.as_str(), OUT_DIR),
        ];
        dirs.sort_by_key(|(dir, _)| std::cmp::Reverse(dir.len()));
        dirs.iter()
            .fold(text.to_owned(), |text, (dir, name)| text.replace(dir, name))
    }

    /// The path a recorded one names, in this build.
    fn expand(&self, recorded: &str) -> PathBuf {
        let path = recorded
            .replace(MANIFEST_DIR, &self.manifest_dir)
            .replace(OUT_DIR, &self.out_dir);
        self.cwd.join(path)
    }

    /// Copies the recorded object to the output if every file the recorded compile read is
    /// unchanged and unshadowed; whether it did.
    fn serve(&self, store: &Path) -> Result<bool> {
        let key = self.key();
        let Ok(deps) = fs::read_to_string(entry(store, &key, "deps")) else {
            return Ok(false);
        };
        // The source is named by its path, not found through the include directories.
        let source = self
            .cwd
            .join(self.args.last().context("a compile without a source")?);
        for line in deps.lines() {
            let (sha256, recorded) = line.split_once(' ').context("a malformed deps line")?;
            let path = self.expand(recorded);
            if file_sha256(&path)? != sha256 || (path != source && self.shadowed(&path)) {
                return Ok(false);
            }
        }
        let staged = self.output.with_extension("hyperlight-cc.tmp");
        fs::copy(entry(store, &key, "o"), &staged)?;
        fs::rename(&staged, &self.output)?;
        // What clang said counts too: cc-rs decides from its warnings whether a flag works.
        if let Ok(said) = fs::read(entry(store, &key, "stderr")) {
            std::io::stderr().write_all(&said)?;
        }
        Ok(true)
    }

    /// Whether an include directory searched before one holding `header` has a file of the
    /// name `header` has in that one (which a fresh compile might read instead). Include
    /// directories nest (picolibc's top directory holds the others), so every one holding it
    /// counts: the check errs towards compiling.
    fn shadowed(&self, header: &Path) -> bool {
        let dirs: Vec<PathBuf> = self.include_dirs.iter().map(|d| self.cwd.join(d)).collect();
        dirs.iter().enumerate().any(|(found, dir)| {
            header.strip_prefix(dir).is_ok_and(|name| {
                // A name may climb out of the directory (`"../ctype/ctype_.h"`, quoted and
                // found beside the including file), so it is the same file when both resolve
                // to one.
                dirs[..found].iter().any(|earlier| {
                    let candidate = earlier.join(name);
                    candidate.exists()
                        && fs::canonicalize(&candidate).ok() != fs::canonicalize(header).ok()
                })
            })
        })
    }

    /// The compile's arguments with its output, a depfile and the build's directories mapped
    /// to fixed paths.
    fn recording_args(&self, package: &str, depfile: &Path) -> Vec<OsString> {
        let mut args: Vec<OsString> = self.args.iter().map(OsString::from).collect();
        let at = args.len() - 2;
        args.insert(at, self.output.clone().into());
        // clang's assembler maps no prefixes: it records the source's name as given and the
        // working directory, so an assembler source goes in relative to a fixed directory.
        let source = Path::new(&self.args[self.args.len() - 1]);
        if source
            .extension()
            .is_some_and(|ext| ext == "S" || ext == "s")
        {
            if let Ok(relative) = source.strip_prefix(&self.cwd) {
                *args.last_mut().unwrap() = relative.into();
                args.push(format!("-fdebug-compilation-dir={package}").into());
            }
        }
        args.extend(
            [
                "-MD".to_owned(),
                "-MF".to_owned(),
                depfile.display().to_string(),
                format!("-ffile-prefix-map={}={package}", self.manifest_dir),
                format!("-ffile-prefix-map={}=/out", self.out_dir),
            ]
            .map(OsString::from),
        );
        args
    }

    /// Runs the compile with a depfile and the build's directories mapped to fixed paths (the
    /// package's to `package`), and stores its object, what it read and what clang said under its key; clang's exit code.
    fn record(&self, store: &Path, package: &str) -> Result<i32> {
        let depfile = self.output.with_extension("hyperlight-cc.d");
        let output = Command::new(CLANG)
            .args(self.recording_args(package, &depfile))
            .current_dir(&self.cwd)
            .output()
            .with_context(|| format!("running {CLANG}"))?;
        std::io::stderr().write_all(&output.stderr)?;
        let Some(0) = output.status.code() else {
            return Ok(output.status.code().unwrap_or(1));
        };
        let mut deps = String::new();
        let depfile_text = fs::read_to_string(&depfile)
            .with_context(|| format!("reading {}", depfile.display()))?;
        for dep in parse_depfile(&depfile_text)? {
            let path = self.cwd.join(&dep);
            let recorded = self.placeholders(&path.to_string_lossy());
            deps.push_str(&format!("{} {recorded}\n", file_sha256(&path)?));
        }
        fs::remove_file(&depfile)?;
        let key = self.key();
        let shard = entry(store, &key, "o");
        let shard = shard.parent().expect("an entry lies in its shard");
        fs::create_dir_all(shard).with_context(|| format!("creating {}", shard.display()))?;
        // Written whole and renamed: recordings of two profiles run side by side, and both
        // record the compiles they share (cc-rs's flag probes).
        write_entry(&entry(store, &key, "o"), &fs::read(&self.output)?)?;
        write_entry(&entry(store, &key, "deps"), deps.as_bytes())?;
        if !output.stderr.is_empty() {
            write_entry(&entry(store, &key, "stderr"), &output.stderr)?;
        }
        Ok(0)
    }
}

fn write_entry(path: &Path, contents: &[u8]) -> Result<()> {
    let staged = path.with_extension(format!("{}.new", std::process::id()));
    fs::write(&staged, contents).with_context(|| format!("writing {}", staged.display()))?;
    fs::rename(&staged, path).with_context(|| format!("renaming to {}", path.display()))
}

/// The prerequisites of a Make rule as clang writes one (`out.o: a.c b.h \` and so on, spaces in
/// names escaped with a backslash).
fn parse_depfile(text: &str) -> Result<Vec<String>> {
    let joined = text.replace("\\\n", " ");
    let (_, prerequisites) = joined
        .split_once(": ")
        .context("a depfile without a rule")?;
    let mut deps = Vec::new();
    let mut current = String::new();
    let mut chars = prerequisites.chars();
    while let Some(ch) = chars.next() {
        match ch {
            '\\' => current.extend(chars.next()),
            ch if ch.is_whitespace() => {
                if !current.is_empty() {
                    deps.push(std::mem::take(&mut current));
                }
            }
            ch => current.push(ch),
        }
    }
    if !current.is_empty() {
        deps.push(current);
    }
    Ok(deps)
}

/// The file of `key`'s `kind` (`o`, `deps`, `stderr`) in `store`: under a directory named by
/// the key's first two hex digits, as git and ccache keep theirs, so that no directory holds
/// thousands of entries (a precaution for filesystems that handle large directories poorly;
/// on this machine's ext4 the difference was lost in its noise).
fn entry(store: &Path, key: &str, kind: &str) -> PathBuf {
    let (shard, rest) = key.split_at(2);
    store.join(shard).join(format!("{rest}.{kind}"))
}

/// The store of the installed target a build script compiles for: `c-objects/` in the target
/// directory of the sysroot of cargo's `$RUSTC`. The sysroot is asked once per build script
/// run and kept in its `OUT_DIR`.
fn store() -> Option<PathBuf> {
    let target = std::env::var("TARGET").ok()?;
    let rustc = std::env::var_os("RUSTC")?;
    let cache = Path::new(&std::env::var_os("OUT_DIR")?).join(".hyperlight-cc-sysroot");
    let asked_of = format!("{}\n", rustc.to_string_lossy());
    let cached = fs::read_to_string(&cache)
        .ok()
        .and_then(|text| Some(text.strip_prefix(&asked_of)?.to_owned()));
    let sysroot = match cached {
        Some(sysroot) => sysroot,
        None => {
            let output = Command::new(&rustc)
                .args(["--print", "sysroot"])
                .output()
                .ok()?;
            if !output.status.success() {
                return None;
            }
            let sysroot = String::from_utf8(output.stdout).ok()?.trim().to_owned();
            let staged = cache.with_extension(format!("{}", std::process::id()));
            fs::write(&staged, format!("{asked_of}{sysroot}")).ok()?;
            fs::rename(&staged, &cache).ok()?;
            sysroot
        }
    };
    Some(
        Path::new(&sysroot)
            .join("lib/rustlib")
            .join(target)
            .join(OBJECTS_DIR),
    )
}

fn file_sha256(path: &Path) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = [0; 16384];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Whether a program started as `argv0` is the C compiler front.
pub fn is_front(argv0: &OsStr) -> bool {
    Path::new(argv0).file_name() == Some(OsStr::new(FRONT))
}

#[cfg(test)]
mod tests {
    use super::*;
    use testkit::TempDir;

    /// A package with a source, a header in its second include directory, nothing in the first,
    /// and the source's directory as the third, as a build on some machine sees it.
    struct Build {
        package: PathBuf,
        out: PathBuf,
    }

    impl Build {
        fn new(root: &Path, name: &str) -> Build {
            let package = root.join(name).join("pkg");
            let out = root.join(name).join("out");
            for dir in ["early", "inc", "src"] {
                fs::create_dir_all(package.join(dir)).unwrap();
            }
            fs::create_dir_all(&out).unwrap();
            fs::write(package.join("inc/a.h"), "#define ANSWER 42\n").unwrap();
            fs::write(
                package.join("src/x.c"),
                "#include <a.h>\nconst char *where(void) { return __FILE__; }\nint answer(void) { return ANSWER; }\n",
            )
            .unwrap();
            Build { package, out }
        }

        fn compile(&self, extra: &[&str]) -> Compile {
            let p = |rel: &str| self.package.join(rel).display().to_string();
            let includes = ["-I", &p("early"), "-I", &p("inc"), "-I", &p("src")];
            let mut args: Vec<OsString> = ["-O2", "-g"]
                .iter()
                .chain(&includes)
                .chain(extra)
                .map(OsString::from)
                .collect();
            let output = self.out.join("x.o").display().to_string();
            args.extend(["-o", &output, "-c", &p("src/x.c")].map(OsString::from));
            let dir = |path: &Path| path.display().to_string();
            let compile = Compile::new(
                &args,
                dir(&self.package),
                dir(&self.out),
                self.package.clone(),
            );
            compile.unwrap()
        }
    }

    /// An object recorded in one build is served to a build elsewhere whose source and headers
    /// are the same, and only then: a changed header, a header shadowing the recorded one and
    /// another flag each leave the compile to clang. The recorded object names no path of the
    /// build that made it, and recording in the other build gives the same bytes.
    #[test]
    fn served_only_when_command_source_and_headers_match() {
        if Command::new(CLANG).arg("--version").output().is_err() {
            testkit::skip(
                "c_objects::tests::served_only_when_command_source_and_headers_match",
                "clang is not installed",
            );
            return;
        }
        let root = TempDir::new("c-objects");
        let (here, there) = (
            Build::new(root.path(), "here"),
            Build::new(root.path(), "there"),
        );
        let store = root.path().join("store");
        assert_eq!(here.compile(&[]).record(&store, "/pkg-1.0").unwrap(), 0);
        let key = here.compile(&[]).key();
        let recorded: Vec<_> = fs::read_dir(store.join(&key[..2]))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        assert_eq!(recorded.len(), 2, "{recorded:?}");
        assert_eq!(fs::read_dir(&store).unwrap().count(), 1);
        let object = fs::read(entry(&store, &key, "o")).unwrap();
        let here_path = here.package.display().to_string();
        assert!(!object
            .windows(here_path.len())
            .any(|w| w == here_path.as_bytes()));
        let deps = fs::read_to_string(entry(&store, &key, "deps")).unwrap();
        assert!(deps.contains(" ${CARGO_MANIFEST_DIR}/src/x.c\n"), "{deps}");
        assert!(deps.contains(" ${CARGO_MANIFEST_DIR}/inc/a.h\n"), "{deps}");

        let served = there.out.join("x.o");
        assert_eq!(there.compile(&[]).key(), key);
        // cargo names the package through a link, the working directory is the real one.
        let link = root.path().join("link");
        std::os::unix::fs::symlink(root.path().join("there"), &link).unwrap();
        let through_link = Build {
            package: link.join("pkg"),
            out: there.out.clone(),
        };
        let mut linked = through_link.compile(&[]);
        linked = Compile::new(
            &linked_args(&linked),
            linked.manifest_dir.clone(),
            linked.out_dir.clone(),
            there.package.clone(),
        )
        .unwrap();
        assert_eq!(linked.key(), key);
        assert!(there.compile(&[]).serve(&store).unwrap());
        assert_eq!(fs::read(&served).unwrap(), object);
        let again = root.path().join("again");
        assert_eq!(there.compile(&[]).record(&again, "/pkg-1.0").unwrap(), 0);
        assert_eq!(fs::read(entry(&again, &key, "o")).unwrap(), object);

        fs::remove_file(&served).unwrap();
        fs::write(there.package.join("inc/a.h"), "#define ANSWER 43\n").unwrap();
        assert!(
            !there.compile(&[]).serve(&store).unwrap(),
            "a changed header"
        );
        fs::write(there.package.join("inc/a.h"), "#define ANSWER 42\n").unwrap();
        fs::write(there.package.join("early/a.h"), "#define ANSWER 43\n").unwrap();
        assert!(
            !there.compile(&[]).serve(&store).unwrap(),
            "a shadowing header"
        );
        fs::remove_file(there.package.join("early/a.h")).unwrap();
        // The same file reached through another directory is no shadow.
        std::os::unix::fs::symlink("../inc/a.h", there.package.join("early/a.h")).unwrap();
        assert!(there.compile(&[]).serve(&store).unwrap(), "the same header");
        fs::remove_file(there.package.join("early/a.h")).unwrap();
        // The source is passed by its path: a file of its name in an earlier include directory
        // (picolibc's libm/machine/aarch64/s_fma.c beside libm/common/s_fma.c) is no shadow.
        fs::write(there.package.join("early/x.c"), "int other;\n").unwrap();
        assert!(
            there.compile(&[]).serve(&store).unwrap(),
            "the source's name"
        );
        fs::remove_file(&served).unwrap();
        assert!(
            !there.compile(&["-DMORE"]).serve(&store).unwrap(),
            "another flag"
        );
        assert!(!served.exists());
        assert!(there.compile(&[]).serve(&store).unwrap());
    }

    /// The command line a compile was parsed from.
    fn linked_args(compile: &Compile) -> Vec<OsString> {
        let mut args: Vec<OsString> = compile.args.iter().map(OsString::from).collect();
        let at = args.len() - 2;
        args.insert(at, compile.output.clone().into());
        args
    }

    #[test]
    fn only_plain_compiles_of_one_source_are_served() {
        let parse = |args: &[&str]| {
            let args: Vec<OsString> = args.iter().map(OsString::from).collect();
            Compile::new(&args, "/p".into(), "/o".into(), "/p".into()).is_some()
        };
        assert!(parse(&[
            "-O2", "-I", "/p/inc", "-o", "/o/x.o", "-c", "/p/x.c"
        ]));
        assert!(!parse(&["-E", "/o/detect.c"]));
        assert!(!parse(&["--version"]));
        assert!(
            !parse(&["-MD", "-o", "/o/x.o", "-c", "/p/x.c"]),
            "a second output"
        );
        assert!(
            !parse(&["@/o/args", "-o", "/o/x.o", "-c", "/p/x.c"]),
            "a response file"
        );
        assert!(!parse(&[
            "-include", "/p/h.h", "-o", "/o/x.o", "-c", "/p/x.c"
        ]));
        assert!(
            !parse(&["/p/y.c", "-o", "/o/x.o", "-c", "/p/x.c"]),
            "two sources"
        );
    }

    #[test]
    fn depfile_prerequisites_with_continuations_and_escaped_spaces() {
        let text = "/o/x.o: /p/a.c /p/inc/b.h \\\n  /p/my\\ dir/c.h\n";
        assert_eq!(
            parse_depfile(text).unwrap(),
            ["/p/a.c", "/p/inc/b.h", "/p/my dir/c.h"]
        );
    }
}
