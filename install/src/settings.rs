//! What an install remembers for the next one: the dist server it came from, so that a build
//! that finds the target missing or stale (after `rustup update`) installs from the same place.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::runner::cargo_home;

/// The project's GitHub releases: `latest/download/<file>` serves the newest release's files.
pub const DEFAULT_DIST_SERVER: &str =
    "https://github.com/example-org/hyperlight-none/releases/latest/download";

/// Overrides the recorded dist server.
pub const DIST_SERVER_VAR: &str = "HYPERLIGHT_DIST_SERVER";

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub struct Settings {
    pub dist_server: Option<String>,
}

/// `$CARGO_HOME/hyperlight/settings.toml`.
pub fn path() -> Result<PathBuf> {
    Ok(cargo_home()?.join("hyperlight/settings.toml"))
}

impl Settings {
    pub fn load() -> Settings {
        path()
            .ok()
            .and_then(|path| std::fs::read_to_string(path).ok())
            .and_then(|text| toml::from_str(&text).ok())
            .unwrap_or_default()
    }

    pub fn save(&self) -> Result<()> {
        let path = path()?;
        std::fs::create_dir_all(path.parent().unwrap())
            .with_context(|| format!("creating {}", path.parent().unwrap().display()))?;
        let text = toml::to_string(self).context("serializing the settings")?;
        crate::transaction::write_atomically(&path, &text)
    }
}

/// The dist server to use when none is given: `$HYPERLIGHT_DIST_SERVER`, else the one the last
/// install came from, else the project's releases.
pub fn dist_server() -> String {
    std::env::var(DIST_SERVER_VAR)
        .ok()
        .filter(|s| !s.is_empty())
        .or_else(|| Settings::load().dist_server)
        .unwrap_or_else(|| DEFAULT_DIST_SERVER.to_owned())
}
