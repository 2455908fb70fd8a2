//! `hyperlight-run new` and `hyperlight-run doctor`, against temporary toolchains (the
//! developer's own are never changed) and the real KVM.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use hyperlight_install::runtime;
use testkit::{pinned_toolchain, TempDir, TempToolchain, AARCH64_TARGET, STD_TARGET, TARGET};

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// PATH with the hyperlight-run under test first, as `cargo xtask install` would arrange.
fn path_with_runner() -> std::ffi::OsString {
    let runner_dir = Path::new(env!("CARGO_BIN_EXE_hyperlight-run"))
        .parent()
        .unwrap()
        .to_path_buf();
    let rest = std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())
        .collect::<Vec<PathBuf>>();
    std::env::join_paths(std::iter::once(runner_dir).chain(rest)).unwrap()
}

/// `program` in the temporary RUSTUP_HOME, choosing toolchains as a user's shell would.
fn in_home(program: &str, toolchain: &TempToolchain, dir: &Path) -> Command {
    let mut command = Command::new(program);
    command
        .current_dir(dir)
        .env("RUSTUP_HOME", toolchain.rustup_home())
        .env("CARGO_HOME", toolchain.cargo_home())
        .env("PATH", path_with_runner())
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .env_remove("HYPERLIGHT_KVM_DEVICE");
    command
}

/// A temporary toolchain with the target as an install leaves it: its directory in the
/// sysroot, and the runtime registered in the toolchain's own cargo home.
fn installed_toolchain(with_rust_src: bool) -> TempToolchain {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), with_rust_src);
    toolchain.add_target_from(testkit::sysroot());
    let target_dir = toolchain.sysroot().join("lib/rustlib").join(TARGET);
    runtime::register_in(toolchain.cargo_home(), &target_dir).unwrap();
    toolchain
}

fn new_project(toolchain: &TempToolchain, parent: &Path, name: &str) -> PathBuf {
    new_project_with(toolchain, parent, name, &[])
}

fn new_project_with(
    toolchain: &TempToolchain,
    parent: &Path,
    name: &str,
    options: &[&str],
) -> PathBuf {
    let output = in_home(env!("CARGO_BIN_EXE_hyperlight-run"), toolchain, parent)
        .env("RUSTUP_TOOLCHAIN", &toolchain.name)
        .args(["new", name])
        .args(options)
        .output()
        .unwrap();
    testkit::assert_success(&output, "hyperlight-run new");
    assert!(text(&output.stdout).starts_with(&format!(
        "Created guest `{name}` in {name} (toolchain {})",
        toolchain.name
    )));
    parent.join(name)
}

#[test]
fn a_new_project_runs_and_tests_as_created_and_doctor_is_happy() {
    testkit::require_kvm!();
    let toolchain = installed_toolchain(false);
    let parent = TempDir::new("new");
    let project = new_project(&toolchain, parent.path(), "my-guest");
    for file in [
        "Cargo.toml",
        "src/main.rs",
        ".cargo/config.toml",
        "rust-toolchain.toml",
        ".gitignore",
    ] {
        assert!(project.join(file).is_file(), "{file}");
    }
    assert_eq!(
        fs::read_to_string(project.join("rust-toolchain.toml"))
            .unwrap()
            .lines()
            .last()
            .unwrap(),
        format!("channel = \"{}\"", toolchain.name)
    );

    // Its test takes the runtime's test attribute, whose proc-macro crate the install serves.
    let main_rs = fs::read_to_string(project.join("src/main.rs")).unwrap();
    assert!(
        main_rs.contains("    #[hyperlight_rt::test]\n    fn greets() {"),
        "{main_rs}"
    );
    runs_and_tests(&toolchain, &project, "Hello from my-guest!\n");

    let doctor = in_home(env!("CARGO_BIN_EXE_hyperlight-run"), &toolchain, &project)
        .arg("doctor")
        .output()
        .unwrap();
    let report = text(&doctor.stdout);
    assert_eq!(doctor.status.code(), Some(0), "{report}");
    // x86_64-hyperlight-hermit and aarch64-hyperlight-none are not installed: warnings, as only
    // std guests and AArch64 guests need them.
    let other_targets = [STD_TARGET, AARCH64_TARGET]
        .map(|target| format!("warn  {target} for toolchain {} (", toolchain.name));
    assert!(
        report.lines().all(|line| line.starts_with("ok  ")
            || line.starts_with("warn  clang")
            || other_targets
                .iter()
                .any(|warning| line.starts_with(warning))),
        "{report}"
    );
    assert!(
        report.contains("not installed (only AArch64 guests need it); install it: `hyperlight-run target add aarch64-hyperlight-none"),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "not installed (only std guests need it); install it: `hyperlight-run target add \
             x86_64-hyperlight-hermit --toolchain {}` (a guest build through the guest config's \
             rustc-wrapper does it too), or `cargo xtask install --toolchain {} --target \
             x86_64-hyperlight-hermit` in a clone of the project",
            toolchain.name, toolchain.name
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "x86_64-hyperlight-none for toolchain {} (",
            toolchain.name
        )),
        "{report}"
    );
    assert!(
        report.contains("guest project ")
            && report.contains("its cargo config sets the target, the runner and the flags"),
        "{report}"
    );
}

