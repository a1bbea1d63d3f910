//! `networking.istio.io`: VirtualService (`validateVirtualService`, `validateHTTPRoute`, ...) and
//! DestinationRule (`validateDestinationRule`, `validateTrafficPolicy`, ...).

use serde_json::{Map, Value};

use super::rules;
use super::Admission;

type Obj = Map<String, Value>;

fn list<'a>(obj: &'a Obj, key: &str) -> &'a [Value] {
    obj.get(key)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

fn object<'a>(obj: &'a Obj, key: &str) -> Option<&'a Obj> {
    obj.get(key).and_then(Value::as_object)
}

fn text<'a>(obj: &'a Obj, key: &str) -> &'a str {
    obj.get(key).and_then(Value::as_str).unwrap_or_default()
}

fn int(obj: &Obj, key: &str) -> Option<i64> {
    obj.get(key).and_then(Value::as_i64)
}

fn number(obj: &Obj, key: &str) -> Option<f64> {
    obj.get(key).and_then(Value::as_f64)
}

fn strings(obj: &Obj, key: &str) -> Vec<String> {
    list(obj, key)
        .iter()
        .filter_map(|v| v.as_str().map(str::to_string))
        .collect()
}

/// `host.Name.Matches`: equal, or one a wildcard covering the other.
fn hosts_overlap(a: &str, b: &str) -> bool {
    let covers = |wild: &str, other: &str| match wild.strip_prefix('*') {
        Some(suffix) => other.ends_with(suffix),
        None => wild == other,
    };
    covers(a, b) || covers(b, a)
}

// ------------------------------------------------------------------------------ VirtualService

pub(super) fn virtual_service(spec: &Obj, namespace: &str, a: &mut Admission) {
    let hosts = strings(spec, "hosts");
    let gateways = strings(spec, "gateways");
    let delegate = hosts.is_empty();
    let applies_to_mesh = gateways.is_empty() || gateways.iter().any(|g| g == "mesh");
    if delegate {
        if !gateways.is_empty() {
            a.error(
                "spec.gateways",
                "delegate virtual service must have no gateways specified",
            );
        }
        if !list(spec, "tls").is_empty() {
            a.error(
                "spec.tls",
                "delegate virtual service must have no tls route",
            );
        }
        if !list(spec, "tcp").is_empty() {
            a.error(
                "spec.tcp",
                "delegate virtual service must have no tcp route",
            );
        }
    } else {
        let mut all_valid = true;
        // A VirtualService with TLS SNI matches may name Istio's SNI clusters
        // (`outbound_.<port>_._.<host>`), as `ValidateWildcardDomainForVirtualServiceBoundToGateway`.
        let sni = list(spec, "tls").iter().any(|t| {
            list(t.as_object().unwrap_or(&Obj::new()), "match")
                .iter()
                .any(|m| {
                    m.get("sniHosts")
                        .and_then(Value::as_array)
                        .is_some_and(|h| !h.is_empty())
                })
        });
        for (i, host) in hosts.iter().enumerate() {
            let at = format!("spec.hosts[{i}]");
            if host == "*" && applies_to_mesh {
                a.error(
                    &at,
                    "wildcard host * is not allowed for virtual services bound to the mesh gateway",
                );
                all_valid = false;
            } else if rules::is_ip(host) {
                a.warn(
                    &at,
                    format!("using an IP address ({host}) as a host is discouraged"),
                );
            } else if let Err(e) = rules::vs_host(sni, host) {
                a.error(&at, e);
                all_valid = false;
            }
        }
        if all_valid {
            for i in 0..hosts.len() {
                for j in i + 1..hosts.len() {
                    if hosts_overlap(&hosts[i], &hosts[j]) {
                        a.error(
                            format!("spec.hosts[{j}]"),
                            format!(
                                "duplicate hosts in virtual service: {} & {}",
                                hosts[i], hosts[j]
                            ),
                        );
                    }
                }
            }
        }
    }
    gateway_names(&gateways, "spec.gateways", a);
    let http = list(spec, "http");
    let tcp = list(spec, "tcp");
    let tls = list(spec, "tls");
    if http.is_empty() && tcp.is_empty() && tls.is_empty() {
        a.error(
            "spec",
            "http, tcp or tls must be provided in virtual service",
        );
    }
    for (i, route) in http.iter().enumerate() {
        let at = format!("spec.http[{i}]");
        let Some(route) = route.as_object() else {
            a.error(&at, "http route may not be null");
            continue;
        };
        if delegate {
            if route.contains_key("delegate") {
                a.error(
                    format!("{at}.delegate"),
                    "delegate HTTP route cannot contain delegate",
                );
            }
            http_route(route, &at, a);
        } else if route.contains_key("delegate") {
            root_delegate_route(route, &at, a);
        } else {
            http_route(route, &at, a);
        }
        if !delegate && applies_to_mesh {
            jwt_claim_routes(route, &at, &gateways, a);
        }
    }
    for (i, route) in tls.iter().enumerate() {
        let at = format!("spec.tls[{i}]");
        let Some(route) = route.as_object() else {
            continue;
        };
        let matches = list(route, "match");
        if matches.is_empty() {
            a.error(&at, "TLS route must have at least one match condition");
        }
        for (j, m) in matches.iter().enumerate() {
            let Some(m) = m.as_object() else { continue };
            let mat = format!("{at}.match[{j}]");
            let sni = strings(m, "sniHosts");
            if sni.is_empty() {
                a.error(
                    format!("{mat}.sniHosts"),
                    "TLS match must have at least one SNI host",
                );
            }
            for (k, host) in sni.iter().enumerate() {
                let at = format!("{mat}.sniHosts[{k}]");
                if rules::is_ip(host) {
                    a.warn(
                        &at,
                        format!("using an IP address ({host}) as an SNI host is discouraged"),
                    );
                } else {
                    a.check(at, rules::vs_host(true, host));
                }
            }
            l4_match(m, &mat, a);
        }
        route_destinations(list(route, "route"), &format!("{at}.route"), "TLS", a);
    }
    for (i, route) in tcp.iter().enumerate() {
        let at = format!("spec.tcp[{i}]");
        let Some(route) = route.as_object() else {
            continue;
        };
        for (j, m) in list(route, "match").iter().enumerate() {
            if let Some(m) = m.as_object() {
                l4_match(m, &format!("{at}.match[{j}]"), a);
            }
        }
        route_destinations(list(route, "route"), &format!("{at}.route"), "TCP", a);
    }
    export_to(&strings(spec, "exportTo"), namespace, false, a);
    unreachable_rules(http, "http", a);
    unreachable_rules(tcp, "tcp", a);
    unreachable_rules(tls, "tls", a);
}

