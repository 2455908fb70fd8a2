//! `hyperlight-run target add|remove|list`, rustup-style, and `hyperlight-run init`, the
//! installer that install.sh downloads, checks and hands over to (with install.sh's flags and
//! exit codes).

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use hyperlight_install::add::{self, Installed, Release};
use hyperlight_install::error::InstallError;
use hyperlight_install::manifest::sha256_hex;
use hyperlight_install::runner::{bin_dir, Removal, RUNNER};
use hyperlight_install::settings::{self, Settings};
use hyperlight_install::toolchain::{Selector, Toolchain};
use hyperlight_install::ui::Ui;
use hyperlight_install::{transaction, Target};

#[derive(Subcommand)]
pub enum TargetCommand {
    /// Install targets for a toolchain (default: the one active here).
    Add {
        /// The targets to install: x86_64-hyperlight-none (the default), x86_64-hyperlight-hermit,
        /// aarch64-hyperlight-none.
        #[arg(value_name = "TARGET")]
        targets: Vec<Target>,
        #[command(flatten)]
        toolchain: ToolchainArg,
        #[command(flatten)]
        source: SourceArgs,
        /// Only messages about problems.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Remove targets from a toolchain.
    Remove {
        /// The targets to remove (default: x86_64-hyperlight-none).
        #[arg(value_name = "TARGET")]
        targets: Vec<Target>,
        #[command(flatten)]
        toolchain: ToolchainArg,
    },
    /// List rustup's toolchains: whether each has x86_64-hyperlight-none (and which other
    /// targets), and whether they were built by that toolchain's exact rustc.
    List,
}

#[derive(Args)]
pub struct ToolchainArg {
    /// A rustup toolchain (default: the rustc on PATH, or $RUSTC, as selected here:
    /// rust-toolchain.toml counts).
    #[arg(long, value_name = "T")]
    toolchain: Option<String>,
}

#[derive(Args)]
pub struct SourceArgs {
    /// Where manifest.json and the sysroots are (default: $HYPERLIGHT_DIST_SERVER, else the
    /// server of the last install, else the project's releases).
    #[arg(long, value_name = "URL")]
    dist_server: Option<String>,
    /// Do not build the sysroot locally when the release has none for this rustc (exit 5).
    #[arg(long)]
    no_build: bool,
}

/// install.sh's command line, which it passes on unchanged.
#[derive(clap::Args)]
#[command(
    about = "Install the x86_64-hyperlight-none target (prebuilt core/alloc) and hyperlight-run; \
             x86_64-hyperlight-hermit (prebuilt std) on request",
    after_help = INIT_AFTER_HELP,
    disable_version_flag = true
)]
pub struct InitArgs {
    /// Do not ask for confirmation.
    #[arg(short = 'y')]
    yes: bool,
    /// Quiet: no progress bars, only warnings and errors.
    #[arg(short = 'q')]
    quiet: bool,
    /// A target to install; repeat for several: x86_64-hyperlight-none (the default),
    /// x86_64-hyperlight-hermit, aarch64-hyperlight-none. With --uninstall, a target to remove
    /// (default: all).
    #[arg(long = "target", value_name = "TARGET")]
    targets: Vec<Target>,
    #[command(flatten)]
    toolchain: ToolchainArg,
    #[command(flatten)]
    source: SourceArgs,
    /// Do not install or update hyperlight-run.
    #[arg(long)]
    no_runner: bool,
    /// Remove what this installer installed (the runner too, unless a toolchain still has one
    /// of the targets).
    #[arg(long)]
    uninstall: bool,
}

const INIT_AFTER_HELP: &str = "\
Environment:
  HYPERLIGHT_DIST_SERVER   default for --dist-server
  RUSTC                    the rustc to install for when --toolchain is not given
  CARGO_INSTALL_ROOT, CARGO_HOME
                           hyperlight-run goes to $CARGO_INSTALL_ROOT/bin, else $CARGO_HOME/bin,
                           else ~/.cargo/bin (as with cargo install)