/// `new --std`: a std guest for x86_64-hyperlight-hermit, with plain `fn main` and `#[test]`,
/// that builds, runs and tests as created in a toolchain with only that target; doctor checks
/// that target and the std guest config.
#[test]
fn a_new_std_project_runs_and_tests_as_created_and_doctor_is_happy() {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    toolchain.add_named_target_from(STD_TARGET, testkit::std_sysroot());
    let parent = TempDir::new("new-std");
    let project = new_project_with(&toolchain, parent.path(), "my-std-guest", &["--std"]);
    assert_eq!(
        fs::read_to_string(project.join(".cargo/config.toml")).unwrap(),
        fs::read_to_string(testkit::project_root().join("templates/cargo-config-std.toml"))
            .unwrap()
    );
    assert!(fs::read_to_string(project.join("src/main.rs"))
        .unwrap()
        .starts_with("fn main() {"));

    let doctor = in_home(env!("CARGO_BIN_EXE_hyperlight-run"), &toolchain, &project)
        .arg("doctor")
        .output()
        .unwrap();
    let report = text(&doctor.stdout);
    let kvm_ok = testkit::kvm_unavailable().is_none();
    assert_eq!(
        doctor.status.code(),
        Some(if kvm_ok { 0 } else { 1 }),
        "{report}"
    );
    for line in [
        format!("ok    {STD_TARGET} for toolchain {} (", toolchain.name),
        format!("warn  {TARGET} for toolchain {} (", toolchain.name),
    ] {
        assert!(report.contains(&line), "{line} in:\n{report}");
    }
    assert!(
        report.contains("its cargo config sets the target, the runner and the flags"),
        "{report}"
    );

    if !testkit::kvm_or_skip("a_new_std_project_runs_and_tests_as_created: booting it") {
        return;
    }
    runs_and_tests(&toolchain, &project, "Hello from my-std-guest!\n");
}

/// `cargo run` in a project `new` made prints `hello`, and `cargo test` passes its one test.
fn runs_and_tests(toolchain: &TempToolchain, project: &Path, hello: &str) {
    let run = in_home("cargo", toolchain, project)
        .args(["run", "--quiet"])
        .output()
        .unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), hello);
    // Without --quiet, which gives libtest's terse report: the test's own line.
    let test = in_home("cargo", toolchain, project)
        .arg("test")
        .output()
        .unwrap();
    let report = format!("{}{}", text(&test.stdout), text(&test.stderr));
    assert_eq!(test.status.code(), Some(0), "{report}");
    assert!(
        report.contains("\ntest tests::greets ... ok\n")
            && report.contains("test result: ok. 1 passed; 0 failed;"),
        "{report}"
    );
}

