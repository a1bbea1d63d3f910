//! What a module is: its `canary.metadata` section, imports and exports, checked against ABI v1.

use serde::{Deserialize, Serialize};
use wasmtime::{ExternType, FuncType, Module, ValType};

use super::error::Cause;

/// Name of the custom section holding a policy's metadata.
pub const METADATA_SECTION: &str = "canary.metadata";

/// The `canary.metadata` custom section.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Policy name.
    pub name: String,
    /// Policy version.
    #[serde(default)]
    pub version: String,
    /// One-line description.
    #[serde(default)]
    pub description: String,
    /// ABI version the policy was built for.
    #[serde(default)]
    pub abi: Option<u32>,
    /// JSON Schema of the policy's `config`.
    #[serde(default)]
    pub config_schema: serde_json::Value,
}

/// The optional export that validates a release's config (see [`super::config`]).
pub const VALIDATE_CONFIG_EXPORT: &str = "canary_validate_config";

/// An import or export, for `policy inspect`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Item {
    /// `module.name` for imports, `name` for exports.
    pub name: String,
    /// `func (i32, i32) -> i64`, `memory`, ...
    #[serde(rename = "type")]
    pub ty: String,
}

/// Reads the `canary.metadata` section, if any. Parses only section headers (cheap).
pub(crate) fn read_metadata(binary: &[u8]) -> Result<Option<Metadata>, Cause> {
    let mut found = None;
    for payload in wasmparser::Parser::new(0).parse_all(binary) {
        let payload = payload.map_err(|e| Cause::InvalidModule(e.to_string()))?;
        if let wasmparser::Payload::CustomSection(section) = payload {
            if section.name() == METADATA_SECTION {
                found = Some(section.data().to_vec());
            }
        }
    }
    let Some(data) = found else {
        return Ok(None);
    };
    let text = std::str::from_utf8(&data).map_err(|e| Cause::Metadata(e.to_string()))?;
    serde_json::from_str(text)
        .map(Some)
        .map_err(|e| Cause::Metadata(e.to_string()))
}

/// Imports of a compiled module.
pub(crate) fn imports(module: &Module) -> Vec<Item> {
    module
        .imports()
        .map(|i| Item {
            name: format!("{}.{}", i.module(), i.name()),
            ty: describe(&i.ty()),
        })
        .collect()
}

/// Exports of a compiled module.
pub(crate) fn exports(module: &Module) -> Vec<Item> {
    module
        .exports()
        .map(|e| Item {
            name: e.name().to_string(),
            ty: describe(&e.ty()),
        })
        .collect()
}

/// Only `canary.log: (i32, i32, i32) -> ()` may be imported.
pub(crate) fn check_imports(module: &Module) -> Result<(), Cause> {
    for import in module.imports() {
        if (import.module(), import.name()) != ("canary", "log") {
            return Err(Cause::ForbiddenImport {
                module: import.module().to_string(),
                name: import.name().to_string(),
            });
        }
        match import.ty() {
            ExternType::Func(f) if sig_is(&f, &[ValType::I32, ValType::I32, ValType::I32], &[]) => {
            }
            other => {
                return Err(Cause::BadImportType {
                    found: describe(&other),
                })
            }
        }
    }
    Ok(())
}

/// The ABI v1 exports exist with the right types.
pub(crate) fn check_exports(module: &Module) -> Result<(), Cause> {
    use ValType::{I32, I64};
    type Expected<'a> = (
        &'static str,
        &'a [ValType],
        &'a [ValType],
        &'static str,
        bool,
    );
    let funcs: [Expected<'_>; 5] = [
        ("canary_abi_version", &[], &[I32], "func () -> i32", true),
        ("canary_alloc", &[I32], &[I32], "func (i32) -> i32", true),
        (
            "canary_decide",
            &[I32, I32],
            &[I64],
            "func (i32, i32) -> i64",
            true,
        ),
        ("canary_dealloc", &[I32, I32], &[], "func (i32, i32)", false),
        (
            VALIDATE_CONFIG_EXPORT,
            &[I32, I32],
            &[I64],
            "func (i32, i32) -> i64",
            false,
        ),
    ];
    match module.get_export("memory") {
        Some(ExternType::Memory(_)) => {}
        Some(other) => {
            return Err(Cause::BadExportType {
                name: "memory",
                expected: "memory",
                found: describe(&other),
            })
        }
        None => return Err(Cause::MissingExport { name: "memory" }),
    }
    for (name, params, results, expected, required) in funcs {
        match module.get_export(name) {
            Some(ExternType::Func(f)) if sig_is(&f, params, results) => {}
            Some(other) => {
                return Err(Cause::BadExportType {
                    name,
                    expected,
                    found: describe(&other),
                })
            }
            None if required => return Err(Cause::MissingExport { name }),
            None => {}
        }
    }
    Ok(())
}

fn sig_is(f: &FuncType, params: &[ValType], results: &[ValType]) -> bool {
    let same = |a: &mut dyn ExactSizeIterator<Item = ValType>, b: &[ValType]| {
        a.len() == b.len() && a.zip(b).all(|(x, y)| ValType::eq(&x, y))
    };
    same(&mut f.params(), params) && same(&mut f.results(), results)
}

fn describe(ty: &ExternType) -> String {
    match ty {
        ExternType::Func(f) => {
            let list = |it: &mut dyn Iterator<Item = ValType>| {
                it.map(|v| v.to_string()).collect::<Vec<_>>().join(", ")
            };
            let params = list(&mut f.params());
            let results = list(&mut f.results());
            if results.is_empty() {
                format!("func ({params})")
            } else {
                format!("func ({params}) -> {results}")
            }
        }
        ExternType::Memory(m) => format!("memory (min {} pages)", m.minimum()),
        ExternType::Table(_) => "table".to_string(),
        ExternType::Global(_) => "global".to_string(),
        ExternType::Tag(_) => "tag".to_string(),
    }
}
