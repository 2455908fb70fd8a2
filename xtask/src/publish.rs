//! `cargo xtask publish --to DEST [--dir DIR] [--force] [--signing-key FILE]`: upload a dist
//! directory.
//!
//! Backends: `http(s)://BASE` (HTTP PUT of each file under BASE, as a WebDAV server or presigned
//! storage takes it) and `github:OWNER/REPO@TAG` (the GitHub Releases API with `GITHUB_TOKEN`).
//! Artifacts go first and the manifest last, so a reader never sees a manifest naming a file
//! that is not there yet; the manifest already at DEST is merged with ours, so publishing one
//! toolchain never drops the others. `--keep-nightlies N` then keeps only the newest N nightly
//! and the newest N beta sysroots (see `prune_prereleases`). Both manifests must be signed by
//! the publishing key (a release has one key), and the merged one is signed again.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use reqwest::blocking::{Client, Response};
use reqwest::StatusCode;

use hyperlight_install::manifest::{
    Manifest, ManifestError, SysrootEntry, MANIFEST, MANIFEST_SHA256, MANIFEST_VERSION,
};
use hyperlight_install::signature::{self, SigningKey, MANIFEST_SIG};

use crate::dist::error::{read_artifact, read_manifest_dir, remote_signature_error, DistError};
use crate::dist::EXTRA_FILES;

pub fn run(
    dest: &str,
    dir: &Path,
    force: bool,
    keep_nightlies: Option<usize>,
    key: &SigningKey,
) -> Result<()> {
    let local = read_manifest_dir(dir, &key.public_key())?;
    let artifacts = read_artifacts(dir, &local)?;
    let mut backend = backend(dest, force)?;
    let mut merged = match fetch_manifest(backend.as_mut(), dest, key)? {
        Some(mut existing) => {
            let kept = existing
                .all_sysroots()
                .filter(|(target, old)| {
                    !local
                        .all_sysroots()
                        .any(|(t, new)| t == *target && new.commit_hash == old.commit_hash)
                })
                .count();
            eprintln!("merging into the manifest at {dest} (keeping {kept} other sysroot(s))");
            existing.merge(local);
            existing
        }
        None => local,
    };
    merged.manifest_version = MANIFEST_VERSION.to_owned();
    let mut dropped = Vec::new();
    if let Some(keep) = keep_nightlies {
        for entry in prune_prereleases(&mut merged, keep) {
            eprintln!(
                "dropping the sysroot for rustc {} ({}): not among the newest {keep}",
                entry.release, entry.commit_hash
            );
            dropped.push(entry.url);
        }
    }
    for (name, data) in &artifacts {
        if !dropped.contains(name) {
            eprintln!("uploading {name} ({} bytes)", data.len());
            backend.upload(name, data, false)?;
        }
    }
    upload_manifest(backend.as_mut(), &merged, key)?;
    // Only now that no manifest names them any more.
    for name in &dropped {
        eprintln!("removing {name}");
        backend.remove(name)?;
    }
    eprintln!("published to {dest}");
    Ok(())
}

/// Every file `local` names, read from `dir` and checked against its sha256, and the extra
/// files beside them.
fn read_artifacts(dir: &Path, local: &Manifest) -> Result<Vec<(String, Vec<u8>)>> {
    let mut artifacts = Vec::new();
    for (name, (sha256, _)) in local.files() {
        artifacts.push((name.to_owned(), read_artifact(&dir.join(name), sha256)?));
    }
    for name in EXTRA_FILES {
        if let Ok(data) = std::fs::read(dir.join(name)) {
            artifacts.push((name.to_string(), data));
        }
    }
    Ok(artifacts)
}

/// Where `dest` (github:OWNER/REPO@TAG or an http(s) URL) leads.
fn backend(dest: &str, force: bool) -> Result<Box<dyn Backend>> {
    if let Some(spec) = dest.strip_prefix("github:") {
        Ok(Box::new(GitHub::new(spec, force)?))
    } else if dest.starts_with("http://") || dest.starts_with("https://") {
        Ok(Box::new(HttpPut::new(dest)?))
    } else {
        Err(DistError::BadDestination {
            dest: dest.to_owned(),
        }
        .into())
    }
}

