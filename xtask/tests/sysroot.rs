//! The foundation: the target spec, `cargo xtask sysroot`, `install` / `uninstall`, and plain
//! `cargo build` against the installed target: of a no_std guest on stable and on nightly, and of
//! the official Hyperlight demo guest on stable.
//!
//! Installs go into `testkit::TempToolchain`s (hard-linked copies in a temporary RUSTUP_HOME),
//! so the developer's toolchains are never modified.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

mod support;

use hyperlight_install::runtime;
use object::{Object, ObjectSection, ObjectSymbol};
use support::{check_static_pie_entry, text, COMPONENT};
use testkit::file_contents;
use testkit::{
    assert_success, pinned_toolchain, project_root, TempDir, TempToolchain, AARCH64_TARGET, TARGET,
};

fn xtask(toolchain: &TempToolchain, bin_dir: &Path) -> Command {
    let mut xtask = Command::new(env!("CARGO_BIN_EXE_xtask"));
    xtask
        .env("RUSTUP_HOME", toolchain.rustup_home())
        .env("CARGO_HOME", toolchain.cargo_home())
        .env("CARGO_INSTALL_ROOT", bin_dir);
    xtask
}

#[test]
fn spec_is_the_base_target_plus_the_documented_overrides() {
    // The overrides, as documented in target-specs/README.md.
    check_spec(TARGET, "x86_64-unknown-none", |fields| {
        fields.remove("rustc-abi");
        fields.insert("code-model".into(), "small".into());
        fields.insert(
            "features".into(),
            "-mmx,+sse,+sse2,-sse3,-ssse3,-sse4.1,-sse4.2,-avx,-avx2,-soft-float".into(),
        );
        fields.insert(
            "pre-link-args".into(),
            serde_json::json!({"gnu-lld": ["-znostart-stop-gc", "-eentrypoint"]}),
        );
    });
}

#[test]
fn aarch64_spec_is_the_base_target_plus_the_documented_overrides() {
    check_spec(AARCH64_TARGET, "aarch64-unknown-none", |fields| {
        fields.insert("code-model".into(), "small".into());
        fields.insert(
            "features".into(),
            "+v8.1a,+strict-align,+neon,+fp-armv8".into(),
        );
        fields.insert("relocation-model".into(), "pic".into());
        fields.insert("direct-access-external-data".into(), true.into());
        fields.insert("position-independent-executables".into(), true.into());
        fields.insert(
            "pre-link-args".into(),
            serde_json::json!({"gnu-lld": ["-znostart-stop-gc", "-eentrypoint"]}),
        );
    });
}

/// `dir`, an installed no_std target's directory, has an .rlib and an .rmeta of core, alloc and
/// compiler_builtins in `lib/`, and `target`'s spec.
fn check_no_std_libraries_and_spec(dir: &Path, target: &str) {
    let mut names: Vec<String> = fs::read_dir(dir.join("lib"))
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    let stems: Vec<&str> = names.iter().map(|n| n.split('-').next().unwrap()).collect();
    assert_eq!(
        stems,
        [
            "liballoc",
            "liballoc",
            "libcompiler_builtins",
            "libcompiler_builtins",
            "libcore",
            "libcore"
        ]
    );
    assert!(
        names
            .iter()
            .all(|n| n.ends_with(".rlib") || n.ends_with(".rmeta")),
        "{names:?}"
    );
    assert_eq!(
        fs::read(dir.join("target.json")).unwrap(),
        fs::read(project_root().join(format!("target-specs/{target}.json"))).unwrap()
    );
}

/// target-specs/`target`.json is the pinned rustc's `base` with `overrides` applied.
fn check_spec(
    target: &str,
    base: &str,
    overrides: impl FnOnce(&mut serde_json::Map<String, serde_json::Value>),
) {
    let output = Command::new("rustc")
        .arg(format!("+{}", pinned_toolchain()))
        .args([
            "-Zunstable-options",
            "--print",
            "target-spec-json",
            "--target",
            base,
        ])
        .env("RUSTC_BOOTSTRAP", "1")
        .output()
        .unwrap();
    assert_success(&output, "rustc --print target-spec-json");
    let mut expected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    overrides(expected.as_object_mut().unwrap());

    let spec = project_root().join(format!("target-specs/{target}.json"));
    let spec: serde_json::Value = serde_json::from_slice(&fs::read(spec).unwrap()).unwrap();
    assert_eq!(
        spec, expected,
        "the {target} spec drifted from the pinned rustc's {base}"
    );
}