/// Istio's `analyzeUnreachableHTTPRules` (and its TCP and TLS twins), as warnings: a rule after
/// one without matches, a match block an earlier one already has (compared without its `name`),
/// a rule all of whose blocks are such duplicates, and (HTTP only) a `uri.prefix` block that an
/// earlier block with a shorter prefix and the same other conditions already takes.
fn unreachable_rules(routes: &[Value], kind: &str, a: &mut Admission) {
    let http = kind == "http";
    let mut seen: Vec<(Value, usize)> = Vec::new();
    let mut without_matches = false;
    let mut prefixes: Vec<PrefixMatch> = Vec::new();
    for (rulen, route) in routes.iter().enumerate() {
        let Some(route) = route.as_object() else {
            continue;
        };
        let at = format!("spec.{kind}[{rulen}]");
        let name = route_name(route, rulen, http);
        let unused = |reason: &str| format!("virtualService rule {name} not used ({reason})");
        let matches = list(route, "match");
        if matches.is_empty() {
            if without_matches {
                a.warn(&at, unused("only the last rule can have no matches"));
            }
            without_matches = true;
            continue;
        }
        let mut duplicates = 0;
        for (matchn, m) in matches.iter().enumerate() {
            if without_matches {
                a.warn(&at, unused("route without matches defined before"));
                continue;
            }
            let mut key = m.clone();
            if let (true, Some(obj)) = (http, key.as_object_mut()) {
                obj.remove("name");
            }
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == key) {
                let first_name = route_name(
                    routes[*first].as_object().unwrap_or(&Obj::new()),
                    *first,
                    http,
                );
                a.warn(
                    &at,
                    format!(
                        "virtualService rule {name} match {} is not used (duplicate/overlapping match in rule {first_name})",
                        request_name(m, matchn, http)
                    ),
                );
                duplicates += 1;
                continue;
            }
            seen.push((key, rulen));
            if http {
                if let Some(p) = PrefixMatch::new(m, rulen, &name, matchn) {
                    prefixes.push(p);
                }
            }
        }
        if duplicates == matches.len() {
            a.warn(&at, unused("all matches used by prior rules"));
        }
    }
    for (i, earlier) in prefixes.iter().enumerate() {
        for later in &prefixes[i + 1..] {
            if later.prefix != earlier.prefix && earlier.covers(later) {
                a.warn(
                    &format!("spec.{kind}[{}]", later.rule),
                    format!(
                        "virtualService rule {} match {} of prefix {} is not used (duplicate/overlapping match in rule {} of prefix {} on {})",
                        later.route_name, later.match_name, later.prefix,
                        earlier.match_name, earlier.prefix, earlier.route_name
                    ),
                );
            }
        }
    }
}

/// `routeName`: an HTTP rule's quoted name, else `#<index>`.
fn route_name(route: &Obj, index: usize, http: bool) -> String {
    match route.get("name").and_then(Value::as_str) {
        Some(name) if http && !name.is_empty() => format!("{name:?}"),
        _ => format!("#{index}"),
    }
}

/// `requestName`: an HTTP match block's quoted name, else `#<index>`.
fn request_name(m: &Value, index: usize, http: bool) -> String {
    match m.get("name").and_then(Value::as_str) {
        Some(name) if http && !name.is_empty() => format!("{name:?}"),
        _ => format!("#{index}"),
    }
}

/// Istio's `OverlappingMatchValidationForHTTPRoute`: a match block with a `uri.prefix`, its other
/// conditions reduced to `exact:<v>` / `prefix:<v>` (regexes to ""); no method counts as GET.
struct PrefixMatch {
    rule: usize,
    route_name: String,
    match_name: String,
    prefix: String,
    port: i64,
    method: String,
    authority: String,
    headers: std::collections::BTreeMap<String, String>,
    query_params: std::collections::BTreeMap<String, String>,
    without_headers: std::collections::BTreeMap<String, String>,
}

impl PrefixMatch {
    fn new(m: &Value, rule: usize, route_name: &str, matchn: usize) -> Option<PrefixMatch> {
        let m = m.as_object()?;
        let prefix = object(m, "uri")
            .map(|u| text(u, "prefix"))
            .unwrap_or_default();
        if prefix.is_empty() {
            return None;
        }
        let exact_or_prefix = |sm: Option<&Obj>| {
            let Some(sm) = sm else {
                return String::new();
            };
            match (text(sm, "exact"), text(sm, "prefix")) {
                (exact, _) if !exact.is_empty() => format!("exact:{exact}"),
                (_, prefix) if !prefix.is_empty() => format!("prefix:{prefix}"),
                _ => String::new(),
            }
        };
        let map = |key: &str| {
            object(m, key)
                .map(|o| {
                    o.iter()
                        .map(|(k, v)| (k.clone(), exact_or_prefix(v.as_object())))
                        .collect()
                })
                .unwrap_or_default()
        };
        let mut method = exact_or_prefix(object(m, "method"));
        if method.is_empty() {
            method = "exact:GET".to_string();
        }
        Some(PrefixMatch {
            rule,
            route_name: route_name.to_string(),
            match_name: request_name(&Value::Object(m.clone()), matchn, true),
            prefix: prefix.to_string(),
            port: int(m, "port").unwrap_or(0),
            method,
            authority: exact_or_prefix(object(m, "authority")),
            headers: map("headers"),
            query_params: map("queryParams"),
            without_headers: map("withoutHeaders"),
        })
    }

