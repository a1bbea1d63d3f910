//! Policies in OCI registries: `oci://registry/repository:tag` or `...@sha256:<digest>`.
//!
//! A module is stored as the wasm OCI artefacts of Kubewarden and of the CNCF wasm artefact
//! layout are: an image manifest whose config is `application/vnd.wasm.config.v0+json` and whose
//! one layer is the module's bytes, `application/vnd.wasm.content.layer.v1+wasm` (the CNCF
//! layout's `application/wasm` layer is read too). The manifest and the layer are kept in the
//! local store, both named by their digests, so a reference whose manifest digest is known is
//! served without the registry.

use std::path::PathBuf;

use base64::Engine as _;
use oci_client::client::{Certificate, CertificateEncoding, ClientConfig};
use oci_client::errors::OciDistributionError;
use oci_client::manifest::{OciImageManifest, IMAGE_MANIFEST_MEDIA_TYPE, OCI_IMAGE_MEDIA_TYPE};
use oci_client::secrets::RegistryAuth;
use oci_client::{Client, Reference, RegistryOperation};
use serde_json::json;

use super::error::Cause;
use super::fetch::{
    block_on, chain, extra_roots_pem, install_crypto_provider, tls_failure, CONNECT_TIMEOUT,
    READ_TIMEOUT,
};
use super::limits::MAX_MODULE_BYTES;
use super::source::sha256_hex;
use super::store::ModuleStore;

/// The config media type `policy push` writes (the CNCF wasm artefact layout's).
pub const WASM_CONFIG_MEDIA_TYPE: &str = "application/vnd.wasm.config.v0+json";
/// The layer media type `policy push` writes (Kubewarden's; oci-client's `WASM_LAYER_MEDIA_TYPE`).
pub const WASM_LAYER_MEDIA_TYPE: &str = oci_client::manifest::WASM_LAYER_MEDIA_TYPE;
/// The layer media types read as a module.
const WASM_LAYER_MEDIA_TYPES: &[&str] = &[WASM_LAYER_MEDIA_TYPE, "application/wasm"];

/// Credentials for a registry: explicit ones (`--registry-username` + `--password-stdin`), else
/// the docker config's, else anonymous.
#[derive(Clone, Default)]
pub struct Credentials {
    /// User and password given on the command line.
    pub basic: Option<(String, String)>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password.
        let user = self.basic.as_ref().map(|(user, _)| user.as_str());
        f.debug_struct("Credentials").field("user", &user).finish()
    }
}

impl Credentials {
    fn for_registry(&self, registry: &str) -> Result<RegistryAuth, Cause> {
        if let Some((user, password)) = &self.basic {
            return Ok(RegistryAuth::Basic(user.clone(), password.clone()));
        }
        docker_config_auth(registry)
    }
}

/// The docker config: `$DOCKER_CONFIG/config.json`, else `~/.docker/config.json`.
fn docker_config_path() -> Option<PathBuf> {
    match std::env::var_os("DOCKER_CONFIG") {
        Some(dir) => Some(PathBuf::from(dir).join("config.json")),
        None => dirs::home_dir().map(|home| home.join(".docker").join("config.json")),
    }
}

/// `auths.<registry>.auth` (base64 `user:password`) of the docker config; anonymous when the
/// file or the entry is absent.
fn docker_config_auth(registry: &str) -> Result<RegistryAuth, Cause> {
    match docker_config_path() {
        Some(path) => auth_in(path, registry),
        None => Ok(RegistryAuth::Anonymous),
    }
}