/// A project made by `new` names no path of the machine it was made on: copied to another
/// machine (another HOME, RUSTUP_HOME and CARGO_HOME) that has the target installed, it
/// builds offline as it is, rust-analyzer resolves the runtime in it, and with KVM it runs and
/// tests.
#[test]
fn a_new_project_works_unchanged_on_another_machine() {
    let (machine_a, home_a) = (installed_toolchain(false), TempDir::new("home-a"));
    let parent_a = TempDir::new("new-on-a");
    let output = in_home(
        env!("CARGO_BIN_EXE_hyperlight-run"),
        &machine_a,
        parent_a.path(),
    )
    .env("HOME", home_a.path())
    .env("RUSTUP_TOOLCHAIN", &machine_a.name)
    .args(["new", "my-guest"])
    .output()
    .unwrap();
    testkit::assert_success(&output, "hyperlight-run new");
    let made = parent_a.path().join("my-guest");
    let (temp, real_home) = (
        std::env::temp_dir(),
        PathBuf::from(std::env::var_os("HOME").unwrap()),
    );
    let machine_paths = [
        machine_a.rustup_home(),
        machine_a.cargo_home(),
        home_a.path(),
        parent_a.path(),
        &temp,
        &real_home,
        &testkit::project_root(),
    ];
    assert_names_no_path(&made, &machine_paths);

    let (machine_b, home_b) = (installed_toolchain(true), TempDir::new("home-b"));
    let parent_b = TempDir::new("cloned-on-b");
    let project = parent_b.path().join("my-guest");
    testkit::copy_tree(&made, &project);
    drop((machine_a, home_a, parent_a));
    let on_b = |program: &str| {
        let mut command = in_home(program, &machine_b, &project);
        command
            .env("HOME", home_b.path())
            .env("CARGO_NET_OFFLINE", "true");
        command
    };

    let build = on_b("cargo").arg("build").output().unwrap();
    testkit::assert_success(&build, "cargo build on machine B");
    let compiling = format!(
        "Compiling hyperlight-rt v{} (registry `{}`)",
        hyperlight_rt::VERSION,
        runtime::REGISTRY
    );
    assert!(
        text(&build.stderr).contains(&compiling),
        "{}",
        text(&build.stderr)
    );
    // From machine B's copy.
    let metadata = on_b("cargo")
        .args(["metadata", "--format-version", "1"])
        .output()
        .unwrap();
    testkit::assert_success(&metadata, "cargo metadata on machine B");
    let installed = runtime::sources_dir(machine_b.cargo_home()).join(format!(
        "hyperlight-rt-{}/Cargo.toml",
        hyperlight_rt::VERSION
    ));
    let manifest_path = format!("\"manifest_path\":\"{}\"", installed.display());
    assert!(
        text(&metadata.stdout).contains(&manifest_path),
        "{}",
        text(&metadata.stdout)
    );
    // The lock file names the runtime's source, and its proc-macro crate's, by the registry's
    // URL only, so it travels too.
    let lock = fs::read_to_string(project.join("Cargo.lock")).unwrap();
    let entry = format!(
        "[[package]]\nname = \"hyperlight-rt\"\nversion = \"{version}\"\nsource = \"{index}\"\n\
         dependencies = [\n \"hyperlight-rt-macros\",\n]\n\n\
         [[package]]\nname = \"hyperlight-rt-macros\"\nversion = \"{version}\"\nsource = \"{index}\"\n",
        version = hyperlight_rt::VERSION,
        index = runtime::INDEX
    );
    let machine_b_paths = [
        machine_b.cargo_home(),
        machine_b.rustup_home(),
        home_b.path(),
    ];
    assert!(
        lock.contains(&entry)
            && !machine_b_paths
                .iter()
                .any(|p| lock.contains(p.to_str().unwrap())),
        "{lock}"
    );

    // rust-analyzer where rustup's component puts it, run through rustup's proxy as an editor
    // would.
    let (analyzer, dest) = (
        testkit::rust_analyzer(),
        machine_b.sysroot().join("bin/rust-analyzer"),
    );
    fs::hard_link(&analyzer, &dest)
        .or_else(|_| fs::copy(&analyzer, &dest).map(drop))
        .unwrap();
    // Only `main`: its `println!` is the runtime's. Unresolved, it stays a single expression;
    // resolved, it expands into some twenty, none of unknown type.
    let stats = on_b("rust-analyzer")
        .args(["analysis-stats", ".", "--only", "main"])
        .output()
        .unwrap();
    // The statistics go to stderr (stdout has the progress bars).
    let report = text(&stats.stderr);
    assert_eq!(stats.status.code(), Some(0), "{report}");
    // The guest alone is analysed: the runtime comes from a registry, a library to it.
    assert!(report.contains(" crates: 1, "), "{report}");
    let count = |line: &str, key: &str| -> usize {
        let value = line
            .split(key)
            .nth(1)
            .unwrap()
            .split([',', ' '])
            .next()
            .unwrap();
        value.parse().unwrap()
    };
    let exprs = report.lines().find(|l| l.contains(" exprs: ")).unwrap();
    assert!(
        count(exprs, " exprs: ") >= 10 && count(exprs, " ??ty: ") == 0,
        "{exprs}"
    );

    if !testkit::kvm_or_skip("a_new_project_works_unchanged_on_another_machine (run, test)") {
        return;
    }
    let run = on_b("cargo").args(["run", "--quiet"]).output().unwrap();
    assert_eq!(run.status.code(), Some(0), "{}", text(&run.stderr));
    assert_eq!(text(&run.stdout), "Hello from my-guest!\n");
    let test = on_b("cargo").args(["test", "--quiet"]).output().unwrap();
    assert_eq!(test.status.code(), Some(0), "{}", text(&test.stderr));
    assert!(
        text(&test.stdout).contains("test result: ok. 1 passed; 0 failed;"),
        "{}",
        text(&test.stdout)
    );
}