    /// `coveredValidation(self, later)`, as Istio writes it.
    fn covers(&self, later: &PrefixMatch) -> bool {
        let compatible = |a: &str, b: &str| a == b || a.starts_with(b);
        let maps = |a: &std::collections::BTreeMap<String, String>,
                    b: &std::collections::BTreeMap<String, String>| {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, v)| b.get(k).is_some_and(|w| compatible(v, w)))
        };
        later.prefix.starts_with(&self.prefix)
            && later.port == self.port
            && compatible(&self.method, &later.method)
            && compatible(&self.authority, &later.authority)
            && maps(&self.headers, &later.headers)
            && maps(&self.query_params, &later.query_params)
            && maps(&self.without_headers, &later.without_headers)
    }
}

fn gateway_names(gateways: &[String], at: &str, a: &mut Admission) {
    for (i, name) in gateways.iter().enumerate() {
        let at = format!("{at}[{i}]");
        match name.split_once('/') {
            None => {
                if let Some((name_part, ns)) = name.split_once('.') {
                    let ns = ns.split('.').next().unwrap_or_default();
                    a.warn(
                        &at,
                        format!("using legacy gatewayName format {name:?}; prefer the <namespace>/<name> format: \"{ns}/{name_part}\""),
                    );
                }
                a.check(at, rules::fqdn(name));
            }
            Some((ns, gw)) => {
                if ns.is_empty() || gw.is_empty() {
                    a.error(&at, "config namespace and gateway name cannot be empty");
                } else {
                    if !rules::is_dns1123_label(ns) {
                        a.error(&at, format!("invalid value for namespace: {ns:?}"));
                    }
                    if !rules::is_dns1123_label(gw) && rules::fqdn(gw).is_err() {
                        a.error(&at, format!("invalid value for gateway name: {gw:?}"));
                    }
                }
            }
        }
    }
}

fn root_delegate_route(route: &Obj, at: &str, a: &mut Admission) {
    if !list(route, "route").is_empty() {
        a.error(
            format!("{at}.route"),
            "http route must not specify route when delegate is specified",
        );
    }
    for field in ["redirect", "directResponse"] {
        if route.contains_key(field) {
            a.error(
                format!("{at}.{field}"),
                format!("http route must not specify {field} when delegate is specified"),
            );
        }
    }
    let delegate = object(route, "delegate");
    if delegate.is_none_or(|d| text(d, "name").is_empty()) {
        a.error(format!("{at}.delegate.name"), "delegate name is required");
    }
    match_requests(route, at, a);
}

fn jwt_claim_routes(route: &Obj, at: &str, gateways: &[String], a: &mut Admission) {
    for (j, m) in list(route, "match").iter().enumerate() {
        let Some(m) = m.as_object() else { continue };
        for field in ["headers", "withoutHeaders"] {
            for name in object(m, field).into_iter().flat_map(|o| o.keys()) {
                if name.starts_with("@request.auth.claims") {
                    a.error(
                        format!("{at}.match[{j}].{field}"),
                        format!("JWT claim based routing (key: {name}) is only supported for gateway, found no gateways: {gateways:?}"),
                    );
                }
            }
        }
    }
}

/// `validateHTTPRoute`.
fn http_route(route: &Obj, at: &str, a: &mut Admission) {
    let has = |k: &str| route.get(k).is_some_and(|v| !v.is_null());
    let routes = list(route, "route");
    // Conflicts.
    if has("mirror") && !list(route, "mirrors").is_empty() {
        a.error(at, "HTTP route cannot contain both mirror and mirrors");
    }
    if has("redirect") {
        if !routes.is_empty() {
            a.error(at, "HTTP route cannot contain both route and redirect");
        }
        if has("fault") {
            a.error(at, "HTTP route cannot contain both fault and redirect");
        }
        if has("rewrite") {
            a.error(
                at,
                "HTTP route rule cannot contain both rewrite and redirect",
            );
        }
    } else if has("directResponse") {
        if !routes.is_empty() {
            a.error(
                at,
                "HTTP route cannot contain both route and direct_response",
            );
        }
        if has("fault") {
            a.error(
                at,
                "HTTP route cannot contain both fault and direct_response",
            );
        }
        if has("rewrite") {
            a.error(
                at,
                "HTTP route rule cannot contain both rewrite and direct_response",
            );
        }
    } else if routes.is_empty() && !has("delegate") {
        a.error(at, "HTTP route, redirect or direct_response is required");
    }
    match_requests(route, at, a);
    if let Some(headers) = object(route, "headers") {
        header_operations(headers, &format!("{at}.headers"), a);
    }
    if let Some(cors) = object(route, "corsPolicy") {
        cors_policy(cors, &format!("{at}.corsPolicy"), a);
    }
    if let Some(fault) = object(route, "fault") {
        fault_injection(fault, &format!("{at}.fault"), a);
    }
    if let Some(p) = route.get("mirrorPercent").filter(|v| !v.is_null()) {
        let p = p.as_i64().unwrap_or_default();
        if p > 100 {
            a.error(
                format!("{at}.mirrorPercent"),
                format!("mirror_percent must have a max value of 100 (it has {p})"),
            );
        }
        a.warn(
            &format!("{at}.mirrorPercent"),
            "using deprecated setting \"mirrorPercent\", use \"mirrorPercentage\" instead",
        );
    }
    if let Some(p) = object(route, "mirrorPercentage") {
        mirror_percentage(p, &format!("{at}.mirrorPercentage"), a);
    }
    if let Some(d) = object(route, "mirror") {
        destination(d, &format!("{at}.mirror"), a);
    }
    for (i, m) in list(route, "mirrors").iter().enumerate() {
        let at = format!("{at}.mirrors[{i}]");
        let m = m.as_object();
        match m.and_then(|m| object(m, "destination")) {
            Some(d) => destination(d, &format!("{at}.destination"), a),
            None => a.error(
                format!("{at}.destination"),
                "destination is required for mirrors",
            ),
        }
        if let Some(p) = m.and_then(|m| object(m, "percentage")) {
            mirror_percentage(p, &format!("{at}.percentage"), a);
        }
    }
    if let Some(r) = object(route, "redirect") {
        redirect(r, route, &format!("{at}.redirect"), a);
    }
    if let Some(d) = object(route, "directResponse") {
        direct_response(d, &format!("{at}.directResponse"), a);
    }
    if let Some(r) = object(route, "retries") {
        retries(r, &format!("{at}.retries"), a);
    }
    if let Some(r) = object(route, "rewrite") {
        rewrite(r, &format!("{at}.rewrite"), a);
        let authority_header = object(route, "headers")
            .and_then(|h| object(h, "request"))
            .is_some_and(|req| {
                ["set", "add"].iter().any(|op| {
                    object(req, op).is_some_and(|m| {
                        m.keys().any(|k| {
                            k.eq_ignore_ascii_case(":authority") || k.eq_ignore_ascii_case("host")
                        })
                    })
                })
            });
        if authority_header && !text(r, "authority").is_empty() {
            a.error(
                format!("{at}.rewrite.authority"),
                "authority header cannot be set multiple times: have both rewrite.authority and Host header",
            );
        }
    }
    route_destinations(routes, &format!("{at}.route"), "HTTP", a);
    if let Some(t) = route.get("timeout").and_then(Value::as_str) {
        a.check(format!("{at}.timeout"), rules::duration(t));
    }
}

