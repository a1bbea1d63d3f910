use super::*;

const SEED_004_BACKEND: &str = r#"
apiVersion: networking.istio.io/v1alpha3
kind: VirtualService
metadata:
  name: backend
  namespace: default
  resourceVersion: "123"
  uid: 0b0e
spec:
  gateways: []
  hosts:
  - "backend.default.svc.cluster.local"
  http:
  - match:
    - headers:
        canary:
          exact: "canary-tester"
    route:
    - destination:
        host: backend.default.svc.cluster.local
        subset: v2
        port:
          number: 80
      weight: 100
    timeout: 5s
  - match:
    - {}
    route:
    - destination:
        host: backend.default.svc.cluster.local
        subset: v1
        port:
          number: 80
      weight: 90
    - destination:
        host: backend.default.svc.cluster.local
        subset: v2
        port:
          number: 80
      weight: 10
"#;

fn parse(yaml: &str) -> IstioObject {
    let value: Value = serde_yaml::from_str(yaml).unwrap();
    IstioObject::from_value(&value).unwrap().unwrap()
}

#[test]
fn reads_older_api_versions_and_ignores_unmodelled_fields() {
    let IstioObject::VirtualService(vs) = parse(SEED_004_BACKEND) else {
        panic!("not a VirtualService")
    };
    assert_eq!(vs.metadata.namespace.as_deref(), Some("default"));
    assert_eq!(vs.spec.http.len(), 2);
    let tester = &vs.spec.http[0];
    assert_eq!(
        tester.matches[0].headers["canary"],
        StringMatch::exact("canary-tester")
    );
    assert_eq!(
        tester.route[0].destination.port,
        Some(PortSelector { number: 80 })
    );
    assert_eq!(vs.spec.http[1].matches, vec![HttpMatchRequest::default()]);
    let weights: Vec<_> = vs.spec.http[1].route.iter().map(|d| d.weight).collect();
    assert_eq!(weights, [Some(90), Some(10)]);
}

#[test]
fn other_kinds_are_not_ours_and_bad_shapes_name_the_field() {
    let svc = serde_json::json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x"}});
    assert!(IstioObject::from_value(&svc).unwrap().is_none());
    let bad = serde_json::json!({
        "apiVersion": "networking.istio.io/v1", "kind": "VirtualService",
        "metadata": {"name": "r", "namespace": "ns"},
        "spec": {"http": [{"route": [{"destination": {"host": "r"}, "weight": "lots"}]}]}
    });
    let err = IstioObject::from_value(&bad).unwrap_err().to_string();
    assert!(
        err.starts_with("VirtualService ns/r: spec.http[0].route[0].weight: "),
        "{err}"
    );
}

#[test]
fn writes_in_istio_field_order_without_empty_fields() {
    let dr = DestinationRule {
        api_version: NETWORKING_V1.into(),
        kind: "DestinationRule".into(),
        metadata: ObjectMeta {
            name: "reviews".into(),
            namespace: Some("bookinfo".into()),
            ..Default::default()
        },
        spec: DestinationRuleSpec {
            host: "reviews".into(),
            traffic_policy: Some(TrafficPolicy {
                tls: Some(ClientTlsSettings {
                    mode: Some(TlsMode::IstioMutual),
                }),
            }),
            subsets: vec![Subset {
                name: "v1".into(),
                labels: [("version".to_string(), "v1".to_string())].into(),
                traffic_policy: None,
            }],
            export_to: vec![],
        },
    };
    let yaml = serde_yaml::to_string(&IstioObject::DestinationRule(dr.clone())).unwrap();
    assert_eq!(
        yaml,
        "apiVersion: networking.istio.io/v1\nkind: DestinationRule\nmetadata:\n  name: reviews\n  \
         namespace: bookinfo\nspec:\n  host: reviews\n  trafficPolicy:\n    tls:\n      mode: \
         ISTIO_MUTUAL\n  subsets:\n  - name: v1\n    labels:\n      version: v1\n"
    );
    let back = parse(&yaml);
    assert_eq!(back, IstioObject::DestinationRule(dr));
}

#[test]
fn hosts_qualify_and_wildcards_match() {
    assert_eq!(
        qualify_host("reviews", "bookinfo"),
        "reviews.bookinfo.svc.cluster.local"
    );
    assert_eq!(
        qualify_host("Reviews.other.svc.cluster.local", "b"),
        "reviews.other.svc.cluster.local"
    );
    assert_eq!(qualify_host("*", "b"), "*");
    assert!(host_matches("*", "anything.example.com"));
    assert!(host_matches("*.example.com", "shop.example.com"));
    assert!(!host_matches("*.example.com", "example.com"));
    assert!(!host_matches("*.example.com", "shop.example.org"));
    assert!(host_matches("Shop.Example.com", "shop.example.com"));
}