/// The manifest already published at `dest`, if any, once its signature and sha256 check out.
fn fetch_manifest(
    backend: &mut dyn Backend,
    dest: &str,
    key: &SigningKey,
) -> Result<Option<Manifest>> {
    let Some(text) = backend.fetch(MANIFEST)? else {
        return Ok(None);
    };
    let source = format!("{dest} {MANIFEST}");
    // The raw bytes first: nothing of a manifest another key signed is read.
    let sig = backend.fetch(MANIFEST_SIG)?;
    signature::verify_file(&text, sig.as_deref(), &key.public_key(), &source)
        .map_err(|err| remote_signature_error(dest, err))?;
    let sha = backend.fetch(MANIFEST_SHA256)?.unwrap_or_default();
    let existing = Manifest::parse_verified(&text, &sha, &source).map_err(|err| {
        let reason = match err {
            ManifestError::HashMismatch {
                expected, actual, ..
            } => format!("its sha256 is {actual} but manifest.json.sha256 says {expected:?}"),
            ManifestError::Malformed { reason, .. } => reason,
            other => other.to_string(),
        };
        DistError::RemoteManifest {
            dest: dest.to_owned(),
            reason,
        }
    })?;
    Ok(Some(existing))
}

/// Uploads `manifest`, its sha256 and its signature, replacing the published ones.
fn upload_manifest(backend: &mut dyn Backend, manifest: &Manifest, key: &SigningKey) -> Result<()> {
    let (json, sha) = manifest.render();
    let sig = signature::sign(json.as_bytes(), key);
    eprintln!(
        "uploading {MANIFEST} ({} sysroot(s))",
        manifest.all_sysroots().count()
    );
    backend.upload(MANIFEST, json.as_bytes(), true)?;
    backend.upload(MANIFEST_SHA256, sha.as_bytes(), true)?;
    backend.upload(MANIFEST_SIG, sig.as_bytes(), true)?;
    Ok(())
}

/// Drops the sysroots of nightly and beta toolchains (releases `X.Y.Z-nightly`,
/// `X.Y.Z-beta.N`) beyond the newest `keep` of each kind, per target, leaving stable ones
/// alone; returns the dropped entries. A daily publish of the day's nightly and beta would
/// otherwise grow the manifest, and every installer's download of it, without bound.
fn prune_prereleases(manifest: &mut Manifest, keep: usize) -> Vec<SysrootEntry> {
    let mut dropped = Vec::new();
    for sysroots in manifest.sysroot_lists_mut() {
        dropped.extend(prune_list(sysroots, keep));
    }
    dropped
}

fn prune_list(sysroots: &mut Vec<SysrootEntry>, keep: usize) -> Vec<SysrootEntry> {
    let (mut nightlies, mut betas) = (0, 0);
    let mut dropped = Vec::new();
    // Newest first, as the manifest keeps them.
    sysroots.retain(|entry| {
        let seen = match entry.release.split_once('-') {
            Some((_, "nightly")) => &mut nightlies,
            Some((_, pre)) if pre.starts_with("beta") => &mut betas,
            _ => return true,
        };
        *seen += 1;
        if *seen > keep {
            dropped.push(entry.clone());
        }
        *seen <= keep
    });
    dropped
}

/// Where a release is published.
trait Backend {
    /// The file `name` at the destination, `None` if there is none.
    fn fetch(&mut self, name: &str) -> Result<Option<Vec<u8>>>;
    /// Stores `name`; `replace` marks files that are meant to change (the manifest).
    fn upload(&mut self, name: &str, data: &[u8], replace: bool) -> Result<()>;
    /// Deletes `name` if it is there.
    fn remove(&mut self, name: &str) -> Result<()>;
}

fn client() -> Result<Client> {
    Ok(Client::builder()
        .user_agent(concat!("hyperlight-xtask/", env!("CARGO_PKG_VERSION")))
        .connect_timeout(Duration::from_secs(30))
        .build()?)
}

fn network(url: &str, err: reqwest::Error) -> anyhow::Error {
    let mut reason = err.to_string();
    let mut source = std::error::Error::source(&err);
    while let Some(inner) = source {
        reason = format!("{reason}: {inner}");
        source = inner.source();
    }
    DistError::Network {
        url: url.to_owned(),
        reason,
    }
    .into()
}

fn http_error(method: &'static str, url: &str, response: Response) -> anyhow::Error {
    let status = response.status().as_u16();
    let body = response.text().unwrap_or_default();
    DistError::Http {
        method,
        url: url.to_owned(),
        status,
        body,
    }
    .into()
}

/// HTTP PUT under a base URL.
struct HttpPut {
    base: String,
    client: Client,
}

impl HttpPut {
    fn new(base: &str) -> Result<HttpPut> {
        Ok(HttpPut {
            base: base.trim_end_matches('/').to_owned(),
            client: client()?,
        })
    }
}