fn mirror_percentage(p: &Obj, at: &str, a: &mut Admission) {
    let v = number(p, "value").unwrap_or_default();
    if v > 100.0 {
        a.error(
            at,
            format!("mirror_percentage must have a max value of 100 (it has {v})"),
        );
    }
    if v < 0.0 {
        a.error(
            at,
            format!("mirror_percentage must have a min value of 0 (it has {v})"),
        );
    }
}

/// `validateHTTPRouteMatchRequest`.
fn match_requests(route: &Obj, at: &str, a: &mut Admission) {
    for (j, m) in list(route, "match").iter().enumerate() {
        let Some(m) = m.as_object() else { continue };
        let mat = format!("{at}.match[{j}]");
        for field in ["headers", "withoutHeaders"] {
            for (name, sm) in object(m, field).into_iter().flatten() {
                let key_at = format!("{mat}.{field}.{name}");
                if !name.starts_with("@request.auth.claims") {
                    a.check(format!("{mat}.{field}"), rules::header_name(name));
                }
                match sm.as_object() {
                    Some(sm) => string_match(sm, field, true, &key_at, a),
                    None => a.error(key_at, format!("header match {name} cannot be null")),
                }
            }
        }
        if let Some(sm) = object(m, "uri") {
            // An empty URI prefix is allowed (it matches everything).
            string_match(sm, "uri", false, &format!("{mat}.uri"), a);
        }
        for field in ["scheme", "method", "authority"] {
            if let Some(sm) = object(m, field) {
                string_match(sm, field, true, &format!("{mat}.{field}"), a);
            }
        }
        for (name, sm) in object(m, "queryParams").into_iter().flatten() {
            if let Some(sm) = sm.as_object() {
                string_match(
                    sm,
                    "queryParams",
                    true,
                    &format!("{mat}.queryParams.{name}"),
                    a,
                );
            }
        }
        if let Some(p) = int(m, "port").filter(|p| *p != 0) {
            a.check(format!("{mat}.port"), rules::port(p));
        }
        if let Some(labels) = object(m, "sourceLabels") {
            for e in rules::label_map(labels) {
                a.error(format!("{mat}.sourceLabels"), e);
            }
        }
        gateway_names(&strings(m, "gateways"), &format!("{mat}.gateways"), a);
        let ns = text(m, "sourceNamespace");
        if !ns.is_empty() && !rules::is_dns1123_label(ns) {
            a.error(
                format!("{mat}.sourceNamespace"),
                format!("sourceNamespace match {ns} must be a valid DNS-1123 label"),
            );
        }
    }
    // A redirect's prefixRewrite needs every URI match to be a prefix match.
    let prefix_rewrite = object(route, "redirect")
        .map(|r| text(r, "prefixRewrite"))
        .is_some_and(|p| !p.is_empty());
    if prefix_rewrite {
        for (j, m) in list(route, "match").iter().enumerate() {
            let uri = m.get("uri").and_then(Value::as_object);
            if uri.is_some_and(|u| !u.contains_key("prefix")) {
                a.error(
                    format!("{at}.match[{j}].uri"),
                    "redirect prefix_rewrite requires all URI matches to use prefix match type",
                );
            }
        }
    }
}

/// `validateStringMatch` (and `validateStringMatchRegexp` for URIs: `empty_prefix_ok`).
fn string_match(sm: &Obj, where_: &str, prefix_must_be_set: bool, at: &str, a: &mut Admission) {
    if let Some(p) = sm.get("prefix").and_then(Value::as_str) {
        if prefix_must_be_set && p.is_empty() {
            a.error(
                format!("{at}.prefix"),
                format!("{where_:?}: prefix string match should not be empty"),
            );
        }
    }
    if let Some(re) = sm.get("regex").and_then(Value::as_str) {
        // `regex: "*"` in a header match is Istio's "present" spelling.
        if re == "*" && matches!(where_, "headers" | "withoutHeaders") {
            return;
        }
        a.check(format!("{at}.regex"), rules::regex(re, where_));
    }
}

fn l4_match(m: &Obj, at: &str, a: &mut Admission) {
    if let Some(p) = int(m, "port").filter(|p| *p != 0) {
        a.check(format!("{at}.port"), rules::port(p));
    }
    if let Some(labels) = object(m, "sourceLabels") {
        for e in rules::label_map(labels) {
            a.error(format!("{at}.sourceLabels"), e);
        }
    }
    gateway_names(&strings(m, "gateways"), &format!("{at}.gateways"), a);
}

