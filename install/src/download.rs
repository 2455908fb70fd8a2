//! Fetching release files: bounded retries on connection errors and server errors, a progress
//! bar on a terminal, and the size checked while the bytes arrive.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use reqwest::blocking::Client;

use crate::error::InstallError;

/// Attempts per file: a connection error or an HTTP 5xx is retried after a growing pause.
const ATTEMPTS: u32 = 3;
const FIRST_PAUSE: Duration = Duration::from_millis(500);

pub struct Downloader {
    client: Client,
    /// The dist server's base URL, without a trailing `/`.
    base: String,
    progress: bool,
}

impl Downloader {
    pub fn new(base: &str, quiet: bool) -> Result<Downloader, InstallError> {
        let client = Client::builder()
            .connect_timeout(Duration::from_secs(20))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("hyperlight-install/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|err| InstallError::Other(err.into()))?;
        Ok(Downloader {
            client,
            base: base.trim_end_matches('/').to_owned(),
            progress: !quiet && std::io::stderr().is_terminal(),
        })
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn url(&self, name: &str) -> String {
        format!("{}/{name}", self.base)
    }

    /// `name` under the base URL; `None` on HTTP 404 (for optional files).
    pub fn fetch_optional(&self, name: &str) -> Result<Option<Vec<u8>>, InstallError> {
        match self.fetch(name, None) {
            Err(InstallError::Http { status: 404, .. }) => Ok(None),
            other => other.map(Some),
        }
    }

    /// `name` under the base URL. With `expected_size`, a longer body is cut off and refused
    /// and a progress bar is shown on a terminal.
    pub fn fetch(&self, name: &str, expected_size: Option<u64>) -> Result<Vec<u8>, InstallError> {
        let url = self.url(name);
        let mut pause = FIRST_PAUSE;
        let mut attempt = 1;
        loop {
            match self.try_fetch(&url, name, expected_size) {
                Err(err) if attempt < ATTEMPTS && is_transient(&err) => {
                    std::thread::sleep(pause);
                    pause *= 2;
                    attempt += 1;
                }
                result => return result,
            }
        }
    }

    fn try_fetch(
        &self,
        url: &str,
        name: &str,
        expected_size: Option<u64>,
    ) -> Result<Vec<u8>, InstallError> {
        let network = |err: reqwest::Error| InstallError::Network {
            url: url.to_owned(),
            reason: describe(&err),
        };
        let response = self.client.get(url).send().map_err(network)?;
        let status = response.status();
        if !status.is_success() {
            return Err(InstallError::Http {
                url: url.to_owned(),
                status: status.as_u16(),
            });
        }
        let bar = match expected_size {
            Some(size) if self.progress => {
                let bar = ProgressBar::new(size).with_message(name.to_owned());
                bar.set_style(
                    ProgressStyle::with_template(
                        "{msg} [{bar:30}] {bytes}/{total_bytes} ({bytes_per_sec})",
                    )
                    .expect("a valid template")
                    .progress_chars("=> "),
                );
                bar
            }
            _ => ProgressBar::hidden(),
        };
        let limit = expected_size.map_or(u64::MAX, |size| size + 1);
        let mut body = Vec::with_capacity(expected_size.unwrap_or(0).min(1 << 28) as usize);
        let mut reader = bar.wrap_read(response.take(limit));
        let read = reader.read_to_end(&mut body);
        bar.finish_and_clear();
        read.map_err(|err| InstallError::Network {
            url: url.to_owned(),
            reason: format!("the transfer was cut short ({err})"),
        })?;
        if let Some(expected) = expected_size {
            if body.len() as u64 != expected {
                return Err(InstallError::Size {
                    file: name.to_owned(),
                    expected,
                    actual: body.len() as u64,
                });
            }
        }
        Ok(body)
    }
}

fn is_transient(err: &InstallError) -> bool {
    match err {
        InstallError::Network { .. } => true,
        InstallError::Http { status, .. } => *status >= 500,
        _ => false,
    }
}

/// reqwest's message and its causes on one line ("error sending request: connection refused").
fn describe(err: &reqwest::Error) -> String {
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