Exit codes:
  0  installed, already installed, or uninstalled
  1  unexpected failure
  2  bad usage, or confirmation needed without a terminal (pass -y)
  3  unsupported platform (only x86-64 Linux) or a required command missing
  4  no usable rustc/toolchain, or its sysroot is not writable
  5  no prebuilt sysroot for this exact rustc, with --no-build
  6  download failed (HTTP error, network error, truncated file)
  7  verification failed (sha256 mismatch, malformed manifest or archive)
  8  writing into the toolchain or the bin directory failed
In every failing case the toolchain is left as it was.";

pub fn run(command: TargetCommand) -> i32 {
    let result = match command {
        TargetCommand::Add {
            targets,
            toolchain,
            source,
            quiet,
        } => target_add(
            &Target::or_default(targets),
            &toolchain,
            &source,
            &Ui::new(quiet),
        ),
        TargetCommand::Remove { targets, toolchain } => {
            target_remove(&Target::or_default(targets), &toolchain)
        }
        TargetCommand::List => target_list(),
    };
    finish(result)
}

pub fn init(args: InitArgs) -> i32 {
    let ui = Ui::new(args.quiet);
    let result = if args.uninstall {
        uninstall(&args, &ui)
    } else {
        install(&args, &ui)
    };
    ui.done();
    finish(result)
}

fn finish(result: Result<(), InstallError>) -> i32 {
    match result {
        Ok(()) => 0,
        Err(InstallError::Declined) => {
            eprintln!("info: nothing installed");
            0
        }
        Err(err) => {
            let _ = writeln!(std::io::stderr(), "error: {err}");
            err.exit_code()
        }
    }
}

/// `hyperlight-run target add` for `target`, as messages name it (the default target unnamed).
pub fn add_command(target: Target) -> String {
    match target {
        Target::None => "hyperlight-run target add".to_owned(),
        other => format!("hyperlight-run target add {other}"),
    }
}

fn target_add(
    targets: &[Target],
    arg: &ToolchainArg,
    source: &SourceArgs,
    ui: &Ui,
) -> Result<(), InstallError> {
    let toolchain = find_toolchain(arg)?;
    let server = dist_server(source);
    warn_if_plain_http(&server, ui)?;
    let release = Release::fetch(&server, ui)?;
    add_targets(targets, &toolchain, &release, source.no_build, ui, &|_| {
        Ok(())
    })?;
    remember(&server, ui);
    Ok(())
}

/// Installs `targets` one after the other, reporting each.
fn add_targets(
    targets: &[Target],
    toolchain: &Toolchain,
    release: &Release,
    no_build: bool,
    ui: &Ui,
    confirm: add::Confirm,
) -> Result<(), InstallError> {
    for &target in targets {
        let options = add::Options {
            toolchain,
            target,
            release,
            no_build,
        };
        let installed = add::add(&options, ui, confirm)?;
        ui.done();
        report(&installed, toolchain, target, ui);
    }
    Ok(())
}

fn target_remove(targets: &[Target], arg: &ToolchainArg) -> Result<(), InstallError> {
    let toolchain = find_toolchain(arg)?;
    let sysroot = toolchain.sysroot.display();
    for &target in targets {
        if transaction::uninstall(&toolchain.sysroot, target)? {
            eprintln!("info: removed {target} from {sysroot}");
        } else {
            eprintln!("info: {target} is not installed in {sysroot}");
        }
    }
    Ok(())
}