fn header_operations(headers: &Obj, at: &str, a: &mut Admission) {
    for (side, allow_authority) in [("request", true), ("response", false)] {
        let Some(ops) = object(headers, side) else {
            continue;
        };
        for op in ["set", "add"] {
            for (name, value) in object(ops, op).into_iter().flatten() {
                let path = format!("{at}.{side}.{op}");
                a.check(&path, rules::header_operation_name(name, allow_authority));
                a.check(
                    path,
                    rules::header_value(value.as_str().unwrap_or_default()),
                );
            }
        }
        for (i, name) in strings(ops, "remove").iter().enumerate() {
            a.check(
                format!("{at}.{side}.remove[{i}]"),
                rules::header_operation_name(name, false),
            );
        }
    }
}

const HTTP_METHODS: [&str; 9] = [
    "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
];

fn cors_policy(cors: &Obj, at: &str, a: &mut Admission) {
    for (i, origin) in list(cors, "allowOrigins").iter().enumerate() {
        let Some(o) = origin.as_object() else {
            continue;
        };
        let value = ["exact", "prefix", "regex"]
            .iter()
            .find_map(|k| o.get(*k).and_then(Value::as_str))
            .unwrap_or_default();
        let at = format!("{at}.allowOrigins[{i}]");
        if value.is_empty() {
            a.error(
                &at,
                format!("'{value}' is not a valid match type for CORS allow origins"),
            );
        } else if let Some(re) = o.get("regex").and_then(Value::as_str) {
            a.check(
                format!("{at}.regex"),
                rules::regex(re, "corsPolicy.allowOrigins"),
            );
        }
    }
    for (i, m) in strings(cors, "allowMethods").iter().enumerate() {
        if !HTTP_METHODS.contains(&m.as_str()) {
            a.error(
                format!("{at}.allowMethods[{i}]"),
                format!("{m:?} is not a supported HTTP method"),
            );
        }
    }
    for field in ["allowHeaders", "exposeHeaders"] {
        for (i, h) in strings(cors, field).iter().enumerate() {
            a.check(format!("{at}.{field}[{i}]"), rules::header_name(h));
        }
    }
    if let Some(d) = cors.get("maxAge").and_then(Value::as_str) {
        a.check(format!("{at}.maxAge"), rules::duration(d));
    }
}

const GRPC_CODES: [&str; 17] = [
    "OK",
    "CANCELLED",
    "UNKNOWN",
    "INVALID_ARGUMENT",
    "DEADLINE_EXCEEDED",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "PERMISSION_DENIED",
    "RESOURCE_EXHAUSTED",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
    "UNIMPLEMENTED",
    "INTERNAL",
    "UNAVAILABLE",
    "DATA_LOSS",
    "UNAUTHENTICATED",
];

fn fault_percentage(f: &Obj, at: &str, a: &mut Admission) {
    if let Some(p) = object(f, "percentage") {
        a.check(
            format!("{at}.percentage"),
            rules::percent(number(p, "value").unwrap_or_default()),
        );
    }
}

fn fault_injection(fault: &Obj, at: &str, a: &mut Admission) {
    if fault.get("abort").is_none() && fault.get("delay").is_none() {
        a.error(at, "HTTP fault injection must have an abort and/or a delay");
    }
    if let Some(abort) = object(fault, "abort") {
        let at = format!("{at}.abort");
        fault_percentage(abort, &at, a);
        if let Some(s) = int(abort, "httpStatus") {
            if !(200..=599).contains(&s) {
                a.error(
                    format!("{at}.httpStatus"),
                    format!("invalid abort http status {s}"),
                );
            }
        }
        if let Some(code) = abort.get("grpcStatus").and_then(Value::as_str) {
            if !GRPC_CODES.contains(&code) {
                a.error(
                    format!("{at}.grpcStatus"),
                    format!("invalid abort grpc status {code:?}"),
                );
            }
        }
    }
    if let Some(delay) = object(fault, "delay") {
        let at = format!("{at}.delay");
        fault_percentage(delay, &at, a);
        for field in ["fixedDelay", "exponentialDelay"] {
            if let Some(d) = delay.get(field).and_then(Value::as_str) {
                a.check(format!("{at}.{field}"), rules::duration(d));
            }
        }
    }
}

fn redirect(r: &Obj, _route: &Obj, at: &str, a: &mut Admission) {
    let uri = text(r, "uri");
    let prefix = text(r, "prefixRewrite");
    if uri.is_empty()
        && text(r, "authority").is_empty()
        && text(r, "scheme").is_empty()
        && prefix.is_empty()
        && r.get("port").is_none()
        && r.get("derivePort").is_none()
    {
        a.error(at, "redirect must specify URI, authority, scheme, or port");
    }
    if !uri.is_empty() && !prefix.is_empty() {
        a.error(at, "redirect may only specify one of uri or prefix_rewrite");
    }
    if let Some(code) = int(r, "redirectCode").filter(|c| *c != 0) {
        if !(300..=399).contains(&code) {
            a.error(
                format!("{at}.redirectCode"),
                format!("{code} is not a valid redirect code, must be 3xx"),
            );
        }
    }
}

fn direct_response(d: &Obj, at: &str, a: &mut Admission) {
    let status = int(d, "status").unwrap_or_default();
    if !(200..=599).contains(&status) {
        a.error(
            format!("{at}.status"),
            format!("DirectResponse: HTTP status {status} is not in range 200-599"),
        );
    }
    if let Some(body) = object(d, "body") {
        let size = match (body.get("string"), body.get("bytes")) {
            (Some(Value::String(s)), _) => s.len(),
            // base64: 4 characters per 3 bytes.
            (_, Some(Value::String(b))) => b.len() / 4 * 3,
            _ => 0,
        };
        const MAX_BODY: usize = 100 * 1024;
        if size > MAX_BODY {
            a.warn(
                &format!("{at}.body"),
                format!("DirectResponse: size of the body ({size} bytes) is larger than 100KB, which is not recommended"),
            );
        }
    }
}