#[test]
fn sysroot_holds_the_libraries_the_spec_and_the_compiler_that_built_them() {
    let dir = testkit::sysroot().join("lib/rustlib").join(TARGET);
    check_no_std_libraries_and_spec(&dir, TARGET);
    let rustc = Command::new("rustc")
        .arg(format!("+{}", pinned_toolchain()))
        .arg("-vV")
        .output()
        .unwrap();
    assert_eq!(
        fs::read_to_string(dir.join("rustc-version")).unwrap(),
        text(&rustc.stdout)
    );
}

#[test]
fn sysroot_build_is_reproducible_and_free_of_build_paths() {
    let shared = testkit::sysroot();
    let fresh = TempDir::new("sysroot-again");
    // A different CARGO_TARGET_DIR makes this a build from scratch in another directory.
    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["sysroot", "--out"])
        .arg(fresh.path().join("sysroot"))
        .env("CARGO_TARGET_DIR", fresh.path().join("target"))
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask sysroot");
    assert!(
        text(&output.stderr).contains("Compiling core"),
        "cargo's progress is shown:\n{}",
        text(&output.stderr)
    );

    let (first, second) = (
        file_contents(shared),
        file_contents(&fresh.path().join("sysroot")),
    );
    assert_eq!(
        first.keys().collect::<Vec<_>>(),
        second.keys().collect::<Vec<_>>()
    );
    for (path, bytes) in &first {
        assert!(
            bytes == &second[path],
            "{} differs between two builds",
            path.display()
        );
    }

    let rust_src = Command::new("rustc")
        .arg(format!("+{}", pinned_toolchain()))
        .args(["--print", "sysroot"])
        .output();
    let build_paths = [
        text(&rust_src.unwrap().stdout).trim().to_owned(),
        project_root().display().to_string(),
        fresh.path().display().to_string(),
        std::env::var("CARGO_HOME")
            .unwrap_or_else(|_| format!("{}/.cargo", std::env::var("HOME").unwrap())),
    ];
    for (path, bytes) in &first {
        for build_path in &build_paths {
            let found = bytes
                .windows(build_path.len())
                .any(|w| w == build_path.as_bytes());
            assert!(
                !found,
                "{} contains the build path {build_path}",
                path.display()
            );
        }
    }
}

/// The build adds a missing rust-src through rustup; when rustup cannot (a toolchain it does not
/// know by that name), the error names the command to run.
#[test]
fn rust_src_that_rustup_cannot_add_fails_naming_the_command() {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    let bin = TempDir::new("bin");
    let output = xtask(&toolchain, bin.path())
        .args(["sysroot", "--toolchain", &toolchain.name])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let stderr = text(&output.stderr);
    let name = &toolchain.name;
    assert!(
        stderr.contains(&format!("adding rust-src to toolchain {name}")),
        "{stderr}"
    );
    let expected = format!(
        "error: `rustup component add rust-src --toolchain {name}` failed (exit status: 1)\n"
    );
    assert!(stderr.ends_with(&expected), "{stderr}");
    assert!(!toolchain.sysroot().join("lib/rustlib/src").exists());
}

#[test]
fn install_then_plain_cargo_on_stable() {
    install_build_and_uninstall(&pinned_toolchain(), Runner::Install);
}

#[test]
fn install_then_plain_cargo_on_nightly() {
    install_build_and_uninstall(&testkit::test_nightly(), Runner::Leave);
}

/// Whether `cargo xtask install` also builds and installs hyperlight-run, or is given
/// `--no-runner`.
#[derive(PartialEq)]
enum Runner {
    Install,
    Leave,
}

