//! Shared fixtures for the integration tests: one x86_64-hyperlight-none sysroot per test run,
//! built with the real `cargo xtask sysroot` and shared by every test binary, and guest crates
//! built against it without touching the developer's toolchain.

use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub mod nginx;

use hyperlight_install::rustc::RustcVersion;
use hyperlight_install::Target;

pub const TARGET: &str = Target::None.name();
/// The std target.
pub const STD_TARGET: &str = Target::Hermit.name();
pub const AARCH64_TARGET: &str = Target::Aarch64.name();
/// The target's rust-installer component, as the install records name it.
pub const COMPONENT: &str = Target::None.component();

pub fn project_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The toolchain pinned by rust-toolchain.toml.
pub fn pinned_toolchain() -> String {
    toml_string("rust-toolchain.toml", &["toolchain", "channel"])
}

/// The nightly the tests use: Cargo.toml's `[workspace.metadata.toolchains] test-nightly`.
pub fn test_nightly() -> String {
    toml_string(
        "Cargo.toml",
        &["workspace", "metadata", "toolchains", "test-nightly"],
    )
}

/// The string at `keys` in the project's TOML file `file`.
fn toml_string(file: &str, keys: &[&str]) -> String {
    let text = fs::read_to_string(project_root().join(file)).unwrap();
    let root = toml::Value::Table(text.parse().unwrap());
    let value = keys.iter().try_fold(&root, |value, key| value.get(key));
    value
        .and_then(toml::Value::as_str)
        .unwrap_or_else(|| panic!("{file} has no string `{}`", keys.join(".")))
        .to_owned()
}

/// A field (`release`, `commit-hash`, ...) of `rustc +toolchain -vV`.
pub fn rustc_field(toolchain: &str, key: &str) -> String {
    let output = Command::new("rustc")
        .arg(format!("+{toolchain}"))
        .arg("-vV")
        .output()
        .unwrap();
    assert_success(&output, "rustc -vV");
    let version = RustcVersion::parse(&String::from_utf8(output.stdout).unwrap()).unwrap();
    match key {
        "release" => version.release,
        "commit-hash" => version.commit_hash,
        "commit-date" => version.commit_date,
        "host" => version.host,
        _ => panic!("rustc -vV has no field {key} that tests use"),
    }
}

/// cargo-nextest as `cargo xtask test` installs it (xtask's `tools::CARGO_NEXTEST`), if it is
/// there.
pub fn cargo_nextest() -> Option<PathBuf> {
    Some(project_root().join("target/tools/bin/cargo-nextest")).filter(|path| path.is_file())
}

/// Scratch space for fixtures, under the workspace's target directory.
pub fn fixture_dir() -> PathBuf {
    project_root().join("target/testkit")
}

/// A sysroot for `toolchain`, built once and reused until its inputs change.
///
/// Its directory is named after the inputs' stamp: guests built against it pass it with
/// `--sysroot`, so a new sysroot changes their flags and cargo rebuilds them instead of
/// linking crates compiled against the previous one. Test binaries run one after another and
/// their tests in parallel threads, so a lock file serializes the build across processes and a
/// `OnceLock` across threads.
pub fn sysroot_for(toolchain: &str) -> PathBuf {
    target_sysroot_for(TARGET, toolchain)
}

/// [`sysroot_for`] of another target (x86_64-hyperlight-hermit).
pub fn target_sysroot_for(target: &str, toolchain: &str) -> PathBuf {
    let parent = fixture_dir().join("sysroot");
    fs::create_dir_all(&parent).unwrap();
    let prefix = format!("{target}-{toolchain}-");
    let lock = File::create(fixture_dir().join(format!("sysroot-{target}-{toolchain}.lock")));
    let lock = lock.unwrap();
    lock.lock().unwrap();
    let name = format!("{prefix}{}", sysroot_stamp(toolchain));
    let dir = parent.join(&name);
    let complete = parent.join(format!("{name}.complete"));
    if !complete.exists() {
        let status = Command::new("cargo")
            .current_dir(project_root())
            .args(["xtask", "sysroot", "--toolchain", toolchain])
            .args(["--target", target, "--out"])
            .arg(&dir)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "cargo xtask sysroot --toolchain {toolchain} --target {target} failed"
        );
        fs::write(&complete, "").unwrap();
        // Sysroots of earlier inputs are of no further use.
        for entry in fs::read_dir(&parent).unwrap() {
            let entry_name = entry.unwrap().file_name().into_string().unwrap();
            let stale = entry_name.starts_with(&prefix) && !entry_name.starts_with(&name);
            if stale {
                let path = parent.join(&entry_name);
                let _ = fs::remove_dir_all(&path).or_else(|_| fs::remove_file(&path));
            }
        }
    }
    dir
}