const RETRY_ON: [&str; 17] = [
    "5xx",
    "gateway-error",
    "reset",
    "reset-before-request",
    "connect-failure",
    "envoy-ratelimited",
    "retriable-4xx",
    "refused-stream",
    "retriable-status-codes",
    "retriable-headers",
    "http3-post-connect-failure",
    "cancelled",
    "deadline-exceeded",
    "internal",
    "resource-exhausted",
    "unavailable",
    "non-idempotent",
];

fn retries(r: &Obj, at: &str, a: &mut Admission) {
    let attempts = int(r, "attempts").unwrap_or_default();
    if attempts < 0 {
        a.error(format!("{at}.attempts"), "attempts cannot be negative");
    }
    if attempts == 0
        && (r.contains_key("perTryTimeout")
            || !text(r, "retryOn").is_empty()
            || r.contains_key("retryRemoteLocalities"))
    {
        a.error(
            at,
            "http retry policy configured when attempts are set to 0 (disabled)",
        );
    }
    for field in ["perTryTimeout", "backoff"] {
        if let Some(d) = r.get(field).and_then(Value::as_str) {
            a.check(format!("{at}.{field}"), rules::duration(d));
        }
    }
    let retry_on = text(r, "retryOn");
    if !retry_on.is_empty() {
        for policy in retry_on.split(',').map(str::trim) {
            let ok = match policy.parse::<i64>() {
                Ok(code) => (100..=599).contains(&code),
                Err(_) => RETRY_ON.contains(&policy),
            };
            if !ok {
                a.error(
                    format!("{at}.retryOn"),
                    format!("{policy} is not a valid retryOn policy"),
                );
            }
        }
    }
}

fn rewrite(r: &Obj, at: &str, a: &mut Admission) {
    let uri = text(r, "uri");
    let regex = object(r, "uriRegexRewrite");
    if !uri.is_empty() && regex.is_some() {
        a.error(at, "rewrite may only contain one of URI or UriRegexRewrite");
    }
    if uri.is_empty() && regex.is_none() && text(r, "authority").is_empty() {
        a.error(
            at,
            "rewrite must specify at least one of URI, UriRegexRewrite, or authority. Only one of URI or UriRegexRewrite may be specified",
        );
    }
    if let Some(re) = regex {
        let (m, rw) = (text(re, "match"), text(re, "rewrite"));
        if m.is_empty() || rw.is_empty() {
            a.error(
                format!("{at}.uriRegexRewrite"),
                "UriRegexRewrite requires both Rewrite and Match fields to be specified",
            );
        } else {
            a.check(
                format!("{at}.uriRegexRewrite.match"),
                rules::regex(m, "uriRegexRewrite.match"),
            );
        }
    }
}

/// `validateDestination`: a host (not `*`), a DNS-1123 subset, a port in range.
fn destination(d: &Obj, at: &str, a: &mut Admission) {
    let host = text(d, "host");
    if host == "*" {
        a.error(
            format!("{at}.host"),
            format!("invalid destination host {host}"),
        );
    } else {
        a.check(format!("{at}.host"), rules::wildcard_domain(host));
    }
    let subset = text(d, "subset");
    if !subset.is_empty() && !rules::is_dns1123_label(subset) {
        a.error(
            format!("{at}.subset"),
            format!("subset name is invalid: {subset}"),
        );
    }
    if let Some(p) = object(d, "port") {
        a.check(
            format!("{at}.port.number"),
            rules::port(int(p, "number").unwrap_or_default()),
        );
    }
}

/// `validateHTTPRouteDestinations` / `validateRouteDestinations`: every destination valid,
/// weights not negative, and (with several destinations) not all zero. Weights are relative:
/// they need not sum to 100.
fn route_destinations(routes: &[Value], at: &str, kind: &str, a: &mut Admission) {
    if routes.is_empty() && kind != "HTTP" {
        a.error(at, format!("{kind} route is required"));
    }
    let mut total = 0i64;
    for (j, rd) in routes.iter().enumerate() {
        let at = format!("{at}[{j}]");
        let Some(rd) = rd.as_object() else { continue };
        match object(rd, "destination") {
            Some(d) => destination(d, &format!("{at}.destination"), a),
            None => a.error(format!("{at}.destination"), "destination is required"),
        }
        if let Some(headers) = object(rd, "headers") {
            header_operations(headers, &format!("{at}.headers"), a);
        }
        if let Some(w) = int(rd, "weight") {
            if w < 0 {
                a.error(format!("{at}.weight"), format!("weight {w} < 0"));
            }
            total = total.saturating_add(w);
        }
    }
    if routes.len() > 1 && total == 0 {
        a.error(at, "total destination weight = 0");
    }
}

/// `validateExportTo`.
fn export_to(list: &[String], namespace: &str, dr_with_selector: bool, a: &mut Admission) {
    if list.is_empty() {
        return;
    }
    let mut seen: Vec<String> = Vec::new();
    for (i, e) in list.iter().enumerate() {
        let at = format!("spec.exportTo[{i}]");
        let key = if e == "." {
            namespace.to_string()
        } else {
            e.clone()
        };
        if seen.contains(&key) {
            if key != *e {
                a.error(
                    at,
                    format!("duplicate entries in exportTo: . and current namespace {namespace}"),
                );
            } else {
                a.error(at, format!("duplicate entries in exportTo for {key}"));
            }
            continue;
        }
        if key == "~" {
            a.error(
                &at,
                "exportTo ~ (none) is not allowed for Istio configuration objects other than ServiceEntry",
            );
        } else if key != "*" && !rules::is_dns1123_label(&key) {
            a.error(&at, format!("only ., *, or a valid DNS 1123 label is allowed as exportTo entry, got {key:?}"));
        }
        seen.push(key);
    }
    if dr_with_selector {
        if seen.iter().any(|s| s == namespace) {
            if seen.len() > 1 {
                a.error(
                    "spec.exportTo",
                    "destination rule with workload selector cannot have multiple entries in exportTo",
                );
            }
        } else {
            a.error(
                "spec.exportTo",
                "destination rule with workload selector cannot have exportTo beyond current namespace",
            );
        }
    }
    if seen.iter().any(|s| s == "*") && list.len() > 1 {
        a.error(
            "spec.exportTo",
            "cannot have both public (*) and non-public exportTo values for a resource",
        );
    }
}