/// The whole life cycle in one toolchain: install, build and check a guest with plain cargo,
/// install again (a no-op), uninstall back to the exact previous tree.
fn install_build_and_uninstall(real_toolchain: &str, runner: Runner) {
    let toolchain = TempToolchain::copy_of(real_toolchain, true);
    let sysroot = toolchain.sysroot();
    let rustlib = sysroot.join("lib/rustlib");
    let before = file_contents(&rustlib);
    let bin = TempDir::new("bin");
    // The runner's dependencies come from the temporary cargo home's registry, a path cargo
    // has not built them from before: a target directory of its own keeps the workspace's
    // builds from being invalidated by this one.
    let target = TempDir::new("install-target");
    let install = || {
        let mut install = xtask(&toolchain, bin.path());
        install
            .args(["install", "--toolchain", &toolchain.name])
            .env("CARGO_TARGET_DIR", target.path());
        if runner == Runner::Leave {
            install.arg("--no-runner");
        }
        install.output().unwrap()
    };

    let output = install();
    assert_success(&output, "cargo xtask install");
    assert!(
        text(&output.stderr).contains(&format!("installed {TARGET} into {}", sysroot.display()))
    );
    assert_eq!(
        bin.path().join("bin/hyperlight-run").is_file(),
        runner == Runner::Install
    );
    assert_eq!(
        fs::read_link(bin.path().join("bin/hyperlight-cc")).ok(),
        (runner == Runner::Install).then(|| PathBuf::from("hyperlight-run")),
        "the guest config's C compiler is hyperlight-run by another name"
    );
    let manifest = fs::read_to_string(rustlib.join(format!("manifest-{COMPONENT}"))).unwrap();
    let listed: Vec<&str> = manifest.lines().collect();
    // target.json, rustc-version, an .rlib and an .rmeta for each of three crates, the C
    // headers of the pinned hyperlight-libc (sysroot/c-headers).
    let headers = listed
        .iter()
        .filter(|line| line.contains("/x86_64-hyperlight-none/include/"))
        .count();
    assert!(headers > 100, "{manifest}");
    // And the guest runtime's sources, which installing registers for guest projects: the
    // runtime with its proc-macro crate inside, and that crate on its own.
    let listed_under = |dir: &str| {
        let dir = format!("/x86_64-hyperlight-none/src/{dir}/");
        listed.iter().filter(|line| line.contains(&dir)).count()
    };
    let files_under = |dir: &str| testkit::files_under(&project_root().join(dir)).len();
    let runtime = listed_under("hyperlight-rt") + listed_under("hyperlight-rt-macros");
    assert_eq!(
        listed_under("hyperlight-rt"),
        1 + files_under("guest/src") + files_under("guest/macros"),
        "{manifest}"
    );
    assert_eq!(
        listed_under("hyperlight-rt-macros"),
        files_under("guest/macros"),
        "{manifest}"
    );
    // And the crate the libraries are built from, so that they can be rebuilt from here.
    for file in ["Cargo.toml", "Cargo.lock", "src/lib.rs"] {
        let line = format!("file:lib/rustlib/x86_64-hyperlight-none/src/sysroot/{file}");
        assert!(listed.contains(&line.as_str()), "{line} in {manifest}");
    }
    // And picolibc prebuilt for official guests: each object with its record, listed as well.
    let c_objects = listed
        .iter()
        .filter(|line| line.contains("/x86_64-hyperlight-none/c-objects/"))
        .count();
    let built_c_objects = testkit::files_under(
        &testkit::sysroot()
            .join("lib/rustlib")
            .join(TARGET)
            .join("c-objects"),
    );
    assert_eq!(c_objects, built_c_objects.len(), "{manifest}");
    let objects = built_c_objects
        .iter()
        .filter(|f| f.extension() == Some("o".as_ref()))
        .count();
    assert!(objects >= 2 * PICOLIBC_FILES, "{objects} objects");
    assert_eq!(
        listed.len(),
        11 + headers + runtime + c_objects,
        "{manifest}"
    );
    for header in ["stdio.h", "stdlib.h", "picolibc.h", "sys/types.h"] {
        let line = format!("file:lib/rustlib/x86_64-hyperlight-none/include/{header}");
        assert!(listed.contains(&line.as_str()), "{line} in {manifest}");
    }
    for line in &listed {
        let path = line
            .strip_prefix("file:lib/rustlib/x86_64-hyperlight-none/")
            .expect(line);
        assert!(rustlib.join(TARGET).join(path).is_file(), "{line}");
    }
    let components = fs::read_to_string(rustlib.join("components")).unwrap();
    assert_eq!(components.lines().filter(|c| *c == COMPONENT).count(), 1);
    // Guest projects reach the runtime through the registry installing sets up in the cargo
    // home, whose directory source holds the runtime crates alone (not the sysroot crate).
    let sources = runtime::sources_dir(toolchain.cargo_home());
    let status = runtime::status(toolchain.cargo_home(), &rustlib.join(TARGET)).unwrap();
    assert_eq!(status.problems, Vec::<String>::new());
    let runtime_dir = format!("hyperlight-rt-{}", runtime_version());
    let mut in_sources: Vec<_> = fs::read_dir(&sources)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    in_sources.sort();
    let macros_dir = format!("hyperlight-rt-macros-{}", runtime_version());
    assert_eq!(in_sources, [runtime_dir.as_str(), macros_dir.as_str()]);
    assert!(sources.join(&runtime_dir).join("src/lib.rs").is_file());

    let elf = build_plain(&toolchain, TARGET);
    check_static_pie_entry(&elf, object::Architecture::X86_64);

    let again = install();
    assert_success(&again, "second cargo xtask install");
    assert!(text(&again.stderr).contains(&format!(
        "{TARGET} is already installed in {}",
        sysroot.display()
    )));
    assert_eq!(
        fs::read_to_string(rustlib.join("components")).unwrap(),
        components
    );

    let output = xtask(&toolchain, bin.path())
        .args(["uninstall", "--toolchain", &toolchain.name])
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask uninstall");
    assert!(text(&output.stderr).contains(&format!("removed {TARGET} from {}", sysroot.display())));
    let runner_path = bin.path().join("bin/hyperlight-run");
    assert_eq!(
        text(&output.stderr).contains(&format!("removed {}", runner_path.display())),
        runner == Runner::Install
    );
    assert!(!runner_path.exists());
    assert!(fs::symlink_metadata(runner_path.with_file_name("hyperlight-cc")).is_err());
    // The last toolchain with the target is gone, and with it the runtime's registration.
    assert!(!toolchain.cargo_home().join("config.toml").exists());
    assert!(!toolchain.cargo_home().join("hyperlight").exists());
    assert!(
        file_contents(&rustlib) == before,
        "uninstall left the toolchain different from before the install"
    );
}

