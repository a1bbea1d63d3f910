//! Reading Kubernetes objects from files, as `kubectl apply -f` does: YAML streams (`---`
//! separated) or JSON, `kind: List` unpacked, directories read file by file (`.yaml`, `.yml`,
//! `.json`, sorted), `-` for stdin.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// A file that could not be read as objects.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The file or directory could not be read.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The path.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Refused before parsing: over the manifest size limit or nested too deeply.
    #[error(transparent)]
    Bounds(crate::bounds::InputError),
    /// A document is not valid YAML/JSON.
    #[error("{path}: document {index}: {message}")]
    Parse {
        /// The path.
        path: String,
        /// 1-based index of the document in the stream.
        index: usize,
        /// The parser's message (with line and column).
        message: String,
    },
    /// A document is not a Kubernetes object.
    #[error("{path}: document {index}: not a Kubernetes object (needs apiVersion, kind and metadata.name)")]
    NotAnObject {
        /// The path.
        path: String,
        /// 1-based index of the document.
        index: usize,
    },
}

/// One object with where it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct Sourced {
    /// The object.
    pub object: Value,
    /// The file it came from (`-` for stdin).
    pub path: String,
}

/// Read every object from `paths` (files, directories, or `-`), in order.
pub fn read_paths(paths: &[PathBuf]) -> Result<Vec<Sourced>, ManifestError> {
    let mut out = Vec::new();
    for path in paths {
        if path.as_os_str() == "-" {
            let text = read_bounded(path, "-")?;
            out.extend(parse_stream(&text, "-")?);
        } else if path.is_dir() {
            for file in dir_files(path)? {
                out.extend(read_file(&file)?);
            }
        } else {
            out.extend(read_file(path)?);
        }
    }
    Ok(out)
}

/// The manifest files of a directory (`.yaml`, `.yml`, `.json`), sorted, as `read_paths` reads them.
pub fn dir_files(dir: &Path) -> Result<Vec<PathBuf>, ManifestError> {
    let io = |source| ManifestError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(io)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| {
            p.is_file()
                && matches!(
                    p.extension().and_then(|e| e.to_str()),
                    Some("yaml" | "yml" | "json")
                )
        })
        .collect();
    files.sort();
    Ok(files)
}

fn read_file(path: &Path) -> Result<Vec<Sourced>, ManifestError> {
    let origin = path.display().to_string();
    let text = read_bounded(path, &origin)?;
    parse_stream(&text, &origin)
}

/// Read one file (or `-`) of objects, refused before parsing when it is over
/// [`crate::bounds::MANIFEST`] or nested deeper than [`crate::bounds::MAX_NESTING`].
pub fn read_bounded(path: &Path, origin: &str) -> Result<String, ManifestError> {
    crate::bounds::read(path, origin, crate::bounds::MANIFEST).map_err(|e| match e {
        crate::bounds::InputError::Io { path, source } => ManifestError::Io {
            path: path.display().to_string(),
            source,
        },
        other => ManifestError::Bounds(other),
    })
}

/// Parse a YAML or JSON stream into objects (`List`s unpacked, empty documents skipped).
pub fn parse_stream(text: &str, path: &str) -> Result<Vec<Sourced>, ManifestError> {
    let mut out = Vec::new();
    for (i, doc) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let index = i + 1;
        let value = Value::deserialize(doc).map_err(|e| ManifestError::Parse {
            path: path.to_string(),
            index,
            message: e.to_string(),
        })?;
        if value.is_null() {
            continue;
        }
        let items = if value.get("kind").and_then(Value::as_str) == Some("List") {
            value
                .get("items")
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default()
        } else {
            vec![value]
        };
        for object in items {
            let ok = object.get("apiVersion").and_then(Value::as_str).is_some()
                && object.get("kind").and_then(Value::as_str).is_some()
                && object
                    .pointer("/metadata/name")
                    .and_then(Value::as_str)
                    .is_some();
            if !ok {
                return Err(ManifestError::NotAnObject {
                    path: path.to_string(),
                    index,
                });
            }
            out.push(Sourced {
                object,
                path: path.to_string(),
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_streams_json_and_lists() {
        let text = "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\n---\n\
                    {\"apiVersion\": \"v1\", \"kind\": \"List\", \"items\": [\
                    {\"apiVersion\": \"v1\", \"kind\": \"Pod\", \"metadata\": {\"name\": \"p\"}}]}\n";
        let objects = parse_stream(text, "x.yaml").unwrap();
        let kinds: Vec<&str> = objects
            .iter()
            .map(|o| o.object["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["Service", "Pod"]);
    }

    #[test]
    fn errors_name_the_document() {
        let err = parse_stream("kind: Service\n---\na: [1,\n", "x.yaml").unwrap_err();
        assert_eq!(
            err.to_string(),
            "x.yaml: document 1: not a Kubernetes object (needs apiVersion, kind and metadata.name)"
        );
        let err = parse_stream(
            "apiVersion: v1\nkind: Service\nmetadata: {name: a}\n---\na: [1,\n",
            "x.yaml",
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(msg.starts_with("x.yaml: document 2: "), "{msg}");
        assert!(msg.contains("line"), "{msg}");
    }

    #[test]
    fn directories_read_sorted_manifest_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("b.yaml"),
            "apiVersion: v1\nkind: Pod\nmetadata: {name: b}\n",
        )
        .unwrap();
        std::fs::write(
            dir.path().join("a.json"),
            r#"{"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a"}}"#,
        )
        .unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not yaml: [").unwrap();
        let objects = read_paths(&[dir.path().to_path_buf()]).unwrap();
        let names: Vec<&str> = objects
            .iter()
            .map(|o| o.object["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a", "b"]);
    }
}
