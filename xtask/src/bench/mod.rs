//! `cargo xtask bench`: the project's one benchmark entry point.
//!
//! Every figure is measured side by side with its baseline in the same run (the machine's speed
//! swings with load), reported as a ratio against its goal, and written to BENCHMARKS.md.

use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::Result;
use xshell::Shell;

use crate::toolchain::project_root;

mod compat;
mod dist;
mod limits;
pub mod nginx;
mod runner;
mod sysroot;

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

    fn render(&self, command: &str) -> String {
        let mut out = String::from("# Benchmarks\n\n");
        let _ = writeln!(out, "Written by `{command}`; every ratio compares figures measured side by side in that run.\n");
        for section in &self.sections {
            let _ = writeln!(
                out,
                "## {}\n\n| what | measured | goal | |\n|---|---|---|---|",
                section.title
            );
            for row in &section.rows {
                let verdict = match row.met {
                    Some(true) => "met",
                    Some(false) => "**missed**",
                    None => "",
                };
                let _ = writeln!(
                    out,
                    "| {} | {} | {} | {verdict} |",
                    row.what, row.measured, row.goal
                );
            }
            for note in &section.notes {
                let _ = writeln!(out, "\n{note}");
            }
            out.push('\n');
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
    times.sort();
    Ok(times[times.len() / 2])
}

pub fn run(sh: &Shell) -> Result<()> {
    let mut report = Report::default();
    sysroot::run(sh, &mut report)?;
    compat::run(sh, &mut report)?;
    runner::run(sh, &mut report)?;
    limits::run(sh, &mut report)?;
    dist::run(sh, &mut report)?;
    let path = project_root().join("BENCHMARKS.md");
    std::fs::write(&path, report.render("cargo xtask bench"))?;
    eprintln!("\nfigures written to {}", path.display());
    Ok(())
}
