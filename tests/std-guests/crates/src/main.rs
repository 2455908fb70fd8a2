//! crates.io crates that need std, built for and run in a guest.

use anyhow::Context;

fn main() -> anyhow::Result<()> {
    let value: serde_json::Value =
        serde_json::from_str(r#"{"guest": "hermit", "answer": 42}"#).context("parsing JSON")?;
    println!("json: {value}");
    let pattern = regex::Regex::new(r"(\d{4})-(\d{2})-(\d{2})")?;
    let date = pattern.captures("released 2026-12-01").context("no date")?;
    println!("regex: {}/{}/{}", &date[3], &date[2], &date[1]);
    let missing: anyhow::Result<()> = Err(anyhow::anyhow!("inner")).context("outer");
    println!("anyhow: {:#}", missing.unwrap_err());
    Ok(())
}