/// The sysroot for the pinned toolchain, shared by all tests in this process.
pub fn sysroot() -> &'static Path {
    static SYSROOT: OnceLock<PathBuf> = OnceLock::new();
    SYSROOT.get_or_init(|| sysroot_for(&pinned_toolchain()))
}

/// The [`STD_TARGET`] sysroot for the pinned toolchain, shared like [`sysroot`].
pub fn std_sysroot() -> &'static Path {
    static SYSROOT: OnceLock<PathBuf> = OnceLock::new();
    SYSROOT.get_or_init(|| target_sysroot_for(STD_TARGET, &pinned_toolchain()))
}

/// The [`AARCH64_TARGET`] sysroot for the pinned toolchain, shared like [`sysroot`].
pub fn aarch64_sysroot() -> &'static Path {
    static SYSROOT: OnceLock<PathBuf> = OnceLock::new();
    SYSROOT.get_or_init(|| target_sysroot_for(AARCH64_TARGET, &pinned_toolchain()))
}

/// What decides the sysroot's content: the compiler, the spec and the code that builds it.
fn sysroot_stamp(toolchain: &str) -> String {
    let rustc = Command::new("rustc")
        .args([format!("+{toolchain}").as_str(), "-vV"])
        .output()
        .unwrap();
    let root = project_root();
    let mut stamp = String::from_utf8(rustc.stdout).unwrap();
    for input in [
        "target-specs/x86_64-hyperlight-none.json",
        "target-specs/x86_64-hyperlight-hermit.json",
        "target-specs/aarch64-hyperlight-none.json",
        "sysroot/Cargo.toml",
        "sysroot/Cargo.lock",
        "sysroot/src/lib.rs",
        "sysroot/c-headers/Cargo.lock",
        "install/src/build.rs",
        "xtask/src/sysroot.rs",
        "xtask/src/c_headers.rs",
    ] {
        stamp.push_str(&fs::read_to_string(root.join(input)).unwrap());
    }
    // The guest runtime's sources ship in the sysroot too, its proc-macro crate's included.
    let mut runtime = files_under(&root.join("guest/src"));
    runtime.extend(files_under(&root.join("guest/macros")));
    runtime.push(root.join("guest/Cargo.toml"));
    runtime.sort();
    for file in runtime {
        stamp.push_str(&fs::read_to_string(file).unwrap());
    }
    format!("{:016x}", fnv1a(stamp.as_bytes()))
}

/// Every file below `dir`, sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files.extend(files_under(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// Every file below `dir` by its path relative to `dir`, with its content: to prove a tree is
/// byte for byte what it was, or what another is.
pub fn file_contents(dir: &Path) -> std::collections::BTreeMap<PathBuf, Vec<u8>> {
    files_under(dir)
        .into_iter()
        .map(|path| {
            let bytes = fs::read(&path).unwrap();
            (path.strip_prefix(dir).unwrap().to_path_buf(), bytes)
        })
        .collect()
}

fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3)
    })
}

/// A `cargo` command for a guest crate in `dir`, compiling against `sysroot` instead of the
/// toolchain's own one, so tests never need the target installed into the toolchain.
pub fn guest_cargo(dir: &Path, sysroot: &Path, toolchain: &str) -> Command {
    guest_cargo_with_flags(dir, sysroot, toolchain, &[])
}

/// [`guest_cargo`] for a std guest: libtest needs `-Zpanic-abort-tests` on this target (as
/// templates/cargo-config-std.toml sets).
pub fn std_guest_cargo(dir: &Path, sysroot: &Path, toolchain: &str) -> Command {
    guest_cargo_with_flags(dir, sysroot, toolchain, &["-Zpanic-abort-tests"])
}