fn target_list() -> Result<(), InstallError> {
    let Some(home) = hyperlight_install::runner::rustup_home() else {
        return Err(InstallError::Toolchain(
            "neither RUSTUP_HOME nor HOME is set: no rustup toolchains to list".to_owned(),
        ));
    };
    let dir = home.join("toolchains");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .map_err(|err| InstallError::Toolchain(format!("cannot read {}: {err}", dir.display())))?
        .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
        .collect();
    names.sort();
    let width = names.iter().map(String::len).max().unwrap_or(0);
    let mut out = std::io::stdout().lock();
    for name in names {
        let sysroot = dir.join(&name);
        let _ = writeln!(
            out,
            "{name:width$}  {}",
            list_status(&sysroot, Target::None)
        );
        // The other targets are installed on request: listed when they are.
        for target in Target::ALL.into_iter().filter(|&t| t != Target::None) {
            if target.dir(&sysroot).exists() {
                let status = list_status(&sysroot, target);
                let _ = writeln!(out, "{:width$}  {target}: {status}", "");
            }
        }
    }
    Ok(())
}

/// Whether `target` is installed in `sysroot`, and for which rustc, for `target list`.
fn list_status(sysroot: &Path, target: Target) -> String {
    let recorded = std::fs::read_to_string(target.dir(sysroot).join("rustc-version"));
    let Ok(recorded) = recorded else {
        return "not installed".to_owned();
    };
    match Toolchain::find(Selector::Rustc(sysroot.join("bin/rustc"))) {
        Err(err) => format!("installed; its rustc does not run ({err:#})"),
        Ok(toolchain) if toolchain.version.verbose == recorded => {
            format!("installed (rustc {})", toolchain.version)
        }
        Ok(toolchain) => {
            let built_by = hyperlight_install::rustc::RustcVersion::parse(&recorded)
                .map_or_else(|_| "an unknown rustc".to_owned(), |v| format!("rustc {v}"));
            format!(
                "installed for {built_by}, not this toolchain's rustc {}: the next guest build \
                 reinstalls it, or run `{} --toolchain {}`",
                toolchain.version,
                add_command(target),
                sysroot.file_name().unwrap_or_default().to_string_lossy()
            )
        }
    }
}

fn install(args: &InitArgs, ui: &Ui) -> Result<(), InstallError> {
    let toolchain = find_toolchain(&args.toolchain)?;
    let server = dist_server(&args.source);
    warn_if_plain_http(&server, ui)?;
    let runner_dir = bin_dir()?;
    if !args.no_runner {
        // Before the toolchain changes: a failure must leave everything as it was.
        check_writable_dir(&runner_dir)?;
    }
    let release = Release::fetch(&server, ui)?;
    let confirm = |plan: &str| confirm(args.yes, plan);
    let targets = Target::or_default(args.targets.clone());
    add_targets(
        &targets,
        &toolchain,
        &release,
        args.source.no_build,
        ui,
        &confirm,
    )?;
    if !args.no_runner {
        install_runner(&release, &runner_dir, args.yes, ui)?;
    }
    remember(&server, ui);
    if !args.quiet {
        for target in targets {
            print_guest_config(&toolchain, target, &server);
        }
        warn_if_not_on_path(&runner_dir);
    }
    Ok(())
}

/// Puts the release's runner into `bin_dir` unless it is there already: this very binary when
/// it is the release's (install.sh checked it), else a download.
fn install_runner(
    release: &Release,
    bin_dir: &Path,
    yes: bool,
    ui: &Ui,
) -> Result<(), InstallError> {
    let Some(entry) = &release.manifest.runner else {
        ui.warn(&format!(
            "this release has no {RUNNER}; installed the sysroot only"
        ));
        return Ok(());
    };
    let dest = bin_dir.join(RUNNER);
    let front = bin_dir.join(hyperlight_install::c_objects::FRONT);
    let linked = std::fs::read_link(front).is_ok_and(|to| to == Path::new(RUNNER));
    if linked && std::fs::read(&dest).is_ok_and(|data| sha256_hex(&data) == entry.sha256) {
        ui.say(&format!("{RUNNER} is up to date in {}", bin_dir.display()));
        return Ok(());
    }
    confirm(
        yes,
        &format!("  {RUNNER} {} -> {}", entry.version, dest.display()),
    )?;
    let this = std::env::current_exe().ok();
    let scratch = add::Scratch::new()?;
    let source = match this
        .filter(|exe| std::fs::read(exe).is_ok_and(|data| sha256_hex(&data) == entry.sha256))
    {
        Some(exe) => exe,
        None => {
            ui.say(&format!("downloading {}", entry.url));
            let data = release.fetch_file(&entry.url)?;
            let path = scratch.path().join(RUNNER);
            write_executable(&path, &data)?;
            path
        }
    };
    hyperlight_install::runner::install(&source, bin_dir).map_err(|err| InstallError::Write {
        path: dest.clone(),
        reason: format!("{err:#}"),
    })?;
    ui.say(&format!("installed {RUNNER} into {}", bin_dir.display()));
    Ok(())
}