// ----------------------------------------------------------------------------- DestinationRule

pub(super) fn destination_rule(spec: &Obj, namespace: &str, a: &mut Admission) {
    let host = text(spec, "host");
    a.check("spec.host", rules::wildcard_domain(host));
    if let Some(p) = object(spec, "trafficPolicy") {
        traffic_policy(p, "spec.trafficPolicy", a);
    }
    let mut names: Vec<&str> = Vec::new();
    for (i, subset) in list(spec, "subsets").iter().enumerate() {
        let at = format!("spec.subsets[{i}]");
        let Some(subset) = subset.as_object() else {
            a.error(&at, "subset may not be null");
            continue;
        };
        let name = text(subset, "name");
        if names.contains(&name) {
            a.error(
                format!("{at}.name"),
                format!("duplicate subset names: {name}"),
            );
        }
        names.push(name);
        if name.is_empty() {
            a.error(format!("{at}.name"), "subset name cannot be empty");
        } else if !rules::is_dns1123_label(name) {
            a.error(
                format!("{at}.name"),
                format!("subset name is invalid: {name}"),
            );
        }
        if let Some(labels) = object(subset, "labels") {
            for e in rules::label_map(labels) {
                a.error(format!("{at}.labels"), e);
            }
        }
        if let Some(p) = object(subset, "trafficPolicy") {
            traffic_policy(p, &format!("{at}.trafficPolicy"), a);
        }
    }
    let selector = object(spec, "workloadSelector");
    if let Some(sel) = selector {
        let labels = object(sel, "matchLabels");
        if labels.is_none_or(Map::is_empty) {
            a.warn(
                "spec.workloadSelector",
                "workload selector specified without labels; it selects every workload of the namespace",
            );
        }
        if let Some(labels) = labels {
            for e in rules::label_map(labels) {
                a.error("spec.workloadSelector.matchLabels", e);
            }
        }
    }
    export_to(&strings(spec, "exportTo"), namespace, selector.is_some(), a);
}

fn traffic_policy(p: &Obj, at: &str, a: &mut Admission) {
    const FIELDS: [&str; 7] = [
        "loadBalancer",
        "connectionPool",
        "outlierDetection",
        "tls",
        "portLevelSettings",
        "tunnel",
        "proxyProtocol",
    ];
    if !FIELDS
        .iter()
        .any(|f| p.get(*f).is_some_and(|v| !v.is_null()))
    {
        a.error(at, "traffic policy must have at least one field");
        return;
    }
    policy_parts(p, at, a);
    for (i, port) in list(p, "portLevelSettings").iter().enumerate() {
        let at = format!("{at}.portLevelSettings[{i}]");
        let Some(port) = port.as_object() else {
            continue;
        };
        match object(port, "port") {
            None => a.error(
                format!("{at}.port"),
                "portTrafficPolicy must have valid port",
            ),
            Some(sel) => a.check(
                format!("{at}.port.number"),
                rules::port(int(sel, "number").unwrap_or_default()),
            ),
        }
        if !FIELDS[..4].iter().any(|f| port.contains_key(*f)) {
            a.error(&at, "port traffic policy must have at least one field");
        }
        policy_parts(port, &at, a);
    }
}

fn policy_parts(p: &Obj, at: &str, a: &mut Admission) {
    if let Some(od) = object(p, "outlierDetection") {
        outlier_detection(od, &format!("{at}.outlierDetection"), a);
    }
    if let Some(cp) = object(p, "connectionPool") {
        connection_pool(cp, &format!("{at}.connectionPool"), a);
    }
    if let Some(lb) = object(p, "loadBalancer") {
        load_balancer(lb, &format!("{at}.loadBalancer"), a);
    }
    if let Some(tls) = object(p, "tls") {
        client_tls(tls, &format!("{at}.tls"), a);
    }
}

fn outlier_detection(od: &Obj, at: &str, a: &mut Admission) {
    for field in ["baseEjectionTime", "interval"] {
        if let Some(d) = od.get(field).and_then(Value::as_str) {
            a.check(format!("{at}.{field}"), rules::duration(d));
        }
    }
    if od
        .get("consecutiveErrors")
        .and_then(Value::as_i64)
        .unwrap_or(0)
        != 0
    {
        a.warn(
            &format!("{at}.consecutiveErrors"),
            "outlier detection consecutive errors is deprecated, use consecutiveGatewayErrors or consecutive5xxErrors instead",
        );
    }
    for field in ["maxEjectionPercent", "minHealthPercent"] {
        if let Some(v) = number(od, field) {
            a.check(format!("{at}.{field}"), rules::percent(v));
        }
    }
    let split = od
        .get("splitExternalLocalOriginErrors")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    if od.get("consecutiveLocalOriginFailures").is_some() && !split {
        a.error(
            format!("{at}.consecutiveLocalOriginFailures"),
            "outlier detection consecutive local origin failures is specified, but split external local origin errors is set to false",
        );
    }
}