/// Fails naming the file and the path if a file below `dir` contains any of `paths`.
fn assert_names_no_path(dir: &Path, paths: &[&Path]) {
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_names_no_path(&path, paths);
            continue;
        }
        let contents = fs::read_to_string(&path).unwrap();
        for machine_path in paths {
            let machine_path = machine_path.to_str().unwrap();
            assert!(
                !contents.contains(machine_path),
                "{} names {machine_path}:\n{contents}",
                path.display()
            );
        }
    }
}

#[test]
fn new_refuses_an_existing_directory() {
    let parent = TempDir::new("new-exists");
    let existing = parent.path().join("taken");
    fs::create_dir(&existing).unwrap();
    fs::write(existing.join("keep.txt"), "mine").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hyperlight-run"))
        .arg("new")
        .arg(&existing)
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert_eq!(
        text(&output.stderr),
        format!(
            "hyperlight-run: error: {} already exists; `new` only creates a new directory\n",
            existing.display()
        )
    );
    assert_eq!(fs::read_dir(&existing).unwrap().count(), 1);
}

#[test]
fn doctor_names_a_missing_target_and_its_fix() {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), false);
    let dir = TempDir::new("doctor-no-target");
    let output = in_home(env!("CARGO_BIN_EXE_hyperlight-run"), &toolchain, dir.path())
        .args(["doctor", "--toolchain", &toolchain.name])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    let expected = format!(
        "FAIL  x86_64-hyperlight-none for toolchain {name} ({release}): not installed; install it: \
         `hyperlight-run target add --toolchain {name}` (a guest build through the guest config's \
         rustc-wrapper does it too), or `cargo xtask install --toolchain {name}` in a clone of the \
         project\n",
        name = toolchain.name,
        release = release_and_commit(),
    );
    assert!(
        text(&output.stdout).contains(&expected),
        "{}",
        text(&output.stdout)
    );
}

/// The runtime's registry in the cargo config: complete, then with its copy of the runtime
/// gone, then missing.
#[test]
fn doctor_checks_the_runtime_registry_and_names_the_fix() {
    let toolchain = installed_toolchain(false);
    let dir = TempDir::new("doctor-runtime");
    let doctor = || -> String {
        let output = in_home(env!("CARGO_BIN_EXE_hyperlight-run"), &toolchain, dir.path())
            .args(["doctor", "--toolchain", &toolchain.name])
            .output()
            .unwrap();
        let report = text(&output.stdout);
        let line = report.lines().find(|l| l.contains("  runtime crates: "));
        line.unwrap_or_else(|| panic!("{report}")).to_owned()
    };
    let config = toolchain.cargo_home().join("config.toml");
    let sources = runtime::sources_dir(toolchain.cargo_home());
    let version = hyperlight_rt::VERSION;
    assert_eq!(
        doctor(),
        format!(
            "ok    runtime crates: registry `hyperlight` in {} serves hyperlight-rt {version}, \
             hyperlight-rt-macros {version}",
            config.display(),
        )
    );
    let fix = format!(
        "(in {}), so guest projects cannot resolve their `registry = \"hyperlight\"` \
         dependencies; installing the target writes these, so install it: `hyperlight-run target \
         add --toolchain {name}` (a guest build through the guest config's rustc-wrapper does it \
         too), or `cargo xtask install --toolchain {name}` in a clone of the project",
        config.display(),
        name = toolchain.name
    );

    fs::remove_dir_all(sources.join(format!("hyperlight-rt-{version}"))).unwrap();
    assert_eq!(
        doctor(),
        format!(
            "FAIL  runtime crates: {} has no hyperlight-rt-{version} {fix}",
            sources.display()
        )
    );

    runtime::unregister_in(toolchain.cargo_home()).unwrap();
    assert_eq!(
        doctor(),
        format!(
            "FAIL  runtime crates: [registries.hyperlight] is missing; \
             [source.hyperlight-registry] is missing; [source.hyperlight-installed] is missing \
             {fix}"
        )
    );
}