/// Whether `hyperlight-run` can be put into `dir`, which the install creates if missing (as
/// `cargo install` does).
fn check_writable_dir(dir: &Path) -> Result<(), InstallError> {
    hyperlight_install::probe_writable(dir).map_err(|err| InstallError::Write {
        path: dir.to_owned(),
        reason: format!(
            "{err}; set CARGO_INSTALL_ROOT or CARGO_HOME to a writable directory, or pass \
             --no-runner"
        ),
    })
}

fn write_executable(path: &Path, data: &[u8]) -> Result<(), InstallError> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, data)
        .and_then(|()| std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)))
        .map_err(|err| InstallError::Write {
            path: path.to_owned(),
            reason: err.to_string(),
        })
}

fn uninstall(args: &InitArgs, ui: &Ui) -> Result<(), InstallError> {
    let toolchain = find_toolchain(&args.toolchain)?;
    let sysroot = &toolchain.sysroot;
    transaction::uninstall_targets(sysroot, &args.targets, |said| ui.say(&said))?;
    if args.no_runner {
        return Ok(());
    }
    match hyperlight_install::runner::uninstall(sysroot)? {
        Removal::Removed(runner) => {
            ui.say(&format!("removed {}", runner.display()));
            // No toolchain has the target any more: nothing will install from the server.
            if let Ok(path) = settings::path() {
                let _ = std::fs::remove_file(path);
            }
        }
        Removal::Kept { runner, user } => ui.say(&format!(
            "kept {}: the toolchain at {} still uses it",
            runner.display(),
            user.display()
        )),
        Removal::NotInstalled => {}
    }
    Ok(())
}

fn find_toolchain(arg: &ToolchainArg) -> Result<Toolchain, InstallError> {
    let selector = match &arg.toolchain {
        Some(name) => {
            if !on_path("rustup") {
                return Err(InstallError::Toolchain(
                    "--toolchain needs rustup, which is not on PATH; install rustup \
                     (https://rustup.rs), or drop --toolchain to use the rustc on PATH"
                        .to_owned(),
                ));
            }
            Selector::Rustup(name.clone())
        }
        None => {
            let rustc = std::env::var_os("RUSTC")
                .filter(|r| !r.is_empty())
                .map_or_else(|| PathBuf::from("rustc"), PathBuf::from);
            if rustc.components().count() == 1 && !on_path(&rustc.to_string_lossy()) {
                return Err(InstallError::Toolchain(
                    "no rustc found on PATH; install Rust first (https://rustup.rs), or pass \
                     --toolchain T"
                        .to_owned(),
                ));
            }
            Selector::Rustc(rustc)
        }
    };
    let fix = match &selector {
        Selector::Rustup(name) => format!("install it with: rustup toolchain install {name}"),
        Selector::Rustc(_) => {
            "install Rust first (https://rustup.rs), or pass --toolchain T".into()
        }
    };
    Toolchain::find(selector).map_err(|err| InstallError::Toolchain(format!("{err:#}; {fix}")))
}

fn on_path(program: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(program).is_file()))
}

fn dist_server(source: &SourceArgs) -> String {
    source
        .dist_server
        .clone()
        .unwrap_or_else(settings::dist_server)
        .trim_end_matches('/')
        .to_owned()
}