fn guest_cargo_with_flags(dir: &Path, sysroot: &Path, toolchain: &str, extra: &[&str]) -> Command {
    let mut rustflags = vec![
        format!("--sysroot={}", sysroot.display()),
        "-Zunstable-options".into(),
        "--cfg=hyperlight".into(),
        "--check-cfg=cfg(hyperlight)".into(),
    ];
    rustflags.extend(extra.iter().map(|flag| flag.to_string()));
    let mut cargo = Command::new("cargo");
    cargo
        .current_dir(dir)
        .env("RUSTUP_TOOLCHAIN", toolchain)
        .env("RUSTC_BOOTSTRAP", "1")
        .env("CARGO_ENCODED_RUSTFLAGS", rustflags.join("\x1f"))
        // The guest configs' rustc-wrapper (hyperlight-run) looks after the toolchain's own
        // target, which these builds do not use; an empty value turns it off.
        .env("RUSTC_WRAPPER", "")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET");
    cargo
}

/// Builds binary `bin` of the guest workspace in `dir` (debug profile) with the shared sysroot
/// and returns the ELF's path. Guests of one workspace share its target directory.
pub fn build_guest(dir: &Path, bin: &str) -> PathBuf {
    let output = guest_cargo(dir, sysroot(), &pinned_toolchain())
        .args(["build", "--target", TARGET, "--bin", bin])
        .output()
        .unwrap();
    assert_success(
        &output,
        &format!("building guest {bin} in {}", dir.display()),
    );
    let metadata = guest_cargo(dir, sysroot(), &pinned_toolchain())
        .args(["metadata", "--format-version=1", "--no-deps"])
        .output()
        .unwrap();
    assert_success(&metadata, "cargo metadata");
    let text = String::from_utf8(metadata.stdout).unwrap();
    let target_dir = text
        .split("\"target_directory\":\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    Path::new(target_dir).join(TARGET).join("debug").join(bin)
}

/// Builds the unit tests of binary `bin` (package `bin`) of the guest workspace in `dir`, as
/// `cargo test` would, and returns the test binary cargo names.
pub fn build_guest_tests(dir: &Path, bin: &str) -> PathBuf {
    let output = guest_cargo(dir, sysroot(), &pinned_toolchain())
        .args(["test", "--no-run", "--package", bin, "--bin", bin])
        .output()
        .unwrap();
    assert_success(&output, &format!("building {bin}'s tests"));
    let text = String::from_utf8_lossy(&output.stderr).into_owned();
    text.lines()
        .find_map(|line| {
            line.trim()
                .strip_prefix("Executable unittests src/main.rs (")?
                .strip_suffix(')')
        })
        .map(|relative| dir.join(relative))
        .unwrap_or_else(|| panic!("no Executable line:\n{text}"))
}

/// Builds one of the crates in `examples/`.
pub fn example(name: &str) -> PathBuf {
    build_guest(&project_root().join("examples"), name)
}

pub fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed ({}):\n--- stdout\n{}\n--- stderr\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// A fresh directory under the system temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    pub fn new(label: &str) -> TempDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!(
            "hyperlight-test-{label}-{}-{n}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }

    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// A rustup toolchain of its own in a temporary `RUSTUP_HOME`: a hard-linked copy of a real
/// toolchain, so installing into it never changes the developer's toolchain. Every write an
/// install makes creates a new file or renames one into place, which breaks the link instead
/// of writing through it. The developer's other toolchains appear in the temporary home as
/// symlinks, so rust-toolchain.toml and `+toolchain` keep working there (read-only use only).
/// A toolchain that has the target installed (the README's `cargo xtask install` puts it into
/// the pinned one) appears without it: uninstalls keep the shared runner while another
/// toolchain has the target, and the tests must not depend on what the developer installed.
pub struct TempToolchain {
    home: TempDir,
    cargo_home: TempCargoHome,
    pub name: String,
}

impl TempToolchain {
    /// A copy of `real` (a rustup toolchain name); without rust-src when `with_rust_src` is false.
    pub fn copy_of(real: &str, with_rust_src: bool) -> TempToolchain {
        let source = sysroot_of(real);
        let real_home = std::env::var_os("RUSTUP_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".rustup"));
        let home = TempDir::new("rustup-home");
        let toolchains = home.path().join("toolchains");
        fs::create_dir_all(&toolchains).unwrap();
        for entry in fs::read_dir(real_home.join("toolchains")).unwrap() {
            let entry = entry.unwrap();
            let link = toolchains.join(entry.file_name());
            if has_installed_target(&entry.path().join("lib/rustlib")) {
                link_without_target(&entry.path(), &link);
            } else {
                std::os::unix::fs::symlink(entry.path(), link).unwrap();
            }
        }
        if let Ok(settings) = fs::read(real_home.join("settings.toml")) {
            fs::write(home.path().join("settings.toml"), settings).unwrap();
        }
        let name = format!("hyperlight-test-{real}");
        let dest = toolchains.join(&name);
        for part in ["bin", "lib"] {
            link_tree(&source.join(part), &dest.join(part), &|path: &Path| {
                with_rust_src || !path.ends_with("lib/rustlib/src")
            });
        }
        forget_installed_target(&dest.join("lib/rustlib"));
        TempToolchain {
            home,
            cargo_home: TempCargoHome::new(),
            name,
        }
    }

    /// A copy of rustup toolchain `real` without rust-src, which rustup itself can add
    /// components to (`copy_of`'s copies have a name rustup treats as a linked custom
    /// toolchain). It keeps the real toolchain's full name and rustup's records of it, minus
    /// rust-src. The records are copies, not links: rustup rewrites them in place. The
    /// temporary home holds no other toolchain, not even as a link rustup could write through.
    pub fn rustup_copy_without_rust_src(real: &str) -> TempToolchain {
        let source = sysroot_of(real);
        let name = source.file_name().unwrap().to_str().unwrap().to_owned();
        let home = TempDir::new("rustup-home");
        let dest = home.path().join("toolchains").join(&name);
        link_tree(&source.join("bin"), &dest.join("bin"), &|_| true);
        link_tree(&source.join("lib"), &dest.join("lib"), &|path: &Path| {
            !path.ends_with("lib/rustlib/src")
        });
        let rustlib = dest.join("lib/rustlib");
        for entry in fs::read_dir(source.join("lib/rustlib")).unwrap() {
            let entry = entry.unwrap();
            if !entry.file_type().unwrap().is_file() {
                continue;
            }
            let copy = rustlib.join(entry.file_name());
            fs::remove_file(&copy).unwrap();
            let text = || fs::read_to_string(entry.path()).unwrap();
            match entry.file_name().to_str().unwrap() {
                "manifest-rust-src" => {}
                "components" => {
                    let kept: String = text()
                        .lines()
                        .filter(|c| *c != "rust-src")
                        .map(|c| format!("{c}\n"))
                        .collect();
                    fs::write(&copy, kept).unwrap();
                }
                "multirust-config.toml" => {
                    let mut config: toml::Table = text().parse().unwrap();
                    if let Some(toml::Value::Array(components)) = config.get_mut("components") {
                        components.retain(|c| {
                            c.get("pkg").and_then(toml::Value::as_str) != Some("rust-src")
                        });
                    }
                    fs::write(&copy, toml::to_string(&config).unwrap()).unwrap();
                }
                _ => {
                    fs::copy(entry.path(), &copy).unwrap();
                }
            }
        }
        forget_installed_target(&rustlib);
        TempToolchain {
            home,
            cargo_home: TempCargoHome::new(),
            name,
        }
    }

    /// Puts the target's directory of `sysroot` into this toolchain, as an install would
    /// (without the install records, which only `install` and `uninstall` read).
    pub fn add_target_from(&self, sysroot: &Path) {
        self.add_named_target_from(TARGET, sysroot);
    }

    /// [`Self::add_target_from`] for any target, e.g. [`STD_TARGET`].
    pub fn add_named_target_from(&self, target: &str, sysroot: &Path) {
        let target = Path::new("lib/rustlib").join(target);
        copy_tree(&sysroot.join(&target), &self.sysroot().join(&target));
    }

    pub fn rustup_home(&self) -> &Path {
        self.home.path()
    }

    /// The cargo home that goes with this toolchain: installing registers the guest runtime
    /// in `$CARGO_HOME/config.toml`, which must not be the developer's.
    pub fn cargo_home(&self) -> &Path {
        self.cargo_home.path()
    }

    pub fn sysroot(&self) -> PathBuf {
        self.home.path().join("toolchains").join(&self.name)
    }

    /// `program` (cargo, rustc, ...) run through rustup with this toolchain selected.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        command
            .env("RUSTUP_HOME", self.home.path())
            .env("CARGO_HOME", self.cargo_home())
            .env("RUSTUP_TOOLCHAIN", &self.name)
            // cargo test points it at the real toolchain's libraries, which a copied rustc run
            // directly would load, and then report the real toolchain's sysroot.
            .env_remove("LD_LIBRARY_PATH")
            .env_remove("RUSTFLAGS")
            .env_remove("CARGO_ENCODED_RUSTFLAGS")
            .env_remove("CARGO_TARGET_DIR")
            .env_remove("CARGO_BUILD_TARGET");
        command
    }
}

/// A cargo home of its own in a temporary directory, for installs (which register the guest
/// runtime in `$CARGO_HOME/config.toml`) that must not change the developer's. It starts
/// without a config and shares the developer's download caches and their locks, so cargo
/// builds in it download nothing new.
pub struct TempCargoHome(TempDir);

impl TempCargoHome {
    pub fn new() -> TempCargoHome {
        let home = TempDir::new("cargo-home");
        let real = std::env::var_os("CARGO_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap()).join(".cargo"));
        for shared in ["registry", "git", ".package-cache", ".package-cache-mutate"] {
            if real.join(shared).exists() {
                std::os::unix::fs::symlink(real.join(shared), home.path().join(shared)).unwrap();
            }
        }
        TempCargoHome(home)
    }

    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Default for TempCargoHome {
    fn default() -> Self {
        Self::new()
    }
}

/// A rust-analyzer for the pinned toolchain, as rustup's component ships it. It is installed
/// once into a rustup home of its own under the fixture directory, never into the
/// developer's toolchains.
pub fn rust_analyzer() -> PathBuf {
    let toolchain = pinned_toolchain();
    let home = fixture_dir().join("rust-analyzer");
    fs::create_dir_all(&home).unwrap();
    let lock = File::create(fixture_dir().join("rust-analyzer.lock")).unwrap();
    lock.lock().unwrap();
    let host = rustc_field(&toolchain, "host");
    let binary = home.join(format!("toolchains/{toolchain}-{host}/bin/rust-analyzer"));
    if !binary.is_file() {
        let cargo_home = TempCargoHome::new();
        let output = Command::new("rustup")
            .args(["toolchain", "install", &toolchain, "--profile", "minimal"])
            .args(["--component", "rust-analyzer", "--no-self-update"])
            .env("RUSTUP_HOME", &home)
            .env("CARGO_HOME", cargo_home.path())
            .output()
            .unwrap();
        assert_success(&output, "rustup toolchain install (for rust-analyzer)");
    }
    binary
}

/// A hello guest in `dir` as a user's project would be: the guest configuration of
/// templates/cargo-config.toml (rustc-wrapper included), depending on this checkout's runtime.
fn write_hello_guest(dir: &Path) {
    fs::create_dir_all(dir.join("src")).unwrap();
    fs::create_dir_all(dir.join(".cargo")).unwrap();
    fs::write(
        dir.join("Cargo.toml"),
        format!(
            "[package]\nname = \"guest\"\nversion = \"0.1.0\"\nedition = \"2021\"\n\n\
             [dependencies]\nhyperlight-rt = {{ path = {:?} }}\n\n\
             [profile.dev]\npanic = \"abort\"\n\n[workspace]\n",
            project_root().join("guest")
        ),
    )
    .unwrap();
    fs::copy(
        project_root().join("examples/hello/src/main.rs"),
        dir.join("src/main.rs"),
    )
    .unwrap();
    fs::copy(
        project_root().join("templates/cargo-config.toml"),
        dir.join(".cargo/config.toml"),
    )
    .unwrap();
}

/// A user's machine around a temporary copy of a toolchain (with rust-src): its cargo home's
/// `bin` holds a given `hyperlight-run` and comes first on PATH, its settings name the dist
/// server of a previous install, and it has the hello guest project.
pub struct UserMachine {
    pub toolchain: TempToolchain,
    home: TempDir,
}

impl UserMachine {
    pub fn new(real_toolchain: &str, runner: &Path, dist_server: &str) -> UserMachine {
        let machine = UserMachine {
            toolchain: TempToolchain::copy_of(real_toolchain, true),
            home: TempDir::new("user-machine"),
        };
        let bin = machine.cargo_home().join("bin");
        fs::create_dir_all(&bin).unwrap();
        fs::copy(runner, bin.join("hyperlight-run")).unwrap();
        machine.set_dist_server(dist_server);
        write_hello_guest(&machine.project());
        machine
    }

    /// The toolchain's own temporary cargo home, which shares the developer's download caches:
    /// building core and alloc resolves the standard library's crates.io dependencies offline.
    pub fn cargo_home(&self) -> &Path {
        self.toolchain.cargo_home()
    }

    pub fn project(&self) -> PathBuf {
        self.home.path().join("guest")
    }

    /// Where the target is installed in the toolchain.
    pub fn target_dir(&self) -> PathBuf {
        self.toolchain.sysroot().join("lib/rustlib").join(TARGET)
    }

    pub fn set_dist_server(&self, server: &str) {
        let settings = self.cargo_home().join("hyperlight/settings.toml");
        fs::create_dir_all(settings.parent().unwrap()).unwrap();
        fs::write(settings, format!("dist-server = \"{server}\"\n")).unwrap();
    }

    /// `program` in the guest project, with this machine's environment.
    pub fn command(&self, program: &str) -> Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.cargo_home().join("bin")];
        dirs.extend(std::env::split_paths(&path));
        let mut command = self.toolchain.command(program);
        command
            .current_dir(self.project())
            .env("PATH", std::env::join_paths(dirs).unwrap())
            .env("TMPDIR", self.home.path())
            .env("CARGO_NET_OFFLINE", "true")
            .env_remove("RUSTC_WRAPPER")
            .env_remove("RUSTC_BOOTSTRAP")
            .env_remove("HYPERLIGHT_DIST_SERVER")
            .env_remove("CARGO_INSTALL_ROOT");
        command
    }

    /// `rustc -vV` of the machine's toolchain.
    pub fn rustc_version(&self) -> String {
        let output = self.command("rustc").arg("-vV").output().unwrap();
        String::from_utf8_lossy(&output.stdout).into_owned()
    }
}

/// The sysroot of rustup toolchain `toolchain`.
fn sysroot_of(toolchain: &str) -> PathBuf {
    let output = Command::new("rustc")
        .arg(format!("+{toolchain}"))
        .args(["--print", "sysroot"])
        .output()
        .unwrap();
    assert_success(&output, "rustc --print sysroot");
    PathBuf::from(String::from_utf8(output.stdout).unwrap().trim())
}

/// Whether the toolchain whose `lib/rustlib` this is lists the target as installed.
fn has_installed_target(rustlib: &Path) -> bool {
    fs::read_to_string(rustlib.join("components"))
        .is_ok_and(|listed| listed.lines().any(|c| c == COMPONENT))
}

/// `real` as a tree of symlinks down to its `lib/rustlib`, which has everything but the target.
fn link_without_target(real: &Path, view: &Path) {
    let descended = [Path::new(""), Path::new("lib"), Path::new("lib/rustlib")];
    let target = Path::new("lib/rustlib").join(TARGET);
    let record = Path::new("lib/rustlib").join(format!("manifest-{COMPONENT}"));
    for dir in descended {
        fs::create_dir_all(view.join(dir)).unwrap();
        for entry in fs::read_dir(real.join(dir)).unwrap() {
            let relative = dir.join(entry.unwrap().file_name());
            if !descended.contains(&relative.as_path()) && relative != target && relative != record
            {
                std::os::unix::fs::symlink(real.join(&relative), view.join(&relative)).unwrap();
            }
        }
    }
    // Drops the target from the component list (a new file in place of the link).
    forget_installed_target(&view.join("lib/rustlib"));
}

/// Makes a copy of a toolchain into which the target was installed look as it was before,
/// so tests start from the same state on a developer's machine as on a fresh one.
fn forget_installed_target(rustlib: &Path) {
    let _ = fs::remove_dir_all(rustlib.join(TARGET));
    let _ = fs::remove_file(rustlib.join(format!("manifest-{COMPONENT}")));
    let components = rustlib.join("components");
    if let Ok(listed) = fs::read_to_string(&components) {
        let kept: String = listed
            .lines()
            .filter(|c| *c != COMPONENT)
            .map(|c| format!("{c}\n"))
            .collect();
        if kept != listed {
            // Unlink first: writing through a hard or symbolic link would change the real
            // toolchain's file.
            fs::remove_file(&components).unwrap();
            fs::write(&components, kept).unwrap();
        }
    }
}

/// Copies the directory tree `from` to `to`.
pub fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &to.join(entry.file_name()));
        } else {
            fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
        }
    }
}