/// aarch64-hyperlight-none: its sysroot holds core, alloc and compiler_builtins, the spec, the C
/// headers and picolibc's prebuilt objects, and not the runtime (x86-64 only). A no_std + alloc crate builds with plain
/// cargo on stable and the guest config into an AArch64 static PIE entered at `entrypoint`,
/// which hyperlight-run refuses with one line and exit 125.
#[test]
fn aarch64_no_std_alloc_crate_builds_on_stable_and_the_runner_refuses_it() {
    let sysroot = testkit::aarch64_sysroot();
    let dir = sysroot.join("lib/rustlib").join(AARCH64_TARGET);
    let names = |dir: &Path| -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        names
    };
    assert_eq!(
        names(&dir),
        [
            "c-objects",
            "include",
            "lib",
            "rustc-version",
            "src",
            "target.json"
        ]
    );
    assert_eq!(names(&dir.join("src")), ["sysroot"]);
    check_no_std_libraries_and_spec(&dir, AARCH64_TARGET);
    assert!(dir.join("include/stdio.h").is_file());

    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    toolchain.add_named_target_from(AARCH64_TARGET, sysroot);
    let elf = build_plain(&toolchain, AARCH64_TARGET);
    let refused = format!(
        "hyperlight-run: error: cannot load {}: an AArch64 guest (aarch64-hyperlight-none); \
         hyperlight-run boots x86-64 guests only, on an x86-64 host\n",
        elf.display()
    );
    let run = Command::new(support::release_runner())
        .arg(&elf)
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(125), "{}", text(&run.stderr));
    assert_eq!(text(&run.stderr), refused);
    assert!(run.stdout.is_empty());
    check_static_pie_entry(&elf, object::Architecture::Aarch64);
}

