//! `/openapi/v2` in the protobuf form kubectl 1.27/1.28 request
//! (`application/com.github.proto-openapi.spec.v2@v1.0+protobuf`, gnostic's `openapi.v2.Document`).
//!
//! Only what kubectl reads from it is encoded: each resource's PATCH operation with its
//! `x-kubernetes-group-version-kind` and the `fieldValidation`/`dryRun`/`fieldManager`/`force`
//! query parameters, so kubectl uses server-side field validation. Without definitions, kubectl
//! falls back to its compiled-in types for strategic merge patches.

use crate::resources::ResourceInfo;

/// The media type of the protobuf OpenAPI v2 document.
pub const MEDIA_TYPE: &str = "application/com.github.proto-openapi.spec.v2.v1.0+protobuf";

fn varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn bytes_field(out: &mut Vec<u8>, field: u64, data: &[u8]) {
    varint(out, (field << 3) | 2);
    varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

fn bool_field(out: &mut Vec<u8>, field: u64, v: bool) {
    varint(out, field << 3);
    varint(out, u64::from(v));
}

fn query_param(name: &str, ty: &str) -> Vec<u8> {
    // QueryParameterSubSchema { in = 2; name = 4; type = 6; unique_items = 20 }
    let mut q = vec![];
    bytes_field(&mut q, 2, b"query");
    bytes_field(&mut q, 4, name.as_bytes());
    bytes_field(&mut q, 6, ty.as_bytes());
    bool_field(&mut q, 20, true);
    // NonBodyParameter { query_parameter_sub_schema = 3 } in Parameter { non_body_parameter = 2 }
    // in ParametersItem { parameter = 1 }
    let mut nb = vec![];
    bytes_field(&mut nb, 3, &q);
    let mut p = vec![];
    bytes_field(&mut p, 2, &nb);
    let mut item = vec![];
    bytes_field(&mut item, 1, &p);
    item
}

fn gvk_extension(r: &ResourceInfo) -> Vec<u8> {
    // NamedAny { name = 1; value = 2: Any { yaml = 2 } }
    let yaml = format!(
        "group: {:?}\nkind: {}\nversion: {}\n",
        r.group, r.kind, r.version
    );
    let mut any = vec![];
    bytes_field(&mut any, 2, yaml.as_bytes());
    let mut named = vec![];
    bytes_field(&mut named, 1, b"x-kubernetes-group-version-kind");
    bytes_field(&mut named, 2, &any);
    named
}

/// Encodes the document.
pub fn document(resources: &[ResourceInfo], version: &str) -> Vec<u8> {
    let mut paths = vec![];
    for r in resources {
        let gv = if r.group.is_empty() {
            format!("/api/{}", r.version)
        } else {
            format!("/apis/{}/{}", r.group, r.version)
        };
        let path = if r.namespaced {
            format!("{gv}/namespaces/{{namespace}}/{}/{{name}}", r.plural)
        } else {
            format!("{gv}/{}/{{name}}", r.plural)
        };
        // Operation { operation_id = 5; parameters = 8; vendor_extension = 13 }
        let mut op = vec![];
        bytes_field(
            &mut op,
            5,
            format!("patch{}{}", r.version, r.kind).as_bytes(),
        );
        for (name, ty) in [
            ("dryRun", "string"),
            ("fieldManager", "string"),
            ("fieldValidation", "string"),
            ("force", "boolean"),
        ] {
            bytes_field(&mut op, 8, &query_param(name, ty));
        }
        bytes_field(&mut op, 13, &gvk_extension(r));
        // PathItem { patch = 8 }
        let mut item = vec![];
        bytes_field(&mut item, 8, &op);
        // NamedPathItem { name = 1; value = 2 }
        let mut named = vec![];
        bytes_field(&mut named, 1, path.as_bytes());
        bytes_field(&mut named, 2, &item);
        // Paths { path = 2 }
        bytes_field(&mut paths, 2, &named);
    }
    let mut info = vec![];
    bytes_field(&mut info, 1, b"Kubernetes");
    bytes_field(&mut info, 2, version.as_bytes());
    let mut doc = vec![];
    bytes_field(&mut doc, 1, b"2.0");
    bytes_field(&mut doc, 2, &info);
    bytes_field(&mut doc, 8, &paths);
    doc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_and_fields() {
        let mut v = vec![];
        varint(&mut v, 300);
        assert_eq!(v, vec![0xac, 0x02]);
        let mut f = vec![];
        bytes_field(&mut f, 1, b"2.0");
        assert_eq!(f, vec![0x0a, 3, b'2', b'.', b'0']);
        let doc = document(&crate::resources::builtins(), "v1.33.0");
        assert!(doc.starts_with(&[0x0a, 3, b'2', b'.', b'0']));
        let text = String::from_utf8_lossy(&doc);
        assert!(text.contains("/apis/apps/v1/namespaces/{namespace}/deployments/{name}"));
        assert!(text.contains("group: \"apps\"\nkind: Deployment\nversion: v1\n"));
    }
}
