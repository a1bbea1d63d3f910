//! Istio's CRD bundle (from ../shared) installed with `kubectl apply --server-side`; Istio
//! objects validated against their schemas.

mod common;

use common::{fails, ok, require_kubectl, require_shared, runtime};
use kube_emulator::{Emulator, Options};

const VS: &str = "apiVersion: networking.istio.io/v1
kind: VirtualService
metadata: {name: reviews}
spec:
  hosts: [reviews]
  http:
  - route:
    - destination: {host: reviews, subset: v1}
      weight: 90
    - destination: {host: reviews, subset: v2}
      weight: 10
";

#[test]
fn istio_crds_install_and_validate() {
    let Some(shared) = require_shared() else {
        return;
    };
    let Some(bin) = require_kubectl() else {
        return;
    };
    let rt = runtime();
    let emu = rt
        .block_on(Emulator::start(Options::default()))
        .expect("start");
    let kc = emu.kubeconfig_path();
    let crds = shared.join("fixtures/istio/customresourcedefinitions.gen.yaml");
    let out = ok(
        &bin,
        kc,
        &[
            "apply",
            "--server-side",
            "-f",
            crds.to_str().expect("utf-8 path"),
        ],
        None,
    );
    assert!(
        out.contains("virtualservices.networking.istio.io serverside-applied"),
        "{out}"
    );
    let resources = ok(
        &bin,
        kc,
        &[
            "api-resources",
            "--api-group=networking.istio.io",
            "-o",
            "name",
        ],
        None,
    );
    assert!(
        resources.contains("virtualservices.networking.istio.io")
            && resources.contains("destinationrules.networking.istio.io"),
        "{resources}"
    );

    assert!(
        ok(&bin, kc, &["apply", "--server-side", "-f", "-"], Some(VS))
            .contains("serverside-applied")
    );
    assert!(
        ok(
            &bin,
            kc,
            &[
                "get",
                "vs",
                "reviews",
                "-o",
                "jsonpath={.spec.http[0].route[1].weight}"
            ],
            None
        ) == "10"
    );

    let wrong_type = VS.replace("weight: 10", "weight: ten");
    let err = fails(
        &bin,
        kc,
        &["apply", "--server-side", "-f", "-"],
        Some(&wrong_type),
    );
    assert!(
        err.contains("is invalid") && err.contains("spec.http[0].route[1].weight"),
        "{err}"
    );
    let unknown = VS.replace("  hosts: [reviews]\n", "  hosts: [reviews]\n  hostz: [x]\n");
    let err = fails(&bin, kc, &["apply", "-f", "-"], Some(&unknown));
    assert!(err.contains("unknown field \"spec.hostz\""), "{err}");
    // istiod's webhook refuses what the schema lets through.
    let negative = VS
        .replace("weight: 90", "weight: -10")
        .replace("weight: 10", "weight: 110");
    let err = fails(
        &bin,
        kc,
        &["apply", "--server-side", "-f", "-"],
        Some(&negative),
    );
    assert!(
        err.contains("admission webhook \"validation.istio.io\" denied the request"),
        "{err}"
    );
    // The refused objects changed nothing.
    assert!(ok(&bin, kc, &["get", "vs", "reviews", "-o", "yaml"], None).contains("weight: 10"));
    rt.block_on(emu.shutdown());
}
