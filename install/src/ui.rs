//! What an install tells its user: `info:` lines unless quiet, warnings always, and a spinner
//! with the current step of a long build on a terminal.

use std::cell::RefCell;
use std::io::IsTerminal;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};

#[derive(Default)]
pub struct Ui {
    pub quiet: bool,
    spinner: RefCell<Option<ProgressBar>>,
}

impl Ui {
    pub fn new(quiet: bool) -> Ui {
        Ui {
            quiet,
            spinner: RefCell::new(None),
        }
    }

    pub fn say(&self, message: &str) {
        if !self.quiet {
            self.suspend(|| eprintln!("info: {message}"));
        }
    }

    pub fn warn(&self, message: &str) {
        self.suspend(|| eprintln!("warning: {message}"));
    }

    /// The current step of a long-running job (a line of cargo's output), shown in place.
    pub fn progress(&self, step: &str) {
        if self.quiet || !std::io::stderr().is_terminal() {
            return;
        }
        let mut spinner = self.spinner.borrow_mut();
        let spinner = spinner.get_or_insert_with(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed:>4} {wide_msg}")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        spinner.set_message(step.trim().to_owned());
    }

    /// Ends the spinner, if any.
    pub fn done(&self) {
        if let Some(spinner) = self.spinner.borrow_mut().take() {
            spinner.finish_and_clear();
        }
    }

    fn suspend(&self, print: impl FnOnce()) {
        match &*self.spinner.borrow() {
            Some(spinner) => spinner.suspend(print),
            None => print(),
        }
    }
}