fn release_and_commit() -> String {
    let field = |key| testkit::rustc_field(&pinned_toolchain(), key);
    format!("{} ({})", field("release"), field("commit-hash"))
}

#[test]
fn doctor_names_a_missing_kvm_and_an_unopenable_one() {
    let dir = TempDir::new("doctor-kvm");
    let doctor = |device: &Path, as_nobody: bool| -> Output {
        let mut command = if as_nobody {
            let mut setpriv = Command::new("setpriv");
            setpriv
                .args(["--reuid=65534", "--regid=65534", "--clear-groups"])
                .arg(env!("CARGO_BIN_EXE_hyperlight-run"));
            setpriv
        } else {
            Command::new(env!("CARGO_BIN_EXE_hyperlight-run"))
        };
        command
            .arg("doctor")
            .current_dir(dir.path())
            .env("HYPERLIGHT_KVM_DEVICE", device)
            .output()
            .unwrap()
    };
    let missing = dir.path().join("no-kvm-here");
    let output = doctor(&missing, false);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        text(&output.stdout).starts_with(&format!(
        "FAIL  KVM: {} does not exist: KVM is not available here; enable hardware virtualization",
        missing.display()
    )),
        "{}",
        text(&output.stdout)
    );

    // Permission denied: root opens any file, so as root the check runs as `nobody`; against
    // the real device (crw------- root) where there is one, else against a file nobody may open.
    // SAFETY: geteuid has no preconditions.
    let is_root = unsafe { libc::geteuid() } == 0;
    let device = if is_root && Path::new("/dev/kvm").exists() {
        PathBuf::from("/dev/kvm")
    } else {
        let locked = dir.path().join("locked-kvm");
        fs::write(&locked, "").unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(
            &mut fs::metadata(&locked).unwrap().permissions(),
            0,
        );
        fs::set_permissions(&locked, std::os::unix::fs::PermissionsExt::from_mode(0o000)).unwrap();
        locked
    };
    let output = doctor(&device, is_root);
    assert_eq!(output.status.code(), Some(1), "{}", text(&output.stderr));
    assert!(text(&output.stdout).starts_with(&format!(
        "FAIL  KVM: permission denied opening {}: add your user to the `kvm` group (`sudo usermod -aG kvm $USER`, then log in again)\n",
        device.display()
    )), "{}", text(&output.stdout));
}

#[test]
fn doctor_names_a_missing_guest_config_and_its_fix() {
    let project = TempDir::new("doctor-config");
    let doctor = || -> String {
        let output = Command::new(env!("CARGO_BIN_EXE_hyperlight-run"))
            .arg("doctor")
            .current_dir(project.path())
            .output()
            .unwrap();
        assert_eq!(output.status.code(), Some(1));
        text(&output.stdout)
    };
    fs::write(
        project.path().join("Cargo.toml"),
        "[package]\nname = \"bare\"\nversion = \"0.1.0\"\n",
    )
    .unwrap();
    let expected = format!(
        "FAIL  guest project {}: no .cargo/config.toml; put the README's guest configuration (templates/cargo-config.toml) into .cargo/config.toml\n",
        project.path().display()
    );
    let report = doctor();
    assert!(report.contains(&expected), "{report}");

    fs::create_dir(project.path().join(".cargo")).unwrap();
    fs::write(
        project.path().join(".cargo/config.toml"),
        "[build]\ntarget = \"x86_64-hyperlight-none\"\n",
    )
    .unwrap();
    let report = doctor();
    assert!(report.contains("its cargo config lacks runner = \"hyperlight-run\", rustflags with -Zunstable-options, [env] RUSTC_BOOTSTRAP = \"1\" (stable toolchains);"), "{report}");
}

#[test]
fn doctor_names_a_missing_c_tool_and_its_fix() {
    // A PATH with clang but without llvm-ar: the guest config archives C code with llvm-ar.
    let tools = TempDir::new("doctor-c-tools");
    fs::write(tools.path().join("clang"), "").unwrap();
    let output = Command::new(env!("CARGO_BIN_EXE_hyperlight-run"))
        .arg("doctor")
        .current_dir(tools.path())
        .env("PATH", tools.path())
        .output()
        .unwrap();
    assert!(
        text(&output.stdout).contains(
            "\nwarn  clang, llvm-ar: llvm-ar not found; only guests with C code need them \
             (official Hyperlight guests do): `sudo apt-get install clang llvm`\n"
        ),
        "{}",
        text(&output.stdout)
    );
}
