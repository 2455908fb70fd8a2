//! `cargo xtask bench`: the project's one benchmark entry point.
//!
//! Every figure is measured side by side with its baseline in the same run (the machine's speed
//! swings with load), reported as a ratio against its goal, and written to BENCHMARKS.md.

use std::fmt::Write as _;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::Result;
use xshell::Shell;

use crate::toolchain::project_root;

mod compat;
mod dist;
mod harness;
mod heal;
mod limits;
mod runner;
mod std_target;
mod sysroot;

pub use harness::time_runner;

/// The figures of one run, rendered as BENCHMARKS.md.
#[derive(Default)]
pub struct Report {
    sections: Vec<Section>,
}

struct Section {
    title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

struct Row {
    what: String,
    measured: String,
    goal: String,
    met: Option<bool>,
}

impl Report {
    pub fn section(&mut self, title: &str) {
        self.sections.push(Section {
            title: title.to_owned(),
            rows: Vec::new(),
            notes: Vec::new(),
        });
        eprintln!("\n== {title}");
    }

    /// One figure; `met` is `None` for a figure that has no goal of its own.
    pub fn row(&mut self, what: &str, measured: String, goal: &str, met: Option<bool>) {
        let verdict = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "",
        };
        eprintln!("{what}: {measured} (goal {goal}) {verdict}");
        self.current().rows.push(Row {
            what: what.to_owned(),
            measured,
            goal: goal.to_owned(),
            met,
        });
    }

    /// How a section was measured, printed under its table.
    pub fn note(&mut self, note: &str) {
        self.current().notes.push(note.to_owned());
    }

    fn current(&mut self) -> &mut Section {
        self.sections
            .last_mut()
            .expect("Report::section must come first")
    }

    /// BENCHMARKS.md with this run's sections: those of `previous` (the file as it was) that
    /// this run did not measure are kept, so measuring one section leaves the others.
    fn render(&self, previous: &str) -> String {
        let mut sections: Vec<(String, String)> = previous
            .split("\n## ")
            .skip(1)
            .filter_map(|text| {
                let title = text.lines().next()?.to_owned();
                Some((title, format!("## {}\n", text.trim_end())))
            })
            .collect();
        for section in &self.sections {
            let mut text = format!(
                "## {}\n\n| what | measured | goal | |\n|---|---|---|---|\n",
                section.title
            );
            for row in &section.rows {
                let verdict = match row.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "",
                };
                let _ = writeln!(
                    text,
                    "| {} | {} | {} | {verdict} |",
                    row.what, row.measured, row.goal
                );
            }
            for note in &section.notes {
                let _ = write!(text, "\n{note}\n");
            }
            match sections
                .iter_mut()
                .find(|(title, _)| *title == section.title)
            {
                Some(old) => old.1 = text,
                None => sections.push((section.title.clone(), text)),
            }
        }
        let mut out = String::from(
            "# Benchmarks\n\nWritten by `cargo xtask bench`; every ratio compares figures measured side by side in \
             one run of its section.\n",
        );
        for (_, text) in sections {
            out.push('\n');
            out.push_str(&text);
        }
        out
    }
}

/// Runs `f` `runs` times and returns the median wall time.
pub fn median_time(runs: usize, mut f: impl FnMut() -> Result<()>) -> Result<Duration> {
    let mut times = Vec::with_capacity(runs);
    for _ in 0..runs {
        let start = Instant::now();
        f()?;
        times.push(start.elapsed());
    }
    Ok(median(times))
}

pub fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// The wall time of one run of `command`, its output discarded; failing if it fails.
pub fn time_process(command: &mut Command) -> Result<Duration> {
    let started = Instant::now();
    let status = command
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()?;
    let elapsed = started.elapsed();
    if !status.success() {
        anyhow::bail!("{command:?} failed: {status}");
    }
    Ok(elapsed)
}

/// A section of the report and the function that measures it.
type Measure = fn(&Shell, &mut Report) -> Result<()>;

const SECTIONS: &[(&str, Measure)] = &[
    ("sysroot", sysroot::run),
    ("compat", compat::run),
    ("runner", runner::run),
    ("harness", harness::run),
    ("limits", limits::run),
    ("dist", dist::run),
    ("heal", heal::run),
    ("std", std_target::run),
];

/// The sections that boot guests, which need KVM.
const BOOT_GUESTS: &[&str] = &["runner", "harness", "limits", "std"];

/// Measures `only` the named sections (all when empty) and writes BENCHMARKS.md.
pub fn run(sh: &Shell, only: &[String]) -> Result<()> {
    if let Some(unknown) = only
        .iter()
        .find(|name| !SECTIONS.iter().any(|(section, _)| section == name))
    {
        let names: Vec<&str> = SECTIONS.iter().map(|(section, _)| *section).collect();
        anyhow::bail!(
            "no benchmark section `{unknown}`; the sections are {}",
            names.join(", ")
        );
    }
    let selected = |name: &str| only.is_empty() || only.iter().any(|wanted| wanted == name);
    // Unlike the tests, a benchmark cannot be skipped: its figures would silently go missing.
    if let Some(booting) = BOOT_GUESTS.iter().find(|name| selected(name)) {
        if let Some(why) = testkit::kvm_unavailable() {
            anyhow::bail!("the {booting} benchmarks boot guests, but {why}");
        }
    }
    let mut report = Report::default();
    for (name, measure) in SECTIONS {
        if selected(name) {
            measure(sh, &mut report)?;
        }
    }
    let path = project_root().join("BENCHMARKS.md");
    let previous = std::fs::read_to_string(&path).unwrap_or_default();
    std::fs::write(&path, report.render(&previous))?;
    eprintln!("\nfigures written to {}", path.display());
    Ok(())
}