/// `auths.<registry>.auth` of the docker config at `path`.
fn auth_in(path: PathBuf, registry: &str) -> Result<RegistryAuth, Cause> {
    let text = match std::fs::read(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(RegistryAuth::Anonymous),
        Err(source) => return Err(Cause::Read { path, source }),
    };
    let bad = |what: String, source: Option<Box<dyn std::error::Error + Send + Sync>>| {
        let detail = match &source {
            Some(source) => format!("{what}: {source}"),
            None => what,
        };
        Cause::DockerConfig {
            path: path.clone(),
            detail,
            source,
        }
    };
    let config: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| bad("not JSON".into(), Some(Box::new(e))))?;
    let Some(auth) = config
        .get("auths")
        .and_then(|auths| auths.get(registry))
        .and_then(|entry| entry.get("auth"))
        .and_then(|auth| auth.as_str())
    else {
        return Ok(RegistryAuth::Anonymous);
    };
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(auth.trim())
        .map_err(|e| {
            bad(
                format!("auths.{registry}.auth is not base64"),
                Some(Box::new(e)),
            )
        })?;
    let decoded = String::from_utf8(decoded).map_err(|e| {
        bad(
            format!("auths.{registry}.auth is not UTF-8"),
            Some(Box::new(e)),
        )
    })?;
    let (user, password) = decoded.split_once(':').ok_or_else(|| {
        bad(
            format!("auths.{registry}.auth is not the base64 of user:password"),
            None,
        )
    })?;
    Ok(RegistryAuth::Basic(user.to_string(), password.to_string()))
}

/// A parsed `oci://` reference.
fn parse(text: &str) -> Result<Reference, Cause> {
    let bare = text.strip_prefix("oci://").unwrap_or(text);
    bare.parse().map_err(|source| Cause::InvalidReference {
        reference: text.to_string(),
        source,
    })
}

fn client() -> Client {
    install_crypto_provider();
    Client::new(ClientConfig {
        extra_root_certificates: extra_roots_pem()
            .into_iter()
            .map(|data| Certificate {
                encoding: CertificateEncoding::Pem,
                data,
            })
            .collect(),
        connect_timeout: Some(CONNECT_TIMEOUT),
        read_timeout: Some(READ_TIMEOUT),
        ..ClientConfig::default()
    })
}

/// The note of a failed fetch that the local store could not serve.
const NOT_STORED: &str = " (and the module is not in the local store)";

/// A registry failure as a cause: 401 and TLS get their own messages. `note`: see
/// [`Cause::Registry`].
fn registry_error(registry: &str, note: &'static str, error: OciDistributionError) -> Cause {
    let registry = registry.to_string();
    if let Some(detail) = tls_failure(&error) {
        return Cause::Tls {
            host: registry,
            detail,
            source: Box::new(error),
        };
    }
    let unauthorized = match &error {
        OciDistributionError::UnauthorizedError { .. }
        | OciDistributionError::AuthenticationFailure(_) => true,
        OciDistributionError::ServerError { code, .. } => *code == 401,
        OciDistributionError::RegistryError { envelope, .. } => envelope
            .errors
            .iter()
            .any(|e| format!("{:?}", e.code).eq_ignore_ascii_case("unauthorized")),
        _ => false,
    };
    if unauthorized {
        return Cause::Unauthorized {
            registry,
            source: Box::new(error),
        };
    }
    Cause::Registry {
        detail: chain(&error),
        registry,
        note,
        source: Box::new(error),
    }
}

/// A module fetched from a registry.
#[derive(Debug, Clone)]
pub struct Pulled {
    /// The wasm bytes (the layer, verified against its digest).
    pub bytes: Vec<u8>,
    /// `sha256:<hex>` of the manifest: what a release records, what a `step` fetches by.
    pub manifest_digest: String,
}