fn connection_pool(cp: &Obj, at: &str, a: &mut Admission) {
    let http = object(cp, "http");
    let tcp = object(cp, "tcp");
    if http.is_none() && tcp.is_none() {
        a.error(at, "connection pool must have at least one field");
    }
    if let Some(h) = http {
        let at = format!("{at}.http");
        for (field, what) in [
            ("http1MaxPendingRequests", "http1 max pending requests"),
            ("http2MaxRequests", "http2 max requests"),
            ("maxRequestsPerConnection", "max requests per connection"),
            ("maxRetries", "max retries"),
            ("maxConcurrentStreams", "max concurrent streams"),
        ] {
            if int(h, field).is_some_and(|v| v < 0) {
                a.error(
                    format!("{at}.{field}"),
                    format!("{what} must be non-negative"),
                );
            }
        }
        if let Some(d) = h.get("idleTimeout").and_then(Value::as_str) {
            a.check(format!("{at}.idleTimeout"), rules::duration(d));
        }
        if text(h, "h2UpgradePolicy") == "UPGRADE"
            && h.get("useClientProtocol").and_then(Value::as_bool) == Some(true)
        {
            a.error(
                &at,
                "use client protocol must not be true when H2UpgradePolicy is UPGRADE",
            );
        }
        if let Some(ka) = object(h, "http2KeepAlive") {
            let at = format!("{at}.http2KeepAlive");
            for field in ["interval", "timeout"] {
                match ka.get(field).and_then(Value::as_str) {
                    None => a.error(
                        format!("{at}.{field}"),
                        format!("http2 keepalive {field} is required"),
                    ),
                    Some(d) => a.check(format!("{at}.{field}"), rules::duration(d)),
                }
            }
        }
    }
    if let Some(t) = tcp {
        let at = format!("{at}.tcp");
        if int(t, "maxConnections").is_some_and(|v| v < 0) {
            a.error(
                format!("{at}.maxConnections"),
                "max connections must be non-negative",
            );
        }
        for field in ["connectTimeout", "maxConnectionDuration"] {
            if let Some(d) = t.get(field).and_then(Value::as_str) {
                a.check(format!("{at}.{field}"), rules::duration(d));
            }
        }
        // `0s` disables the TCP idle timeout.
        if let Some(d) = t.get("idleTimeout").and_then(Value::as_str) {
            if rules::parse_duration(d) != Some(0) {
                a.check(format!("{at}.idleTimeout"), rules::duration(d));
            }
        }
    }
}

fn load_balancer(lb: &Obj, at: &str, a: &mut Admission) {
    if let Some(ch) = object(lb, "consistentHash") {
        let at = format!("{at}.consistentHash");
        if let Some(cookie) = object(ch, "httpCookie") {
            let at = format!("{at}.httpCookie");
            if text(cookie, "name").is_empty() {
                a.error(format!("{at}.name"), "name required for HttpCookie");
            }
            let mut seen: Vec<&str> = Vec::new();
            for (i, attr) in list(cookie, "attributes").iter().enumerate() {
                let name = attr.get("name").and_then(Value::as_str).unwrap_or_default();
                let at = format!("{at}.attributes[{i}].name");
                if name.is_empty() {
                    a.error(at, "cookie attribute name cannot be empty");
                } else if seen.contains(&name) {
                    a.error(at, format!("duplicate cookie attribute name: {name}"));
                } else {
                    seen.push(name);
                }
            }
        }
        let algorithm = ch.contains_key("ringHash") || ch.contains_key("maglev");
        if int(ch, "minimumRingSize").unwrap_or(0) != 0 && algorithm {
            a.error(
                &at,
                "only one of MinimumRingSize or Maglev/Ringhash can be specified",
            );
        }
        if let Some(m) = object(ch, "maglev") {
            let size = int(m, "tableSize").unwrap_or(0);
            if size != 0 && !rules::is_prime(size.unsigned_abs()) {
                a.error(
                    format!("{at}.maglev.tableSize"),
                    "tableSize must be a prime number for maglev",
                );
            }
        }
    }
    if lb.contains_key("localityLbSetting") && lb.contains_key("zoneAwareLbSetting") {
        a.error(
            at,
            "only one of localityLbSetting or zoneAwareLbSetting can be set",
        );
    }
    if let Some(w) = object(lb, "warmup") {
        let at = format!("{at}.warmup");
        match w.get("duration").and_then(Value::as_str) {
            None => a.error(format!("{at}.duration"), "Required value"),
            Some(d) => a.check(format!("{at}.duration"), rules::duration(d)),
        }
        if let Some(p) = number(w, "minimumPercent") {
            if !(0.0..=100.0).contains(&p) {
                a.error(
                    format!("{at}.minimumPercent"),
                    format!("Invalid value: {p}: must be between 0 and 100"),
                );
            }
        }
        if let Some(x) = number(w, "aggression") {
            if x < 0.0 {
                a.error(
                    format!("{at}.aggression"),
                    format!("Invalid value: {x}: must not be negative"),
                );
            }
        }
    }
}

fn client_tls(tls: &Obj, at: &str, a: &mut Admission) {
    let mode = text(tls, "mode");
    let set = |k: &str| !text(tls, k).is_empty();
    let skip_verify = tls.get("insecureSkipVerify").and_then(Value::as_bool) == Some(true);
    if skip_verify {
        if !list(tls, "subjectAltNames").is_empty() {
            a.error(
                format!("{at}.subjectAltNames"),
                "cannot specify SubjectAltNames when InsecureSkipVerify is set true",
            );
        }
        if set("caCertificates") {
            a.error(
                format!("{at}.caCertificates"),
                "cannot specify CaCertificates when InsecureSkipVerify is set true",
            );
        }
        if mode == "SIMPLE" && set("credentialName") {
            a.error(
                format!("{at}.credentialName"),
                "cannot specify CredentialName when InsecureSkipVerify is set true in SIMPLE mode",
            );
        }
    }
    if matches!(mode, "SIMPLE" | "MUTUAL") && set("credentialName") {
        if ["clientCertificate", "privateKey", "caCertificates", "caCrl"]
            .into_iter()
            .any(set)
        {
            a.error(
                at,
                "cannot specify client certificates or CA certificate or CA CRL If credentialName is set",
            );
        }
        return;
    }
    if mode == "MUTUAL" {
        if !set("clientCertificate") {
            a.error(
                format!("{at}.clientCertificate"),
                "client certificate required for mutual tls",
            );
        }
        if !set("privateKey") {
            a.error(
                format!("{at}.privateKey"),
                "private key required for mutual tls",
            );
        }
    }
}
