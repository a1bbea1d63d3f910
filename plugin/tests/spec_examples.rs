//! Every release spec in `examples/` validates, and gives the release the seed scenario
//! describes.

use std::path::{Path, PathBuf};

use kubectl_canary::spec::{self, MtlsMode};
use serde_json::json;

/// One service as the policy sees it: name, stable subset, canary subset, entry, gateways.
type Service = (
    &'static str,
    &'static str,
    &'static str,
    bool,
    &'static [&'static str],
);

struct Expected {
    file: &'static str,
    name: &'static str,
    namespace: &'static str,
    services: &'static [Service],
    config: serde_json::Value,
    mtls: Option<MtlsMode>,
}

fn expectations() -> Vec<Expected> {
    vec![
        Expected {
            file: "voting-app.yaml",
            name: "voting-v2",
            namespace: "voting",
            services: &[
                (
                    "voting-app",
                    "v1-0",
                    "v2-0",
                    true,
                    &["voting/voting-app-gateway"],
                ),
                ("voting-analytics", "v1-1", "v2-0", false, &[]),
                ("voting-storage", "v1-0", "v2-0", false, &[]),
            ],
            config: json!({"testers": {"cookie": "featureflag=on"}, "chain": true,
                           "steps": [0, 100]}),
            mtls: Some(MtlsMode::Strict),
        },
        Expected {
            file: "nginx-weighted.yaml",
            name: "nginx-v2",
            namespace: "demo",
            services: &[("nginx", "v1", "v2", true, &[])],
            config: json!({"steps": [30, 80, 100], "pause": "5m"}),
            mtls: None,
        },
        Expected {
            file: "bookinfo-reviews.yaml",
            name: "reviews-v3",
            namespace: "default",
            services: &[("reviews", "v1", "v3", true, &[])],
            config: json!({"steps": [50, 100]}),
            mtls: None,
        },
        Expected {
            file: "weather-testers.yaml",
            name: "weather-v2",
            namespace: "weather",
            services: &[
                (
                    "frontend",
                    "v1",
                    "v2",
                    true,
                    &["istio-system/weather-gateway"],
                ),
                ("forecast", "v1", "v2", false, &[]),
            ],
            config: json!({"testers": {"cookie": "user=tester"}, "chain": true,
                           "steps": [0, 100]}),
            mtls: None,
        },
        Expected {
            file: "frontend-backend.yaml",
            name: "frontend-backend-v2",
            namespace: "default",
            services: &[
                ("frontend", "v1", "v2", true, &[]),
                ("backend", "v1", "v2", false, &[]),
            ],
            config: json!({"testers": {"header": {"name": "canary", "exact": "canary-tester"}},
                           "chain": true, "steps": [10, 50, 100], "pause": "5m"}),
            mtls: None,
        },
    ]
}

fn examples_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

#[test]
fn every_example_validates_and_gives_its_scenario() {
    let expectations = expectations();
    let mut files: Vec<String> = std::fs::read_dir(examples_dir())
        .expect("examples/ exists")
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".yaml") || name.ends_with(".yml"))
        .collect();
    files.sort();
    let mut expected_files: Vec<&str> = expectations.iter().map(|e| e.file).collect();
    expected_files.sort();
    assert_eq!(files, expected_files, "every example has expectations here");

    for expected in &expectations {
        let path = examples_dir().join(expected.file);
        let release = spec::load_file(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        assert_eq!(release.name(), expected.name, "{}", expected.file);
        assert_eq!(release.namespace(), expected.namespace, "{}", expected.file);
        assert_eq!(release.spec.policy.module, "builtin:progressive");
        assert_eq!(
            release.spec.policy.config, expected.config,
            "{}",
            expected.file
        );
        assert_eq!(release.spec.mtls, expected.mtls, "{}", expected.file);

        let info = release.release_info();
        assert_eq!(info.name, expected.name);
        assert_eq!(info.namespace, expected.namespace);
        let got: Vec<(String, String, String, bool, Vec<String>)> = info
            .services
            .iter()
            .map(|s| {
                assert_eq!(s.host, s.name);
                assert_eq!(s.stable.labels["app"], s.name);
                assert_eq!(s.canary.labels["app"], s.name);
                (
                    s.name.clone(),
                    s.stable.subset.clone(),
                    s.canary.subset.clone(),
                    s.entry,
                    s.gateways.clone(),
                )
            })
            .collect();
        let want: Vec<(String, String, String, bool, Vec<String>)> = expected
            .services
            .iter()
            .map(|(name, stable, canary, entry, gateways)| {
                (
                    name.to_string(),
                    stable.to_string(),
                    canary.to_string(),
                    *entry,
                    gateways.iter().map(|g| g.to_string()).collect(),
                )
            })
            .collect();
        assert_eq!(got, want, "{}", expected.file);
    }
}

#[test]
fn every_example_starts_with_a_comment_naming_its_seed() {
    for expected in expectations() {
        let text = std::fs::read_to_string(examples_dir().join(expected.file)).unwrap();
        assert!(text.starts_with("# Seed 00"), "{}", expected.file);
        assert!(text.contains("# Shows:"), "{}", expected.file);
    }
}

#[test]
fn nginx_example_clones_the_canary_deployment_with_an_image() {
    let release = spec::load_file(&examples_dir().join("nginx-weighted.yaml")).unwrap();
    let nginx = &release.spec.services[0];
    assert_eq!(nginx.canary.image.as_deref(), Some("nginx:1.15"));
    assert_eq!(nginx.stable.version, "v1");
}

#[test]
fn voting_example_gateway_vs_uses_all_hosts() {
    let release = spec::load_file(&examples_dir().join("voting-app.yaml")).unwrap();
    assert_eq!(release.spec.services[0].hosts, ["*"]);
    assert!(release.spec.services[1].hosts.is_empty());
    // The cookie the voting app's feature flag sets, as the builtin policy matches it: first,
    // or after others separated by "; " as browsers send them.
    let re = spec::cookie_regex("featureflag=on");
    assert_eq!(re, "^(.*?;\\s*)?(featureflag=on)(;.*)?$");
    let re = regex::Regex::new(&re).unwrap();
    for header in [
        "featureflag=on",
        "a=1;featureflag=on",
        "a=1; featureflag=on; b=2",
    ] {
        assert!(re.is_match(header), "{header}");
    }
    for header in ["featureflag=off", "xfeatureflag=on", "a=1; featureflag=onx"] {
        assert!(!re.is_match(header), "{header}");
    }
}