impl Backend for HttpPut {
    fn fetch(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        let url = format!("{}/{name}", self.base);
        let response = self
            .client
            .get(&url)
            .send()
            .map_err(|err| network(&url, err))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(None),
            status if status.is_success() => Ok(Some(
                response.bytes().map_err(|err| network(&url, err))?.to_vec(),
            )),
            _ => Err(http_error("GET", &url, response)),
        }
    }

    fn upload(&mut self, name: &str, data: &[u8], _replace: bool) -> Result<()> {
        let url = format!("{}/{name}", self.base);
        let response = self
            .client
            .put(&url)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .map_err(|err| network(&url, err))?;
        if !response.status().is_success() {
            return Err(http_error("PUT", &url, response));
        }
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        let url = format!("{}/{name}", self.base);
        let response = self
            .client
            .delete(&url)
            .send()
            .map_err(|err| network(&url, err))?;
        match response.status() {
            StatusCode::NOT_FOUND => Ok(()),
            status if status.is_success() => Ok(()),
            _ => Err(http_error("DELETE", &url, response)),
        }
    }
}

/// A GitHub release, created if missing. The API root is `GITHUB_API_URL` (set in GitHub
/// Actions; default https://api.github.com), which also lets tests use a stand-in.
struct GitHub {
    api: String,
    repo: String,
    tag: String,
    token: String,
    force: bool,
    client: Client,
    release: Option<Release>,
}

#[derive(serde::Deserialize)]
struct Release {
    upload_url: String,
    #[serde(default)]
    assets: Vec<Asset>,
}

#[derive(serde::Deserialize, Clone)]
struct Asset {
    id: u64,
    name: String,
    url: String,
    size: u64,
}

impl GitHub {
    fn new(spec: &str, force: bool) -> Result<GitHub> {
        let bad = || DistError::BadDestination {
            dest: format!("github:{spec}"),
        };
        let (repo, tag) = spec.split_once('@').ok_or_else(bad)?;
        let (owner, name) = repo.split_once('/').ok_or_else(bad)?;
        if owner.is_empty() || name.is_empty() || name.contains('/') || tag.is_empty() {
            return Err(bad().into());
        }
        let token = std::env::var("GITHUB_TOKEN")
            .ok()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| DistError::MissingToken {
                repo: repo.to_owned(),
            })?;
        let api = std::env::var("GITHUB_API_URL")
            .ok()
            .filter(|u| !u.is_empty())
            .unwrap_or_else(|| "https://api.github.com".to_owned());
        Ok(GitHub {
            api: api.trim_end_matches('/').to_owned(),
            repo: repo.to_owned(),
            tag: tag.to_owned(),
            token,
            force,
            client: client()?,
            release: None,
        })
    }

    fn request(&self, method: reqwest::Method, url: &str) -> reqwest::blocking::RequestBuilder {
        self.client
            .request(method, url)
            .bearer_auth(&self.token)
            .header("accept", "application/vnd.github+json")
            .header("x-github-api-version", "2022-11-28")
    }

    /// The release for the tag, created (as a draft-free, published release) if missing.
    fn release(&mut self) -> Result<&mut Release> {
        if self.release.is_none() {
            let url = format!(
                "{}/repos/{}/releases/tags/{}",
                self.api, self.repo, self.tag
            );
            let response = self
                .request(reqwest::Method::GET, &url)
                .send()
                .map_err(|err| network(&url, err))?;
            let release: Release = match response.status() {
                StatusCode::NOT_FOUND => {
                    eprintln!("creating release {} in {}", self.tag, self.repo);
                    let url = format!("{}/repos/{}/releases", self.api, self.repo);
                    let body = serde_json::json!({ "tag_name": self.tag, "name": self.tag });
                    let response = self
                        .request(reqwest::Method::POST, &url)
                        .json(&body)
                        .send()
                        .map_err(|err| network(&url, err))?;
                    if !response.status().is_success() {
                        return Err(http_error("POST", &url, response));
                    }
                    response
                        .json()
                        .with_context(|| format!("parsing the answer of POST {url}"))?
                }
                status if status.is_success() => response
                    .json()
                    .with_context(|| format!("parsing the answer of GET {url}"))?,
                _ => return Err(http_error("GET", &url, response)),
            };
            self.release = Some(release);
        }
        Ok(self.release.as_mut().unwrap())
    }

    fn asset(&mut self, name: &str) -> Result<Option<Asset>> {
        Ok(self
            .release()?
            .assets
            .iter()
            .find(|a| a.name == name)
            .cloned())
    }

    fn download(&self, asset: &Asset) -> Result<Vec<u8>> {
        let response = self
            .request(reqwest::Method::GET, &asset.url)
            .header("accept", "application/octet-stream")
            .send()
            .map_err(|err| network(&asset.url, err))?;
        if !response.status().is_success() {
            return Err(http_error("GET", &asset.url, response));
        }
        Ok(response
            .bytes()
            .map_err(|err| network(&asset.url, err))?
            .to_vec())
    }

    fn delete(&mut self, asset: &Asset) -> Result<()> {
        let url = format!(
            "{}/repos/{}/releases/assets/{}",
            self.api, self.repo, asset.id
        );
        let response = self
            .request(reqwest::Method::DELETE, &url)
            .send()
            .map_err(|err| network(&url, err))?;
        if !response.status().is_success() {
            return Err(http_error("DELETE", &url, response));
        }
        self.release()?.assets.retain(|a| a.id != asset.id);
        Ok(())
    }
}