/// The module of `text` (`oci://...`). `recorded` is the manifest digest a release recorded at
/// `start`: a tag must still resolve to it (else [`Cause::TagMoved`]), and it is fetched by that
/// digest. A known digest (the reference's or the recorded one) is served from `store` without
/// the registry when stored; a tag the registry cannot be asked about then falls back to it too.
pub(crate) fn pull(
    text: &str,
    recorded: Option<&str>,
    store: &ModuleStore,
    credentials: &Credentials,
) -> Result<Pulled, Cause> {
    let reference = parse(text)?;
    let registry = reference.resolve_registry().to_string();
    if let (Some(digest), Some(recorded)) = (reference.digest(), recorded) {
        if digest != recorded {
            return Err(Cause::TagMoved {
                reference: text.to_string(),
                recorded: recorded.to_string(),
                current: digest.to_string(),
            });
        }
    }
    let known = reference.digest().or(recorded).map(str::to_string);
    let from_store = known.as_deref().and_then(|d| stored(store, d, text));
    // A digest reference is immutable: a stored copy is the same bytes, no need to ask.
    if reference.digest().is_some() {
        if let Some(pulled) = from_store {
            return pulled;
        }
    }
    let auth = credentials.for_registry(&registry)?;
    let client = client();
    let resolved = block_on(async {
        client
            .auth(&reference, &auth, RegistryOperation::Pull)
            .await?;
        client
            .pull_manifest_raw(
                &reference,
                &auth,
                &[OCI_IMAGE_MEDIA_TYPE, IMAGE_MANIFEST_MEDIA_TYPE],
            )
            .await
    });
    let (manifest, _) = match resolved {
        Ok(found) => found,
        Err(error) => {
            let note = if from_store.is_some() { "" } else { NOT_STORED };
            let cause = registry_error(&registry, note, error);
            // The registry is unreachable (not refusing): the recorded digest's stored copy is
            // the module this release runs.
            return match (cause, from_store) {
                (cause @ Cause::Registry { .. }, Some(pulled)) => pulled.or(Err(cause)),
                (cause, _) => Err(cause),
            };
        }
    };
    let current = format!("sha256:{}", sha256_hex(&manifest));
    match &known {
        Some(known) if *known != current => {
            return Err(if reference.digest().is_some() {
                Cause::RegistryDigest {
                    what: "the manifest",
                    registry,
                    expected: known.clone(),
                    actual: current,
                }
            } else {
                Cause::TagMoved {
                    reference: text.to_string(),
                    recorded: known.clone(),
                    current,
                }
            });
        }
        _ => {}
    }
    let layer = wasm_layer(&manifest, text)?;
    let layer_hex = layer
        .digest
        .strip_prefix("sha256:")
        .unwrap_or("")
        .to_string();
    let bytes = match store.get(&layer_hex) {
        Some(bytes) => bytes,
        None => {
            let mut bytes = Vec::new();
            block_on(client.pull_blob(&reference, &layer, &mut bytes))
                .map_err(|e| registry_error(&registry, NOT_STORED, e))?;
            let actual = format!("sha256:{}", sha256_hex(&bytes));
            if actual != layer.digest {
                return Err(Cause::RegistryDigest {
                    what: "the module layer",
                    registry,
                    expected: layer.digest.clone(),
                    actual,
                });
            }
            store.put(&bytes);
            bytes
        }
    };
    store.put(&manifest);
    Ok(Pulled {
        bytes,
        manifest_digest: current,
    })
}

/// The stored module of manifest `digest`, if both the manifest and its layer are stored.
fn stored(store: &ModuleStore, digest: &str, text: &str) -> Option<Result<Pulled, Cause>> {
    let manifest = store.get(digest.strip_prefix("sha256:")?)?;
    let layer = match wasm_layer(&manifest, text) {
        Ok(layer) => layer,
        Err(cause) => return Some(Err(cause)),
    };
    let bytes = store.get(layer.digest.strip_prefix("sha256:")?)?;
    Some(Ok(Pulled {
        bytes,
        manifest_digest: digest.to_string(),
    }))
}