/// Official Hyperlight guests with plain cargo on stable: the demo guest `cargo hyperlight new`
/// writes (hyperlight-guest-bin 0.18 with its default features, so hyperlight-libc's build
/// script compiles picolibc and runs bindgen) builds with one `cargo build` for both targets on
/// the pinned toolchain against nothing but the installed targets, templates/cargo-config.toml
/// and the installed `hyperlight-cc`. `hyperlight-run` refuses the x86-64 guest with exit code
/// 126 (an official guest needs the Hyperlight host) and the AArch64 one with 125. Every
/// picolibc compile of this cold build is served from the targets' prebuilt objects: clang
/// (counted by a logging `clang` first on PATH) compiles none of picolibc's files.
#[test]
fn official_demo_guest_builds_with_plain_cargo_on_stable_and_the_runner_refuses_it() {
    // The targets as installing puts them (the install itself is tested above), into a copy
    // without rust-src: nothing is built from the standard library's sources.
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    toolchain.add_target_from(testkit::sysroot());
    toolchain.add_named_target_from(AARCH64_TARGET, testkit::aarch64_sysroot());
    let target_dir = toolchain.sysroot().join("lib/rustlib").join(TARGET);
    for header in ["stdio.h", "stdlib.h", "picolibc.h"] {
        assert!(
            target_dir.join("include").join(header).is_file(),
            "{header} is installed"
        );
    }

    let work = TempDir::new("official");
    let project = official_demo(work.path());
    let clang = CountedClang::new(work.path());
    let build = clang.cargo_build(
        &toolchain,
        &project,
        &["--locked", "--target", AARCH64_TARGET],
    );
    assert_success(&build, "plain cargo build of the official demo guest");
    let log = text(&build.stderr);
    assert!(
        log.contains("Compiling hyperlight-libc v0.18.0"),
        "the C library is built:\n{log}"
    );
    assert!(!log.contains("Compiling core"), "no -Zbuild-std:\n{log}");
    assert_eq!(
        clang.picolibc_compiles(),
        Vec::<String>::new(),
        "every picolibc file is served from the prebuilt objects"
    );
    let served = testkit::files_under(&target_dir.join("c-objects"))
        .iter()
        .filter(|file| file.extension() == Some("o".as_ref()))
        .count();
    assert!(served >= 2 * PICOLIBC_FILES, "{served} prebuilt objects");

    let elf = |target: &str| {
        project
            .join("target")
            .join(target)
            .join("debug/official-demo")
    };
    check_official_guest(&elf(TARGET), object::Architecture::X86_64);
    check_official_guest(&elf(AARCH64_TARGET), object::Architecture::Aarch64);

    let run = |target: &str| {
        Command::new(support::release_runner())
            .arg(elf(target))
            .output()
            .unwrap()
    };
    let x86_64 = run(TARGET);
    let stderr = text(&x86_64.stderr);
    assert_eq!(x86_64.status.code(), Some(126), "{stderr}");
    assert!(
        stderr.contains("is an official Hyperlight guest")
            && stderr.contains("Hyperlight host, version 0.18.0"),
        "{stderr}"
    );
    assert!(x86_64.stdout.is_empty());
    let aarch64 = run(AARCH64_TARGET);
    assert_eq!(aarch64.status.code(), Some(125));
    assert_eq!(
        text(&aarch64.stderr),
        format!(
            "hyperlight-run: error: cannot load {}: an AArch64 guest (aarch64-hyperlight-none); \
             hyperlight-run boots x86-64 guests only, on an x86-64 host\n",
            elf(AARCH64_TARGET).display()
        )
    );
}