impl Backend for GitHub {
    fn fetch(&mut self, name: &str) -> Result<Option<Vec<u8>>> {
        match self.asset(name)? {
            Some(asset) => Ok(Some(self.download(&asset)?)),
            None => Ok(None),
        }
    }

    fn upload(&mut self, name: &str, data: &[u8], replace: bool) -> Result<()> {
        if let Some(asset) = self.asset(name)? {
            let same = asset.size == data.len() as u64 && self.download(&asset)? == data;
            if same {
                eprintln!("  {name} is already there, unchanged");
                return Ok(());
            }
            if !replace && !self.force {
                return Err(DistError::AssetExists {
                    name: name.to_owned(),
                    tag: self.tag.clone(),
                }
                .into());
            }
            self.delete(&asset)?;
        }
        let release = self.release()?;
        let base = release
            .upload_url
            .split('{')
            .next()
            .unwrap_or_default()
            .to_owned();
        let url = format!("{base}?name={name}");
        let response = self
            .request(reqwest::Method::POST, &url)
            .header("content-type", "application/octet-stream")
            .body(data.to_vec())
            .send()
            .map_err(|err| network(&url, err))?;
        if !response.status().is_success() {
            return Err(http_error("POST", &url, response));
        }
        let asset: Asset = response
            .json()
            .with_context(|| format!("parsing the answer of POST {url}"))?;
        self.release()?.assets.push(asset);
        Ok(())
    }

    fn remove(&mut self, name: &str) -> Result<()> {
        match self.asset(name)? {
            Some(asset) => self.delete(&asset),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyperlight_install::Target;

    fn sysroot(release: &str, date: &str) -> SysrootEntry {
        SysrootEntry {
            release: release.to_owned(),
            commit_hash: format!("{release}-{date}"),
            commit_date: date.to_owned(),
            host: "x86_64-unknown-linux-gnu".to_owned(),
            url: format!("rust-std-{release}-{date}-x86_64-hyperlight-none.tar.gz"),
            sha256: String::new(),
            size: 0,
            installed_sha256: String::new(),
        }
    }

    fn names(entries: &[SysrootEntry]) -> Vec<String> {
        entries
            .iter()
            .map(|e| format!("{} {}", e.release, e.commit_date))
            .collect()
    }

    #[test]
    fn pruning_keeps_the_newest_nightlies_and_betas_and_every_stable() {
        let mut manifest = Manifest::new("2026-11-30".to_owned());
        for (release, date) in [
            ("1.100.0-nightly", "2026-10-01"),
            ("1.101.0-nightly", "2026-10-29"),
            ("1.100.0-beta.5", "2026-10-03"),
            ("1.95.0", "2026-04-14"),
            ("1.101.0-nightly", "2026-10-28"),
            ("1.100.0-beta.7", "2026-10-17"),
            ("1.99.1", "2026-10-13"),
            ("1.100.0-beta.6", "2026-10-10"),
            ("1.94.0", "2026-02-01"),
        ] {
            manifest.add_sysroot(Target::None, sysroot(release, date));
        }
        // Each target's list is pruned by itself.
        for (release, date) in [
            ("1.101.0-nightly", "2026-10-29"),
            ("1.100.0-nightly", "2026-10-01"),
        ] {
            manifest.add_sysroot(Target::Hermit, sysroot(release, date));
        }
        let dropped = prune_prereleases(&mut manifest, 2);
        assert_eq!(
            names(&dropped),
            ["1.100.0-beta.5 2026-10-03", "1.100.0-nightly 2026-10-01"]
        );
        assert_eq!(manifest.sysroots(Target::Hermit).len(), 2);
        assert_eq!(
            names(&manifest.sysroots),
            [
                "1.101.0-nightly 2026-10-29",
                "1.101.0-nightly 2026-10-28",
                "1.100.0-beta.7 2026-10-17",
                "1.99.1 2026-10-13",
                "1.100.0-beta.6 2026-10-10",
                "1.95.0 2026-04-14",
                "1.94.0 2026-02-01",
            ]
        );

        let dropped = prune_prereleases(&mut manifest, 0);
        // Four of x86_64-hyperlight-none, both of x86_64-hyperlight-hermit.
        assert_eq!(dropped.len(), 6);
        assert!(manifest.sysroots(Target::Hermit).is_empty());
        assert_eq!(
            names(&manifest.sysroots),
            [
                "1.99.1 2026-10-13",
                "1.95.0 2026-04-14",
                "1.94.0 2026-02-01"
            ]
        );
    }
}
