//! x86_64-hyperlight-hermit, the std target: its spec, its sysroot (std, test and the Hermit ABI
//! object), and `cargo xtask install --target` into a temporary toolchain, after which plain
//! `cargo build` of a std guest needs nothing else.

use std::collections::BTreeSet;
use std::fs;
use std::path::Path;
use std::process::Command;

mod support;

use object::{Object, ObjectSymbol};
use support::{check_static_pie_entry, text};
use testkit::{assert_success, pinned_toolchain, project_root, TempDir, TempToolchain, STD_TARGET};

const COMPONENT: &str = hyperlight_install::Target::Hermit.component();
use hyperlight_install::build::ABI_OBJECT;

fn spec(target: &str) -> serde_json::Value {
    let path = project_root().join(format!("target-specs/{target}.json"));
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

#[test]
fn spec_is_the_no_std_spec_plus_the_documented_overrides() {
    // The overrides, as documented in target-specs/README.md.
    let mut expected = spec(testkit::TARGET);
    let fields = expected.as_object_mut().unwrap();
    fields.insert("os".into(), "hermit".into());
    fields.insert("has-thread-local".into(), true.into());
    fields.insert("tls-model".into(), "initial-exec".into());
    fields.insert(
        "post-link-objects".into(),
        serde_json::json!({"dynamic-pic-exe": [ABI_OBJECT]}),
    );
    fields.insert(
        "metadata".into(),
        serde_json::json!({
            "description": "x86_64 Hyperlight guests with std (Hermit ABI)",
            "host_tools": false,
            "std": true,
            "tier": 3
        }),
    );
    assert_eq!(spec(STD_TARGET), expected);
}

/// The `sys_*` functions the pinned toolchain's hermit-abi declares (its `link_name`s).
fn hermit_abi_functions() -> BTreeSet<String> {
    let sysroot = Command::new("rustc")
        .args([&format!("+{}", pinned_toolchain()), "--print", "sysroot"])
        .output()
        .unwrap();
    let vendor =
        Path::new(text(&sysroot.stdout).trim()).join("lib/rustlib/src/rust/library/vendor");
    let crate_dir = fs::read_dir(&vendor)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .find(|path| {
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("hermit-abi-")
        })
        .expect("rust-src vendors hermit-abi");
    let source = fs::read_to_string(crate_dir.join("src/lib.rs")).unwrap();
    source
        .split("link_name = \"")
        .skip(1)
        .map(|rest| rest.split('"').next().unwrap().to_owned())
        .collect()
}

#[test]
fn the_sysroot_has_std_test_and_defines_every_hermit_abi_function() {
    let lib = testkit::std_sysroot()
        .join("lib/rustlib")
        .join(STD_TARGET)
        .join("lib");
    let names: Vec<String> = fs::read_dir(&lib)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .collect();
    for krate in [
        "core",
        "alloc",
        "std",
        "panic_abort",
        "test",
        "getopts",
        "hermit_abi",
    ] {
        for extension in ["rlib", "rmeta"] {
            let prefix = format!("lib{krate}-");
            let found = names
                .iter()
                .any(|name| name.starts_with(&prefix) && name.ends_with(extension));
            assert!(found, "no lib{krate}-*.{extension} in {names:?}");
        }
    }

    let object = fs::read(lib.join(ABI_OBJECT)).unwrap();
    let object = object::File::parse(&*object).unwrap();
    let defined: BTreeSet<String> = object
        .symbols()
        .filter(|symbol| symbol.is_global() && symbol.is_definition())
        .map(|symbol| symbol.name().unwrap().to_owned())
        .filter(|name| name.starts_with("sys_"))
        .collect();
    let declared = hermit_abi_functions();
    assert!(declared.len() > 70, "{declared:?}");
    let missing: Vec<_> = declared.difference(&defined).collect();
    assert!(
        missing.is_empty(),
        "the Hermit ABI object lacks {missing:?}"
    );
    let entry = object.symbols().find(|s| s.name() == Ok("entrypoint"));
    assert!(entry.is_some_and(|s| s.is_definition()), "no entrypoint");
    let runtime_entry = object.symbols().find(|s| s.name() == Ok("runtime_entry"));
    assert!(
        runtime_entry.is_some_and(|s| s.is_undefined()),
        "std's start is not called"
    );
}

/// Installs the target into a temporary toolchain with `cargo xtask install --target`, builds a
/// std guest there with plain cargo and nothing but the installed target and
/// templates/cargo-config-std.toml, then uninstalls back to the exact previous tree.
#[test]
fn install_then_plain_cargo_build_of_a_std_guest() {
    let toolchain = TempToolchain::copy_of(&pinned_toolchain(), true);
    let rustlib = toolchain.sysroot().join("lib/rustlib");
    let before = testkit::file_contents(&rustlib);
    let bin = TempDir::new("bin");
    let xtask = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(args)
            .args(["--toolchain", &toolchain.name, "--target", STD_TARGET])
            .env("RUSTUP_HOME", toolchain.rustup_home())
            .env("CARGO_HOME", toolchain.cargo_home())
            .env("CARGO_INSTALL_ROOT", bin.path())
            .output()
            .unwrap()
    };
    let output = xtask(&["install", "--no-runner"]);
    assert_success(
        &output,
        "cargo xtask install --target x86_64-hyperlight-hermit",
    );
    let sysroot = toolchain.sysroot();
    assert!(
        text(&output.stderr).contains(&format!(
            "installed {STD_TARGET} into {}",
            sysroot.display()
        )),
        "{}",
        text(&output.stderr)
    );
    let manifest = fs::read_to_string(rustlib.join(format!("manifest-{COMPONENT}"))).unwrap();
    let abi = format!("file:lib/rustlib/{STD_TARGET}/lib/{ABI_OBJECT}");
    assert!(manifest.lines().any(|line| line == abi), "{manifest}");
    let components = fs::read_to_string(rustlib.join("components")).unwrap();
    assert_eq!(components.lines().filter(|c| *c == COMPONENT).count(), 1);
    // std guests do not depend on the runtime, so nothing is registered in the cargo home.
    assert!(!toolchain.cargo_home().join("config.toml").exists());

    let project = TempDir::new("std-guest");
    fs::create_dir_all(project.path().join(".cargo")).unwrap();
    fs::create_dir_all(project.path().join("src")).unwrap();
    fs::write(
        project.path().join("Cargo.toml"),
        "[package]\nname = \"std-guest\"\nversion = \"0.1.0\"\nedition = \"2021\"\n",
    )
    .unwrap();
    let main = "fn main() {\n    let v: Vec<String> = std::env::args().collect();\n    println!(\"{v:?}\");\n}\n";
    fs::write(project.path().join("src/main.rs"), main).unwrap();
    fs::copy(
        project_root().join("templates/cargo-config-std.toml"),
        project.path().join(".cargo/config.toml"),
    )
    .unwrap();
    // The guest config's rustc-wrapper: the release's hyperlight-run, not the developer's.
    let runner_dir = bin.path().join("bin");
    fs::create_dir_all(&runner_dir).unwrap();
    fs::copy(support::release_runner(), runner_dir.join("hyperlight-run")).unwrap();
    let path = format!(
        "{}:{}",
        runner_dir.display(),
        std::env::var("PATH").unwrap()
    );
    let build = toolchain
        .command("cargo")
        .args(["build", "--target", STD_TARGET])
        .current_dir(project.path())
        .env("PATH", path)
        .env_remove("RUSTC_WRAPPER")
        .output()
        .unwrap();
    assert_success(&build, "cargo build --target x86_64-hyperlight-hermit");
    let elf = project
        .path()
        .join("target")
        .join(STD_TARGET)
        .join("debug/std-guest");
    check_static_pie_entry(&elf, object::Architecture::X86_64);

    let output = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["uninstall", "--toolchain", &toolchain.name])
        .env("RUSTUP_HOME", toolchain.rustup_home())
        .env("CARGO_HOME", toolchain.cargo_home())
        .env("CARGO_INSTALL_ROOT", bin.path())
        .output()
        .unwrap();
    assert_success(&output, "cargo xtask uninstall");
    assert!(
        text(&output.stderr).contains(&format!("removed {STD_TARGET} from {}", sysroot.display())),
        "{}",
        text(&output.stderr)
    );
    assert!(
        testkit::file_contents(&rustlib) == before,
        "uninstall left the toolchain different from before the install"
    );
}