/// A guest whose hyperlight-libc is a patched copy (`[patch.crates-io]`) with one picolibc
/// source altered: that file, and only that one, is compiled by clang; the other 918 are
/// served, from the copy's own paths. The guest links.
#[test]
fn an_altered_picolibc_source_is_compiled_and_the_rest_served() {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    toolchain.add_target_from(testkit::sysroot());
    let work = TempDir::new("official-patched");
    let project = official_demo(work.path());

    let metadata = toolchain
        .command("cargo")
        .args(["metadata", "--locked", "--format-version=1"])
        .current_dir(&project)
        .output()
        .unwrap();
    assert_success(&metadata, "cargo metadata");
    let metadata: serde_json::Value = serde_json::from_slice(&metadata.stdout).unwrap();
    let package = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .find(|package| package["name"] == "hyperlight-libc")
        .unwrap();
    let package = Path::new(package["manifest_path"].as_str().unwrap())
        .parent()
        .unwrap();
    let copy = work.path().join("hyperlight-libc");
    testkit::copy_tree(package, &copy);
    let altered = "third_party/picolibc/libc/stdlib/atoi.c";
    let mut source = fs::read_to_string(copy.join(altered)).unwrap();
    source.push_str("/* altered by the test */\n");
    fs::write(copy.join(altered), source).unwrap();
    let mut manifest = fs::read_to_string(project.join("Cargo.toml")).unwrap();
    manifest.push_str("\n[patch.crates-io]\nhyperlight-libc = { path = \"../hyperlight-libc\" }\n");
    fs::write(project.join("Cargo.toml"), manifest).unwrap();

    let clang = CountedClang::new(work.path());
    let build = clang.cargo_build(&toolchain, &project, &["--offline"]);
    assert_success(&build, "cargo build with a patched hyperlight-libc");
    assert!(
        text(&build.stderr).contains(&format!(
            "Compiling hyperlight-libc v0.18.0 ({})",
            copy.display()
        )),
        "{}",
        text(&build.stderr)
    );
    assert_eq!(
        clang.picolibc_compiles(),
        [copy.join(altered).display().to_string()]
    );
    check_official_guest(
        &project
            .join("target")
            .join(TARGET)
            .join("debug/official-demo"),
        object::Architecture::X86_64,
    );
}

/// How many C files hyperlight-libc 0.18 compiles for x86-64.
const PICOLIBC_FILES: usize = 919;

/// The demo guest project in `dir/official-demo`, set up with the guest config.
fn official_demo(dir: &Path) -> PathBuf {
    let project = dir.join("official-demo");
    let generate = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["compat", "--generate"])
        .arg(&project)
        .output()
        .unwrap();
    assert_success(&generate, "cargo xtask compat --generate");
    assert_eq!(
        fs::read(project.join("Cargo.lock")).unwrap(),
        fs::read(project_root().join("tests/official-demo/Cargo.lock")).unwrap(),
        "the recorded lock file pins the build"
    );
    fs::create_dir_all(project.join(".cargo")).unwrap();
    fs::copy(
        project_root().join("templates/cargo-config.toml"),
        project.join(".cargo/config.toml"),
    )
    .unwrap();
    project
}

/// A PATH whose `clang` logs each command line before running the real one, and whose
/// `hyperlight-cc` is the release's hyperlight-run, as installing links it.
struct CountedClang {
    bin: PathBuf,
    log: PathBuf,
}

impl CountedClang {
    fn new(dir: &Path) -> CountedClang {
        let bin = dir.join("counted-bin");
        fs::create_dir_all(&bin).unwrap();
        let real = std::env::split_paths(&std::env::var_os("PATH").unwrap())
            .map(|dir| dir.join("clang"))
            .find(|clang| clang.is_file())
            .expect("clang on PATH");
        let log = dir.join("clang.log");
        let script = format!(
            "#!/bin/sh\nprintf '%s\\n' \"$*\" >> '{}'\nexec '{}' \"$@\"\n",
            log.display(),
            real.display()
        );
        fs::write(bin.join("clang"), script).unwrap();
        fs::set_permissions(bin.join("clang"), fs::Permissions::from_mode(0o755)).unwrap();
        std::os::unix::fs::symlink(support::release_runner(), bin.join("hyperlight-cc")).unwrap();
        CountedClang { bin, log }
    }