/// Hard-links every file of `from` into `to` (copying where linking is not possible), skipping
/// directories for which `keep` says no.
fn link_tree(from: &Path, to: &Path, keep: &dyn Fn(&Path) -> bool) {
    if !keep(from) {
        return;
    }
    fs::create_dir_all(to).unwrap();
    for entry in fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let (source, dest) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            link_tree(&source, &dest, keep);
        } else if kind.is_symlink() {
            std::os::unix::fs::symlink(fs::read_link(&source).unwrap(), &dest).unwrap();
        } else if fs::hard_link(&source, &dest).is_err() {
            fs::copy(&source, &dest).unwrap();
        }
    }
}

// --- Tests that need KVM ---
//
// A test that boots a guest cannot run on a machine without KVM (CI's, for one). It must not
// pass quietly there either: it says SKIPPED on stderr and is recorded in `skipped_dir()`,
// which `cargo xtask test` lists by name after the run.

/// Why guests cannot boot here, or `None` when they can: the KVM device the runner opens
/// (`HYPERLIGHT_KVM_DEVICE`, else `/dev/kvm`) must exist and open read-write.
pub fn kvm_unavailable() -> Option<String> {
    static WHY: OnceLock<Option<String>> = OnceLock::new();
    WHY.get_or_init(|| {
        let device = std::env::var_os("HYPERLIGHT_KVM_DEVICE")
            .map_or_else(|| PathBuf::from("/dev/kvm"), PathBuf::from);
        let opened = fs::OpenOptions::new().read(true).write(true).open(&device);
        opened.err().map(|err| {
            format!(
                "{} is not available on this machine ({err})",
                device.display()
            )
        })
    })
    .clone()
}

