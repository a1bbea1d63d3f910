//! Printing Kubernetes objects as kubectl does: YAML documents separated by `---`, or JSON where
//! several objects become a `v1` `List`. Output is deterministic: struct fields in declaration
//! order, maps sorted.

use std::io::{self, Write};

use serde::Serialize;
use serde_json::Value;

/// How objects are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// YAML documents separated by `---`.
    #[default]
    Yaml,
    /// Pretty JSON; several objects as a `v1` `List`.
    Json,
}

/// Serialise one object to JSON (objects whose serialisation fails — none of ours — print as
/// `null` rather than panicking).
fn to_json<T: Serialize>(object: &T) -> Value {
    serde_json::to_value(object).unwrap_or(Value::Null)
}

/// The objects as a YAML stream: documents separated by `---`, none for an empty slice.
pub fn to_yaml<T: Serialize>(objects: &[T]) -> String {
    crate::manifest::to_yaml_stream(objects)
}

/// The objects as pretty JSON: one object alone, several (or none) as a `v1` `List`.
pub fn to_json_text<T: Serialize>(objects: &[T]) -> String {
    let doc = match objects {
        [one] => to_json(one),
        many => serde_json::json!({
            "apiVersion": "v1",
            "kind": "List",
            "items": many.iter().map(to_json).collect::<Vec<_>>(),
        }),
    };
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

/// Write the objects in `format`.
pub fn write_objects<T: Serialize>(
    out: &mut impl Write,
    objects: &[T],
    format: Format,
) -> io::Result<()> {
    let text = match format {
        Format::Yaml => to_yaml(objects),
        Format::Json => to_json_text(objects),
    };
    out.write_all(text.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn yaml_separates_documents_and_json_wraps_several_in_a_list() {
        let a = json!({"apiVersion": "v1", "kind": "A", "metadata": {"name": "a"}});
        let b = json!({"apiVersion": "v1", "kind": "B", "metadata": {"name": "b"}});
        let objects = [a.clone(), b];
        assert_eq!(
            to_yaml(&objects),
            "apiVersion: v1\nkind: A\nmetadata:\n  name: a\n---\napiVersion: v1\nkind: B\nmetadata:\n  name: b\n"
        );
        let list: Value = serde_json::from_str(&to_json_text(&objects)).unwrap();
        assert_eq!(list["kind"], "List");
        assert_eq!(list["items"][1]["kind"], "B");
        let one: Value = serde_json::from_str(&to_json_text(std::slice::from_ref(&a))).unwrap();
        assert_eq!(one, a);
        let mut buf = Vec::new();
        write_objects(&mut buf, &objects, Format::Json).unwrap();
        assert_eq!(buf, to_json_text(&objects).into_bytes());
    }
}