    /// The command users run (the template's `[build] target` makes `--target` optional), with
    /// this PATH; the test's own environment must not stand in for the template's.
    fn cargo_build(&self, toolchain: &TempToolchain, project: &Path, extra: &[&str]) -> Output {
        let path = std::env::join_paths(
            std::iter::once(self.bin.clone())
                .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap())),
        )
        .unwrap();
        toolchain
            .command("cargo")
            .args(["build", "--target", TARGET])
            .args(extra)
            .current_dir(project)
            .env("PATH", path)
            .env_remove("RUSTC_BOOTSTRAP")
            .env_remove("RUSTC")
            // The template's rustc-wrapper (tested in self_heal.rs) is off: the target is in place.
            .env("RUSTC_WRAPPER", "")
            .output()
            .unwrap()
    }

    /// The picolibc sources clang compiled, in order.
    fn picolibc_compiles(&self) -> Vec<String> {
        let log = fs::read_to_string(&self.log).unwrap_or_default();
        log.lines()
            .filter_map(|line| {
                let (_, source) = line.rsplit_once(" -c ")?;
                source
                    .contains("/third_party/picolibc/")
                    .then(|| source.to_owned())
            })
            .collect()
    }
}

/// A static PIE for `architecture` entered at `entrypoint`, carrying the version note and
/// picolibc's code.
fn check_official_guest(path: &Path, architecture: object::Architecture) {
    let bytes = fs::read(path).unwrap();
    let elf = object::File::parse(&*bytes).unwrap();
    assert_eq!(elf.architecture(), architecture);
    assert_eq!(elf.kind(), object::ObjectKind::Dynamic, "a PIE");
    let entry = elf
        .symbols()
        .find(|s| s.name() == Ok("entrypoint"))
        .expect("an `entrypoint` symbol");
    assert_eq!(elf.entry(), entry.address());
    assert!(
        elf.symbols().any(|s| s.name() == Ok("_rand_next")),
        "picolibc (random.c) is linked in"
    );
    let note = elf
        .section_by_name(".note.hyperlight-version")
        .expect("the hyperlight version note")
        .data()
        .unwrap();
    assert_eq!(&note[12..23], b"Hyperlight\0");
    assert_eq!(&note[24..31], b"0.18.0\0");
}

/// The guest runtime's version, from guest/Cargo.toml.
fn runtime_version() -> String {
    let manifest = fs::read_to_string(project_root().join("guest/Cargo.toml")).unwrap();
    let line = manifest
        .lines()
        .find(|l| l.starts_with("version = "))
        .unwrap();
    line.split('"').nth(1).unwrap().to_owned()
}

/// `cargo build` and `cargo check` of tests/nostd-alloc set up with nothing but the README's
/// guest configuration (templates/cargo-config.toml). Returns a copy of the ELF.
fn build_plain(toolchain: &TempToolchain, target: &str) -> PathBuf {
    let project = TempDir::new("nostd-alloc");
    let source = project_root().join("tests/nostd-alloc");
    fs::create_dir_all(project.path().join("src")).unwrap();
    fs::create_dir_all(project.path().join(".cargo")).unwrap();
    fs::copy(source.join("Cargo.toml"), project.path().join("Cargo.toml")).unwrap();
    fs::copy(
        source.join("src/main.rs"),
        project.path().join("src/main.rs"),
    )
    .unwrap();
    fs::copy(
        project_root().join("templates/cargo-config.toml"),
        project.path().join(".cargo/config.toml"),
    )
    .unwrap();
    let cargo = |args: &[&str]| -> Output {
        toolchain
            .command("cargo")
            .args(args)
            .current_dir(project.path())
            // The template's rustc-wrapper (tested in self_heal.rs) is off: these builds test
            // the target as installed here.
            .env("RUSTC_WRAPPER", "")
            .output()
            .unwrap()
    };
    assert_success(&cargo(&["check", "--target", target]), "cargo check");
    let build = cargo(&["build", "--target", target]);
    assert_success(&build, "cargo build");
    assert!(
        !text(&build.stderr).contains("Compiling core"),
        "no -Zbuild-std: core comes prebuilt"
    );
    let elf = project
        .path()
        .join("target")
        .join(target)
        .join("debug/nostd-alloc");
    let kept = std::env::temp_dir().join(format!(
        "nostd-alloc-{}-{}",
        toolchain.name,
        std::process::id()
    ));
    fs::copy(&elf, &kept).unwrap();
    kept
}
