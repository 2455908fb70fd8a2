//! Mutated manifests served to the real installer, each with a `manifest.json.sha256` that
//! matches it, so that only reading the manifest decides: install.sh installs from exactly the
//! manifests `hyperlight_install::manifest::Manifest::parse` accepts, and refuses the others
//! with exit 7 and the parser's reason, changing nothing. The parser alone is fuzzed
//! (fuzz/fuzz_targets/manifest.rs); this checks that the installer keeps to its verdict, end
//! to end. The mutations are a fixed handful, one per way a manifest can be wrong or merely
//! new (each install.sh run costs a tenth of a second).

mod support;

use hyperlight_install::manifest::Manifest;
use serde_json::Value;
use support::{assert_failure, serve_copy, server, stable_dist, text, Sandbox};
use testkit::{assert_success, pinned_toolchain, TARGET};

const EXIT_VERIFY: i32 = 7;

/// A case: its name, the served manifest, and the reason install.sh gives when it refuses it
/// (`None`: it must install from it).
type Case = (&'static str, Vec<u8>, Option<&'static str>);

fn cases() -> Vec<Case> {
    let original = std::fs::read_to_string(stable_dist().join("manifest.json")).unwrap();
    let value: Value = serde_json::from_str(&original).unwrap();
    let edited = |edit: &dyn Fn(&mut Value)| {
        let mut value = value.clone();
        edit(&mut value);
        (serde_json::to_string_pretty(&value).unwrap() + "\n").into_bytes()
    };
    let url = value["sysroots"][0]["url"].as_str().unwrap().to_owned();
    let size = value["sysroots"][0]["size"].as_u64().unwrap();
    let text = |s: String| s.into_bytes();
    vec![
        (
            "unknown-key",
            edited(&|v| v["comment"] = "added by a newer dist".into()),
            None,
        ),
        (
            "minor-version",
            edited(&|v| v["manifest-version"] = "2.1".into()),
            None,
        ),
        (
            "major-version",
            edited(&|v| v["manifest-version"] = "3".into()),
            Some("has manifest-version \"3\", which this version does not understand"),
        ),
        (
            "no-version",
            edited(&|v| {
                v.as_object_mut().unwrap().remove("manifest-version");
            }),
            Some("has manifest-version \"\", which this version does not understand"),
        ),
        (
            "repeated-key",
            text(original.replacen(
                "\"url\": ",
                "\"url\": \"other.tar.gz\",\n      \"url\": ",
                1,
            )),
            Some("is not a valid manifest (duplicate field `url`"),
        ),
        (
            "url-with-a-path",
            edited(&|v| v["sysroots"][0]["url"] = format!("../{url}").into()),
            Some(" is not a plain file name)"),
        ),
        (
            "size-as-string",
            edited(&|v| v["sysroots"][0]["size"] = size.to_string().into()),
            Some("is not a valid manifest (invalid type: string"),
        ),
        (
            "missing-commit-hash",
            edited(&|v| {
                v["sysroots"][0]
                    .as_object_mut()
                    .unwrap()
                    .remove("commit-hash");
            }),
            Some("is not a valid manifest (missing field `commit-hash`"),
        ),
        (
            "truncated",
            text(original[..original.len() / 2].to_owned()),
            Some("is not a valid manifest (EOF while parsing"),
        ),
        (
            "trailing-bytes",
            text(original.clone() + "}"),
            Some("is not a valid manifest (trailing characters"),
        ),
        (
            "not-an-object",
            text("[]\n".to_owned()),
            Some("does not understand"),
        ),
        (
            "byte-order-mark",
            text(format!("\u{feff}{original}")),
            Some("is not a valid manifest (expected value"),
        ),
    ]
}

#[test]
fn install_sh_installs_from_exactly_the_manifests_the_parser_accepts() {
    let (_dir, nginx) = server();
    // One toolchain for the accepted manifests, one with an older install for the refused.
    let accepting = Sandbox::new(&pinned_toolchain());
    accepting.install_release_runner();
    let refusing = Sandbox::new(&pinned_toolchain());
    refusing.fake_previous_install();
    refusing.install_release_runner();
    let before = refusing.snapshot();
    for (label, manifest, refusal) in cases() {
        let parsed = Manifest::parse(&manifest, "manifest.json");
        assert_eq!(
            parsed.is_ok(),
            refusal.is_none(),
            "{label}: the parser says {parsed:?}"
        );
        let served = serve_copy(&nginx, stable_dist(), label);
        support::replace_manifest(&served, &manifest);
        let url = format!("{}/{label}", nginx.url());
        let args = ["-y", "-q", "--no-runner", "--dist-server", &url];
        match refusal {
            None => {
                let output = accepting.run(&args);
                assert_success(&output, &format!("{label}: install.sh"));
                let installed = accepting.rustlib().join(TARGET).join("target.json");
                assert!(installed.is_file(), "{label}: {}", text(&output.stderr));
            }
            Some(reason) => {
                let output = refusing.run(&args);
                let origin = format!("error: {url}/manifest.json");
                assert_failure(&output, EXIT_VERIFY, &[&origin, reason], &refusing, &before);
            }
        }
    }
}