/// For a test, or the part of one, that boots a guest: true when KVM is usable; otherwise
/// reports `test` as skipped (stderr and the record) and returns false.
pub fn kvm_or_skip(test: &str) -> bool {
    let Some(why) = kvm_unavailable() else {
        return true;
    };
    skip(test, &why);
    false
}

/// Reports `test` as skipped, and why: on stderr and in the record `cargo xtask test` lists.
/// Only for what truly cannot run on this machine or toolchain.
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED {test}: {why}");
    record_skipped(test, why);
}

/// First line of a test that boots a guest: without KVM, reports the test as skipped under
/// its own name (libtest names each test's thread after the test's path) and returns.
#[macro_export]
macro_rules! require_kvm {
    () => {
        if !$crate::kvm_or_skip(::std::thread::current().name().unwrap_or("<unnamed test>")) {
            return;
        }
    };
}

/// Where skipped tests are recorded: a file per test process (named by its pid, so test
/// binaries running at once never share one), a `<package>/<test binary>::<test>: <why>` a
/// line.
pub fn skipped_dir() -> PathBuf {
    fixture_dir().join("skipped")
}

fn record_skipped(test: &str, why: &str) {
    let exe = std::env::current_exe().unwrap();
    let stem = exe.file_stem().unwrap().to_string_lossy();
    // cargo names test binaries `<target>-<16 hex digits>`.
    let binary = match stem.rsplit_once('-') {
        Some((name, hash)) if hash.len() == 16 && hash.bytes().all(|b| b.is_ascii_hexdigit()) => {
            name
        }
        _ => &stem,
    };
    // cargo test sets it for the test binaries it runs.
    let package = std::env::var("CARGO_PKG_NAME").unwrap_or_default();
    let dir = skipped_dir();
    fs::create_dir_all(&dir).unwrap();
    let mut record = fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(std::process::id().to_string()))
        .unwrap();
    // One write per line: the process's test threads append without interleaving.
    std::io::Write::write_all(
        &mut record,
        format!("{package}/{binary}::{test}: {why}\n").as_bytes(),
    )
    .unwrap();
}

/// Forgets the skipped tests recorded so far, before a new run.
pub fn clear_skipped() -> std::io::Result<()> {
    match fs::remove_dir_all(skipped_dir()) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => Err(err),
        _ => Ok(()),
    }
}

/// The tests recorded as skipped since [`clear_skipped`], sorted.
pub fn skipped_tests() -> std::io::Result<Vec<String>> {
    let mut tests = Vec::new();
    let records = match fs::read_dir(skipped_dir()) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(tests),
        records => records?,
    };
    for record in records {
        let text = fs::read_to_string(record?.path())?;
        tests.extend(text.lines().map(str::to_owned));
    }
    tests.sort();
    Ok(tests)
}
