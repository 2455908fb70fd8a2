//! Helpers shared by the distribution tests: the dist fixture, a toolchain snapshot, and
//! running install.sh against a temporary toolchain.
//!
//! How the developer's toolchain stays untouched: install.sh only ever runs against a
//! `testkit::TempToolchain` (a hard-linked copy in a temporary RUSTUP_HOME, selected with
//! RUSTUP_HOME/RUSTUP_TOOLCHAIN), with CARGO_INSTALL_ROOT and TMPDIR in temporary directories.
//! install.sh never writes into an existing file (it writes a new one and renames it over), so
//! a hard link to the real toolchain is replaced, never written through; `snapshot` compares
//! contents, so a write-through would show up as a change of the real file too. The end-to-end
//! test also checks the real toolchain's install records before and after.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use testkit::{assert_success, fixture_dir, project_root, TempDir, TempToolchain};

#[path = "../../src/bench/nginx.rs"]
pub mod nginx;

pub const COMPONENT: &str = "rust-std-x86_64-hyperlight-none";

/// A fixed release date, so that two dist runs are comparable byte for byte.
pub const SOURCE_DATE_EPOCH: &str = "1779148800";

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn xtask() -> Command {
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"));
    xtask
        .current_dir(project_root())
        .env("SOURCE_DATE_EPOCH", SOURCE_DATE_EPOCH)
        .env_remove("GITHUB_TOKEN")
        .env_remove("GITHUB_API_URL");
    xtask
}

/// `cargo xtask dist` of the pinned toolchain's shared test sysroot into `out`.
pub fn dist_into(out: &Path, extra: &[&str]) -> Output {
    xtask()
        .arg("dist")
        .arg("--sysroot")
        .arg(testkit::sysroot())
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// The pinned toolchain's dist (sysroot, runner, install.sh, manifest), made once per test run.
pub fn stable_dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let dir = fixture_dir().join("dist-stable");
        fs::create_dir_all(fixture_dir()).unwrap();
        let lock = File::create(fixture_dir().join("dist-stable.lock")).unwrap();
        lock.lock().unwrap();
        let output = dist_into(&dir, &[]);
        assert_success(&output, "cargo xtask dist");
        dir
    })
}

pub fn manifest(dir: &Path) -> serde_json::Value {
    serde_json::from_slice(&fs::read(dir.join("manifest.json")).unwrap()).unwrap()
}