fn warn_if_plain_http(server: &str, ui: &Ui) -> Result<(), InstallError> {
    if server.starts_with("https://") {
        Ok(())
    } else if server.starts_with("http://") {
        ui.warn(&format!(
            "the dist server {server} is not HTTPS: downloads are only as trustworthy as that \
             connection"
        ));
        Ok(())
    } else {
        Err(InstallError::Usage(format!(
            "--dist-server must be an https:// (or http://) URL, not '{server}'"
        )))
    }
}

/// Records the dist server for the self-healing build; failing to is not worth failing for.
fn remember(server: &str, ui: &Ui) {
    let mut settings = Settings::load();
    if settings.dist_server.as_deref() == Some(server) {
        return;
    }
    settings.dist_server = Some(server.to_owned());
    if let Err(err) = settings.save() {
        ui.warn(&format!("cannot record the dist server: {err:#}"));
    }
}

fn report(installed: &Installed, toolchain: &Toolchain, target: Target, ui: &Ui) {
    let version = &toolchain.version.release;
    match installed {
        Installed::AlreadyInstalled => ui.say(&format!(
            "{target} for rustc {version} is already installed in {}",
            toolchain.sysroot.display()
        )),
        Installed::Prebuilt | Installed::BuiltLocally => ui.say(&format!(
            "installed {target} into {}",
            target.dir(&toolchain.sysroot).display()
        )),
    }
}

/// Asks on the terminal before installing `plan`; `yes` skips the question.
fn confirm(yes: bool, plan: &str) -> Result<(), InstallError> {
    if yes {
        return Ok(());
    }
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty");
    let Ok(mut tty) = tty else {
        return Err(InstallError::NeedsConfirmation);
    };
    let _ = write!(tty, "This will install:\n{plan}\nProceed? [Y/n] ");
    let mut answer = String::new();
    let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(&tty), &mut answer);
    match answer.trim() {
        "" | "y" | "Y" | "yes" | "Yes" => Ok(()),
        _ => Err(InstallError::Declined),
    }
}

fn print_guest_config(toolchain: &Toolchain, target: Target, server: &str) {
    let release = &toolchain.version.release;
    let what = match target {
        Target::None | Target::Aarch64 => {
            "The full template, with the settings for C code in official Hyperlight guests"
        }
        Target::Hermit => "The template",
    };
    eprintln!(
        "\n{target} is ready for rustc {release}. In a guest project, put this in .cargo/config.toml:\n\n{}\
         \nand pin the toolchain in rust-toolchain.toml. Then `cargo build` and `cargo run` work as usual.\n\
         {what}:\n    {server}/{}",
        guest_config_essentials(target)
            .lines()
            .map(|line| if line.is_empty() { "\n".to_owned() } else { format!("    {line}\n") })
            .collect::<String>(),
        target.guest_config_file()
    );
}

fn warn_if_not_on_path(bin_dir: &Path) {
    let on_path = std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir == bin_dir));
    if !on_path {
        eprintln!(
            "warning: {} is not on PATH; add it so that cargo finds {RUNNER}",
            bin_dir.display()
        );
    }
}

/// The guest config's settings every guest of `target` needs: the template up to its C-code
/// block, without comments, with `target` as the `[build]` target (the template, which covers
/// both no_std targets, names x86_64-hyperlight-none).
fn guest_config_essentials(target: Target) -> String {
    let template = crate::scaffold::cargo_config(target);
    let end = template.find("\n# C code").unwrap_or(template.len());
    let build_target = format!("target = \"{target}\"");
    let mut text = String::new();
    for line in template[..end].lines().filter(|l| !l.starts_with('#')) {
        if !(line.is_empty() && (text.is_empty() || text.ends_with("\n\n"))) {
            let is_build_target = line.starts_with("target = ");
            text.push_str(if is_build_target { &build_target } else { line });
            text.push('\n');
        }
    }
    text
}