/// The one wasm layer of a manifest, within the size limit.
fn wasm_layer(manifest: &[u8], text: &str) -> Result<oci_client::manifest::OciDescriptor, Cause> {
    let not = |detail: String| Cause::NotWasmArtifact {
        reference: text.to_string(),
        detail,
    };
    let manifest: OciImageManifest = serde_json::from_slice(manifest)
        .map_err(|e| not(format!("its manifest is not an OCI image manifest: {e}")))?;
    let mut layers = manifest
        .layers
        .into_iter()
        .filter(|l| WASM_LAYER_MEDIA_TYPES.contains(&l.media_type.as_str()));
    let (Some(layer), None) = (layers.next(), layers.next()) else {
        return Err(not(format!(
            "expected exactly one layer of media type {}",
            WASM_LAYER_MEDIA_TYPES.join(" or ")
        )));
    };
    if layer.size < 0 || layer.size as u64 > MAX_MODULE_BYTES {
        return Err(Cause::ModuleTooLarge {
            size: layer.size.max(0) as u64,
            max: MAX_MODULE_BYTES,
        });
    }
    if !layer.digest.starts_with("sha256:") {
        return Err(not(format!(
            "its layer digest {} is not sha256",
            layer.digest
        )));
    }
    Ok(layer)
}

/// Pushes `wasm` to `text` (`oci://...`) as a wasm artefact; returns the manifest digest.
pub fn push(wasm: &[u8], text: &str, credentials: &Credentials) -> Result<String, Cause> {
    let reference = parse(text)?;
    let registry = reference.resolve_registry().to_string();
    let auth = credentials.for_registry(&registry)?;
    let config = b"{}".to_vec();
    let config_digest = format!("sha256:{}", sha256_hex(&config));
    let layer_digest = format!("sha256:{}", sha256_hex(wasm));
    let manifest = serde_json::to_vec(&json!({
        "schemaVersion": 2,
        "mediaType": OCI_IMAGE_MEDIA_TYPE,
        "config": {
            "mediaType": WASM_CONFIG_MEDIA_TYPE,
            "digest": config_digest,
            "size": config.len(),
        },
        "layers": [{
            "mediaType": WASM_LAYER_MEDIA_TYPE,
            "digest": layer_digest,
            "size": wasm.len(),
            "annotations": { "org.opencontainers.image.title": "module.wasm" },
        }],
    }))
    .expect("a JSON value serialises");
    let digest = format!("sha256:{}", sha256_hex(&manifest));
    let client = client();
    block_on(async {
        client
            .auth(&reference, &auth, RegistryOperation::Push)
            .await?;
        client
            .push_blob(&reference, config.clone(), &config_digest)
            .await?;
        client
            .push_blob(&reference, wasm.to_vec(), &layer_digest)
            .await?;
        client
            .push_manifest_raw(
                &reference,
                manifest,
                http::HeaderValue::from_static(OCI_IMAGE_MEDIA_TYPE),
            )
            .await
    })
    .map_err(|e| registry_error(&registry, "", e))?;
    Ok(digest)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn references_parse() {
        let r = parse("oci://127.0.0.1:5000/policies/p:1").unwrap();
        assert_eq!(r.resolve_registry(), "127.0.0.1:5000");
        assert_eq!(r.tag(), Some("1"));
        assert_eq!(r.repository(), "policies/p");
        assert!(parse("oci://registry/Upper:1").is_err());
    }

    #[test]
    fn docker_config_entries() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.json");
        let auth = base64::engine::general_purpose::STANDARD.encode("me:pw");
        let config =
            json!({ "auths": { "127.0.0.1:5000": { "auth": auth }, "bad": { "auth": "%" } } });
        std::fs::write(&path, config.to_string()).unwrap();
        assert!(matches!(
            auth_in(path.clone(), "127.0.0.1:5000").unwrap(),
            RegistryAuth::Basic(user, password) if user == "me" && password == "pw"
        ));
        assert!(matches!(
            auth_in(path.clone(), "elsewhere").unwrap(),
            RegistryAuth::Anonymous
        ));
        assert_eq!(
            auth_in(path.clone(), "bad").unwrap_err().to_string(),
            format!(
                "cannot use the docker config {}: auths.bad.auth is not base64: Invalid symbol 37, \
                 offset 0.",
                path.display()
            )
        );
        assert!(matches!(
            auth_in(dir.path().join("absent.json"), "x").unwrap(),
            RegistryAuth::Anonymous
        ));
    }
}
