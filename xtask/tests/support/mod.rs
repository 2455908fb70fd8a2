//! Helpers shared by the distribution tests: the dist fixture, a toolchain snapshot, and
//! running the release's install.sh (the one `cargo xtask dist` wrote, with the installer's
//! size and sha256 filled in) against a temporary toolchain.
//!
//! How the developer's toolchains stay untouched: the installer only ever runs against a
//! `testkit::TempToolchain` (a hard-linked copy in a temporary RUSTUP_HOME, selected with
//! RUSTUP_HOME/RUSTUP_TOOLCHAIN), with CARGO_HOME, CARGO_INSTALL_ROOT and TMPDIR in temporary
//! directories. The installer never writes into an existing file (it writes a new one and
//! renames it over), so a hard link to the real toolchain is replaced, never written through;
//! `snapshot` compares contents, so a write-through would show up as a change of the real file
//! too. The end-to-end test also checks the real toolchain's install records before and after.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use object::read::elf::{FileHeader, ProgramHeader};
use object::{Object, ObjectSymbol};
use std::sync::OnceLock;

use testkit::{assert_success, fixture_dir, project_root, TempDir, TempToolchain};

pub use testkit::nginx;

pub use testkit::COMPONENT;

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

/// The pinned toolchain's dist (every target's sysroot, runner, install.sh, manifest), made
/// once per test run.
pub fn stable_dist() -> &'static Path {
    static DIST: OnceLock<PathBuf> = OnceLock::new();
    DIST.get_or_init(|| {
        let dir = fixture_dir().join("dist-stable");
        fs::create_dir_all(fixture_dir()).unwrap();
        let lock = File::create(fixture_dir().join("dist-stable.lock")).unwrap();
        lock.lock().unwrap();
        let others = [testkit::std_sysroot(), testkit::aarch64_sysroot()]
            .map(|sysroot| ["--sysroot", sysroot.to_str().unwrap()]);
        let output = dist_into(&dir, others.as_flattened());
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

/// The key `cargo xtask dist` signs test releases with (no `--signing-key`): the development
/// key, which the dist's hyperlight-run trusts.
pub fn release_key() -> hyperlight_install::signature::SigningKey {
    hyperlight_install::signature::SigningKey::read(
        &project_root().join("target/dist-key/development.key"),
    )
    .unwrap()
}

/// Serves `manifest` in `served` as the release's own would be: with a matching `.sha256` and
/// signed by the release key, so that only what is inside it can make an installer refuse it.
pub fn replace_manifest(served: &Path, manifest: &[u8]) {
    replace_file(&served.join("manifest.json"), manifest);
    replace_file(
        &served.join("manifest.json.sha256"),
        format!("{}  manifest.json\n", sha256(manifest)).as_bytes(),
    );
    let sig = hyperlight_install::signature::sign(manifest, &release_key());
    replace_file(&served.join("manifest.json.sig"), sig.as_bytes());
}

/// The dist's installer binary, `hyperlight-run-<version>-x86_64-unknown-linux-musl`.
pub fn runner_file(dir: &Path) -> String {
    manifest(dir)["runner"]["url"].as_str().unwrap().to_owned()
}

/// The release's `hyperlight-run` (the stable dist's), as an executable file.
pub fn release_runner() -> &'static Path {
    static RUNNER: OnceLock<PathBuf> = OnceLock::new();
    RUNNER.get_or_init(|| {
        let bin = fixture_dir().join("release-runner/hyperlight-run");
        fs::create_dir_all(bin.parent().unwrap()).unwrap();
        // Renamed into place: another test process may be running the previous copy.
        let copy = bin.with_extension(std::process::id().to_string());
        fs::copy(stable_dist().join(runner_file(stable_dist())), &copy).unwrap();
        fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
        fs::rename(&copy, &bin).unwrap();
        bin
    })
}

/// `output`'s stderr has each of `said`.
pub fn assert_said(output: &Output, what: &str, said: &[String]) {
    let stderr = text(&output.stderr);
    for line in said {
        assert!(
            stderr.contains(line.as_str()),
            "{what}: no {line:?} in:\n{stderr}"
        );
    }
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
    /// the installer can tell (its component list names it).
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

    /// CARGO_INSTALL_ROOT: the runner goes to its `bin`.
    pub fn install_root(&self) -> PathBuf {
        self.dir.path().join("cargo")
    }

    /// CARGO_HOME: the installer records its settings there.
    pub fn cargo_home(&self) -> PathBuf {
        self.dir.path().join("cargo-home")
    }

    pub fn tmp(&self) -> PathBuf {
        self.dir.path().join("tmp")
    }

    pub fn runner(&self) -> PathBuf {
        self.install_root().join("bin/hyperlight-run")
    }

    /// This sandbox's environment, and none of the developer's installer settings.
    pub fn env<'a>(&self, command: &'a mut Command) -> &'a mut Command {
        command
            // `cargo test` puts the real toolchain's lib first: the temporary toolchain's rustc,
            // run directly, would load the real librustc_driver and report the real sysroot.
            .env_remove("LD_LIBRARY_PATH")
            .env("RUSTUP_HOME", self.toolchain.rustup_home())
            .env("RUSTUP_TOOLCHAIN", &self.toolchain.name)
            .env("CARGO_HOME", self.cargo_home())
            .env("CARGO_INSTALL_ROOT", self.install_root())
            .env("TMPDIR", self.tmp())
            .env_remove("RUSTC")
            .env_remove("HYPERLIGHT_DIST_SERVER")
            .env_remove("HYPERLIGHT_DOWNLOADER")
    }

    /// `sh install.sh ARGS...` with the install.sh of the stable dist (what a release serves).
    pub fn install_sh(&self, args: &[&str]) -> Command {
        let mut sh = Command::new("sh");
        self.env(&mut sh);
        sh.arg(stable_dist().join("install.sh")).args(args);
        sh
    }

    /// `curl -sSf URL | sh -s -- ARGS...`, as the README tells users to run it.
    pub fn curl_pipe_sh(&self, url: &str, args: &[&str]) -> Command {
        let mut sh = Command::new("sh");
        self.env(&mut sh);
        sh.args(["-c", "curl -sSf \"$0\" | sh -s -- \"$@\"", url])
            .args(args);
        sh
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.install_sh(args).output().unwrap()
    }

    /// `cargo ARGS` in `project` on this toolchain, with the installed runner first on PATH (the
    /// guest config's runner and rustc-wrapper) and the target directory `target_dir` here.
    pub fn cargo(&self, project: &Path, target_dir: &str, args: &[&str]) -> Output {
        let bin = self.install_root().join("bin");
        let path = format!("{}:{}", bin.display(), std::env::var("PATH").unwrap());
        let mut cargo = self.toolchain.command("cargo");
        self.env(&mut cargo);
        cargo
            .current_dir(project)
            .args(args)
            .env("CARGO_TARGET_DIR", self.dir.path().join(target_dir))
            .env("PATH", path)
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_BOOTSTRAP")
            .output()
            .unwrap()
    }

    /// The release's `hyperlight-run`, run directly with this sandbox's environment.
    pub fn hyperlight_run(&self, args: &[&str]) -> Command {
        let mut command = Command::new(release_runner());
        self.env(&mut command);
        command.args(args);
        command
    }

    /// Puts the release's runner where the installer puts it, so that install.sh runs it from
    /// there instead of downloading it.
    pub fn install_release_runner(&self) {
        fs::create_dir_all(self.install_root().join("bin")).unwrap();
        fs::copy(
            stable_dist().join(runner_file(stable_dist())),
            self.runner(),
        )
        .unwrap();
        fs::set_permissions(self.runner(), fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Puts a fake older install of the target into the toolchain, with its records, so that
    /// failure tests check that a previous install survives.
    pub fn fake_previous_install(&self) {
        let rustlib = self.rustlib();
        let target = rustlib.join(testkit::TARGET);
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

    /// What an install may touch, byte for byte, keyed `rustlib/...`, `install-root/...` and
    /// `cargo-home/...`: every file of `lib/rustlib` except the standard libraries of other
    /// targets (for those: size, mtime and inode), the runner's directory and CARGO_HOME.
    pub fn snapshot(&self) -> BTreeMap<PathBuf, String> {
        let mut state = BTreeMap::new();
        for (name, root) in [
            ("rustlib", self.rustlib()),
            ("install-root", self.install_root()),
            ("cargo-home", self.cargo_home()),
        ] {
            if root.exists() {
                walk(&root, &root, Path::new(name), &mut state);
            }
        }
        state
    }
}

fn walk(root: &Path, dir: &Path, prefix: &Path, state: &mut BTreeMap<PathBuf, String>) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let relative = path.strip_prefix(root).unwrap().to_path_buf();
        let meta = fs::symlink_metadata(&path).unwrap();
        if meta.is_dir() {
            state.insert(prefix.join(&relative), "dir".into());
            walk(root, &path, prefix, state);
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
                format!("{} {:?} {:o}", bytes.len(), sha256(&bytes), meta.mode())
            };
            state.insert(prefix.join(relative), value);
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

/// Asserts an install.sh failure: exit code, message fragments, the toolchain unchanged and
/// nothing left in TMPDIR.
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
    let after = sandbox.snapshot();
    let changed: Vec<&PathBuf> = before
        .keys()
        .chain(after.keys())
        .filter(|path| before.get(*path) != after.get(*path))
        .collect();
    assert!(
        changed.is_empty(),
        "the install failed, yet it changed {} files, first {:?}:\n{stderr}",
        changed.len(),
        &changed[..changed.len().min(10)]
    );
    let left: Vec<_> = fs::read_dir(sandbox.tmp()).unwrap().collect();
    assert!(left.is_empty(), "left in TMPDIR: {left:?}\n{stderr}");
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

/// The files of the target's directory in `sysroot`, as install records name them
/// (`lib/rustlib/x86_64-hyperlight-none/...`), sorted.
pub fn target_files(sysroot: &Path) -> Vec<String> {
    named_target_files(sysroot, testkit::TARGET)
}

/// [`target_files`] of the target `target`.
pub fn named_target_files(sysroot: &Path, target: &str) -> Vec<String> {
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
    walk(
        sysroot,
        &sysroot.join("lib/rustlib").join(target),
        &mut files,
    );
    files.sort();
    files
}

/// The files of the shared test sysroot's target directory; see [`target_files`].
pub fn sysroot_files() -> Vec<String> {
    target_files(testkit::sysroot())
}

/// Asserts that `sandbox`'s toolchain holds exactly the target of `sysroot`, recorded as
/// rust-installer records a component, and nothing an install works with (staged or previous
/// trees, write probes, temporary files).
pub fn assert_installed(sandbox: &Sandbox, sysroot: &Path) {
    let rustlib = sandbox.rustlib();
    let record = fs::read_to_string(rustlib.join(format!("manifest-{COMPONENT}"))).unwrap();
    let expected: String = target_files(sysroot)
        .iter()
        .map(|f| format!("file:{f}\n"))
        .collect();
    assert_eq!(record, expected, "manifest-{COMPONENT}");
    assert_eq!(
        target_files(&sandbox.toolchain.sysroot()),
        target_files(sysroot)
    );
    for file in target_files(sysroot) {
        assert!(
            fs::read(sandbox.toolchain.sysroot().join(&file)).unwrap()
                == fs::read(sysroot.join(&file)).unwrap(),
            "{file} differs from the release's"
        );
    }
    let components = fs::read_to_string(rustlib.join("components")).unwrap();
    assert_eq!(components.lines().filter(|c| *c == COMPONENT).count(), 1);
    let leftovers: Vec<String> = fs::read_dir(&rustlib)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with('.') || name.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "left behind: {leftovers:?}");
}

/// Checks that the ELF at `path` is an x86-64 static PIE entered at `entrypoint`; removes it.
pub fn check_static_pie_entry(path: &Path, architecture: object::Architecture) {
    let bytes = fs::read(path).unwrap();
    fs::remove_file(path).unwrap();
    let elf = object::read::elf::ElfFile64::<object::Endianness>::parse(&*bytes).unwrap();
    assert_eq!(elf.architecture(), architecture);
    assert_eq!(
        elf.kind(),
        object::ObjectKind::Dynamic,
        "a position-independent executable"
    );
    let header = elf.elf_header();
    let endian = elf.endian();
    let segments = elf.elf_program_headers();
    assert!(
        segments
            .iter()
            .all(|s| s.p_type(endian) != object::elf::PT_INTERP),
        "static: no interpreter"
    );
    let entry = elf
        .symbols()
        .find(|s| s.name() == Ok("entrypoint"))
        .expect("an `entrypoint` symbol");
    assert_eq!(
        header.e_entry(endian),
        entry.address(),
        "the entry address is `entrypoint`"
    );
}