/// The URL of the first sysroot tarball in a dist directory.
pub fn sysroot_tarball(dir: &Path) -> String {
    manifest(dir)["sysroots"][0]["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A real nginx on 127.0.0.1, serving from a temporary directory (kept with it).
pub fn server() -> (TempDir, nginx::Nginx) {
    let dir = TempDir::new("nginx");
    let nginx = nginx::Nginx::start(dir.path()).unwrap();
    (dir, nginx)
}

/// Serves a copy of `dist` (hard links) at `<nginx>/<name>/`, returning its directory.
pub fn serve_copy(server: &nginx::Nginx, dist: &Path, name: &str) -> PathBuf {
    let dir = server.www().join(name);
    fs::create_dir_all(&dir).unwrap();
    for entry in fs::read_dir(dist).unwrap() {
        let path = entry.unwrap().path();
        fs::hard_link(&path, dir.join(path.file_name().unwrap())).unwrap();
    }
    dir
}

/// Replaces `path` by a new file (never writing through a hard link).
pub fn replace_file(path: &Path, contents: &[u8]) {
    let tmp = path.with_extension("replacing");
    fs::write(&tmp, contents).unwrap();
    fs::rename(&tmp, path).unwrap();
}

/// A temporary toolchain plus the directories an install uses besides it.
pub struct Sandbox {
    pub toolchain: TempToolchain,
    pub dir: TempDir,
}

impl Sandbox {
    pub fn new(real_toolchain: &str) -> Sandbox {
        let dir = TempDir::new("install-sh");
        fs::create_dir_all(dir.path().join("tmp")).unwrap();
        Sandbox {
            toolchain: TempToolchain::copy_of(real_toolchain, false),
            dir,
        }
    }

    /// A toolchain in the sandbox's RUSTUP_HOME that has the target installed, as far as
    /// install.sh can tell (its component list names it).
    pub fn add_other_toolchain_with_target(&self) -> PathBuf {
        let other = self.toolchain.rustup_home().join("toolchains/other");
        fs::create_dir_all(other.join("lib/rustlib")).unwrap();
        fs::write(
            other.join("lib/rustlib/components"),
            format!("{COMPONENT}\n"),
        )
        .unwrap();
        other
    }

    pub fn rustlib(&self) -> PathBuf {
        self.toolchain.sysroot().join("lib/rustlib")
    }

    pub fn install_root(&self) -> PathBuf {
        self.dir.path().join("cargo")
    }

    pub fn runner(&self) -> PathBuf {
        self.install_root().join("bin/hyperlight-run")
    }

    /// `sh install.sh ARGS...` for this sandbox's toolchain.
    pub fn install_sh(&self, args: &[&str]) -> Command {
        let mut sh = self.sh();
        sh.arg(project_root().join("install.sh")).args(args);
        sh
    }

    /// `sh` with this sandbox's environment, for install.sh read from stdin (`sh -s -- ...`).
    pub fn sh(&self) -> Command {
        let mut sh = Command::new("sh");
        sh.env("RUSTUP_HOME", self.toolchain.rustup_home())
            .env("RUSTUP_TOOLCHAIN", &self.toolchain.name)
            .env("CARGO_INSTALL_ROOT", self.install_root())
            .env("TMPDIR", self.dir.path().join("tmp"))
            .env_remove("RUSTC")
            .env_remove("HYPERLIGHT_DIST_SERVER")
            .env_remove("HYPERLIGHT_DOWNLOADER");
        sh
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.install_sh(args).output().unwrap()
    }

    /// Puts a fake older install of the target into the toolchain, with its records, so that
    /// failure tests check that a previous install survives.
    pub fn fake_previous_install(&self) {
        let rustlib = self.rustlib();
        let target = rustlib.join("x86_64-hyperlight-none");
        fs::create_dir_all(target.join("lib")).unwrap();
        fs::write(target.join("target.json"), "{\"old\": true}\n").unwrap();
        fs::write(target.join("lib/libcore-0000.rlib"), "old core\n").unwrap();
        replace_file(
            &rustlib.join(format!("manifest-{COMPONENT}")),
            b"file:lib/rustlib/x86_64-hyperlight-none/lib/libcore-0000.rlib\n\
              file:lib/rustlib/x86_64-hyperlight-none/target.json\n",
        );
        let mut components = fs::read_to_string(rustlib.join("components")).unwrap();
        components.push_str(COMPONENT);
        components.push('\n');
        replace_file(&rustlib.join("components"), components.as_bytes());
        fs::create_dir_all(self.install_root().join("bin")).unwrap();
        fs::write(self.runner(), "#!/bin/sh\necho old runner\n").unwrap();
    }

    /// What install.sh may touch, byte for byte: every file of `lib/rustlib` except the standard
    /// libraries of other targets (for those: size, mtime and inode), and the runner's directory.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut state = BTreeMap::new();
        walk(&self.rustlib(), &self.rustlib(), &mut state);
        if self.install_root().exists() {
            walk(&self.install_root(), &self.install_root(), &mut state);
        }
        state
    }
}

fn walk(root: &Path, dir: &Path, state: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            state.insert(relative, "dir".into());
            walk(root, &path, state);
        } else {
            let std_of_other_target = relative.components().next().is_some_and(|c| {
                c.as_os_str()
                    .to_string_lossy()
                    .starts_with("x86_64-unknown-")
            });
            let value = if std_of_other_target {
                format!("{} {} {}", meta.len(), meta.mtime(), meta.ino())
            } else {
                let bytes = fs::read(&path).unwrap();
                format!("{} {:?}", bytes.len(), sha256(&bytes))
            };
            state.insert(relative, value);
        }
    }
}

pub fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Asserts an install.sh failure: exit code, message fragments, and the toolchain unchanged.
pub fn assert_failure(
    output: &Output,
    code: i32,
    fragments: &[&str],
    sandbox: &Sandbox,
    before: &BTreeMap<PathBuf, String>,
) {
    let stderr = text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "exit code; stderr:\n{stderr}"
    );
    for fragment in fragments {
        assert!(
            stderr.contains(fragment),
            "stderr lacks {fragment:?}:\n{stderr}"
        );
    }
    assert!(
        sandbox.snapshot() == *before,
        "the toolchain changed although install.sh failed:\n{stderr}"
    );
}

/// Runs install.sh with `args` in a fresh sandbox of the pinned toolchain that holds a previous
/// install, and asserts the run fails as [`assert_failure`] describes. Returns the sandbox.
pub fn assert_install_fails(args: &[&str], code: i32, fragments: &[&str]) -> Sandbox {
    let sandbox = Sandbox::new(&testkit::pinned_toolchain());
    sandbox.fake_previous_install();
    let before = sandbox.snapshot();
    let output = sandbox.run(args);
    assert_failure(&output, code, fragments, &sandbox, &before);
    sandbox
}

/// The files of the shared test sysroot's target directory, as install records name them
/// (`lib/rustlib/x86_64-hyperlight-none/...`), sorted.
pub fn sysroot_files() -> Vec<String> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, out);
            } else {
                out.push(path.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    let mut files = Vec::new();
    let root = testkit::sysroot();
    walk(
        root,
        &root.join("lib/rustlib/x86_64-hyperlight-none"),
        &mut files,
    );
    files.sort();
    files
}

/// xorshift64*: deterministic, dependency-free randomness for the mutation tests.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// install.sh without its last line (`main "$@" || exit 1`), written into `dir`, so that a
/// shell can source it and call one of its functions alone.
fn install_sh_functions(dir: &Path) -> PathBuf {
    let script = fs::read_to_string(project_root().join("install.sh")).unwrap();
    let body = script
        .strip_suffix("main \"$@\" || exit 1\n")
        .expect("install.sh ends with `main \"$@\" || exit 1`");
    let path = dir.join("install-functions.sh");
    fs::write(&path, body).unwrap();
    path
}

/// The number of mutated cases a mutation test runs: `$VAR`, else `default`.
pub fn mutation_cases(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(default)
}

/// Runs `script` in two `sh` processes at once, with install.sh's functions sourced first:
/// `$1` is the directory of the cases and `$2` a glob matching the last digit of the case
/// names each shell takes (even or odd), then `args`. Fails the test if the shells do not
/// finish within `limit` (an endless loop in install.sh on some input) or one fails.
pub fn run_cases_in_two_shells(script: &str, cases_dir: &Path, args: &[&str], limit: Duration) {
    let functions = install_sh_functions(cases_dir);
    let script = format!(". '{}'\n{script}", functions.display());
    let mut shells: Vec<_> = ["[02468]", "[13579]"]
        .into_iter()
        .map(|digits| {
            Command::new("sh")
                .args(["-c", &script, "sh"])
                .arg(cases_dir)
                .arg(digits)
                .args(args)
                .spawn()
                .unwrap()
        })
        .collect();
    let deadline = Instant::now() + limit;
    for shell in &mut shells {
        loop {
            if let Some(status) = shell.try_wait().unwrap() {
                assert!(status.success(), "a case shell failed: {status}");
                break;
            }
            if Instant::now() > deadline {
                let _ = shell.kill();
                panic!("install.sh did not get through the cases in {limit:?}: one makes it loop");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}
