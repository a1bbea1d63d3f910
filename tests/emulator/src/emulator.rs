//! The library entry point: start, inspect, fault-inject and stop an emulated API server.

use crate::audit::AuditLog;
use crate::cluster::{Cluster, WriteOptions};
use crate::error::ApiError;
use crate::faults::Faults;
use crate::server::{handle, Shared};
use crate::validation::FieldValidation;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Errors of the emulator's library API.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Socket or file I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// A YAML document could not be parsed.
    #[error("document {index}: invalid YAML: {message}")]
    Yaml {
        /// 1-based document index.
        index: usize,
        /// Parser message.
        message: String,
    },
    /// A document names a kind the emulator does not serve.
    #[error("document {index}: no kind {kind:?} is served in {api_version:?}")]
    UnknownKind {
        /// 1-based document index.
        index: usize,
        /// The apiVersion.
        api_version: String,
        /// The kind.
        kind: String,
    },
    /// The API refused the object.
    #[error("document {index}: {source}")]
    Api {
        /// 1-based document index.
        index: usize,
        /// The Status error.
        #[source]
        source: ApiError,
    },
}

/// Start options.
#[derive(Debug, Clone)]
pub struct Options {
    /// TCP port (0: a random free port).
    pub port: u16,
    /// The Kubernetes minor version reported at `/version` (it selects `kubectl.1.<minor>`).
    pub minor: u32,
    /// Bearer token; a random one when None.
    pub token: Option<String>,
    /// Persist the state in this directory (loaded on start, saved after each write).
    pub data_dir: Option<PathBuf>,
    /// Keep the cluster state after each request in the audit log (cheap: shared snapshots).
    pub record_states: bool,
    /// Where to write the kubeconfig; a temporary file when None.
    pub kubeconfig: Option<PathBuf>,
    /// Emulate istiod's configuration status (`Reconciled`, `observedGeneration`) on Istio
    /// objects; None: no status is written, as with Istio's status disabled.
    pub propagation: Option<crate::propagation::Propagation>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            port: 0,
            minor: 33,
            token: None,
            data_dir: None,
            record_states: true,
            kubeconfig: None,
            propagation: None,
        }
    }
}

/// A running emulated API server.
pub struct Emulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    kubeconfig: PathBuf,
    _tempdir: Option<TempDir>,
    ca_pem: String,
    stop: watch::Sender<bool>,
    task: Mutex<Option<JoinHandle<()>>>,
    propagation: crate::propagation::Config,
}

/// A directory removed on drop (for the default kubeconfig location).
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn io(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let context = context.into();
    move |source| Error::Io { context, source }
}

fn random_token() -> String {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let a = crate::cluster::safe_chars(seed ^ u64::from(std::process::id()), 16);
    let b = crate::cluster::safe_chars(seed.rotate_left(17) ^ 0x5bd1_e995, 16);
    format!("emu-{a}{b}")
}

impl Emulator {
    /// Binds `127.0.0.1:<port>`, loads persisted state, writes the kubeconfig and serves.
    pub async fn start(opts: Options) -> Result<Emulator, Error> {
        let listener = TcpListener::bind(("127.0.0.1", opts.port))
            .await
            .map_err(io(format!("cannot listen on 127.0.0.1:{}", opts.port)))?;
        let addr = listener
            .local_addr()
            .map_err(io("cannot read the listening address"))?;
        let mut cluster = Cluster::new();
        if let Some(dir) = &opts.data_dir {
            crate::persist::load(&mut cluster, dir)
                .map_err(io(format!("cannot load state from {}", dir.display())))?;
        }
        let tls = crate::tls::make().map_err(|e| Error::Io {
            context: e,
            source: std::io::Error::other("tls"),
        })?;
        let (stop, stop_rx) = watch::channel(false);
        let token = opts.token.clone().unwrap_or_else(random_token);
        let shared = Arc::new(Shared {
            cluster: Mutex::new(cluster),
            token,
            audit: AuditLog::default(),
            faults: Faults::default(),
            minor: opts.minor,
            addr: addr.to_string(),
            data_dir: opts.data_dir.clone(),
            record_states: opts.record_states,
            shutdown: stop_rx.clone(),
            tokens: Default::default(),
            service_proxies: Default::default(),
        });
        let (kubeconfig, tempdir) = match &opts.kubeconfig {
            Some(p) => (p.clone(), None),
            None => {
                let dir = std::env::temp_dir().join(format!(
                    "kube-emulator-{}-{}",
                    std::process::id(),
                    addr.port()
                ));
                std::fs::create_dir_all(&dir)
                    .map_err(io(format!("cannot create {}", dir.display())))?;
                (dir.join("kubeconfig"), Some(TempDir(dir)))
            }
        };
        let emu = Emulator {
            shared: shared.clone(),
            addr,
            kubeconfig: kubeconfig.clone(),
            _tempdir: tempdir,
            ca_pem: tls.ca_pem.clone(),
            stop,
            task: Mutex::new(None),
            propagation: Arc::new(Mutex::new(opts.propagation.clone())),
        };
        emu.write_kubeconfig(&kubeconfig)?;
        crate::propagation::spawn(shared.clone(), emu.propagation.clone());
        let task = tokio::spawn(serve(listener, shared, stop_rx, tls.acceptor));
        *emu.task.lock().unwrap_or_else(|e| e.into_inner()) = Some(task);
        Ok(emu)
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }

    /// The listening address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The kubeconfig written at start.
    pub fn kubeconfig_path(&self) -> &Path {
        &self.kubeconfig
    }

    /// Writes a kubeconfig for this server to `path`.
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("cannot create {}", parent.display())))?;
        }
        std::fs::write(
            path,
            crate::kubeconfig::render(&self.url(), self.token(), &self.ca_pem),
        )
        .map_err(io(format!("cannot write {}", path.display())))
    }

    /// Issues a token for the ServiceAccount `namespace/name` (it must exist), valid for an
    /// hour: requests sent with it are authorized by RBAC (see [`crate::rbac`]). The same as
    /// `kubectl create token NAME -n NAMESPACE`.
    pub fn service_account_token(&self, namespace: &str, name: &str) -> Result<String, ApiError> {
        let c = self.shared.lock();
        self.shared
            .tokens
            .issue(&c, namespace, name, 3600)
            .map(|(token, _)| token)
    }

    /// Writes a kubeconfig for this server that authenticates with `token` (e.g. from
    /// [`Emulator::service_account_token`]) and names `namespace` as the context's namespace.
    pub fn write_kubeconfig_with_token(
        &self,
        path: &Path,
        token: &str,
        namespace: &str,
    ) -> Result<(), Error> {
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(io(format!("cannot create {}", parent.display())))?;
        }
        let config = crate::kubeconfig::render(&self.url(), token, &self.ca_pem);
        let config = crate::kubeconfig::with_namespace(&config, namespace);
        std::fs::write(path, config).map_err(io(format!("cannot write {}", path.display())))
    }

    /// Makes the Service proxy subresource
    /// (`/api/v1/namespaces/NAMESPACE/services/SERVICE:PORT/proxy/...`) forward to `target`
    /// for the Service's port `port` (by number; `SERVICE:NAME` and `SERVICE` alone find it
    /// through the Service's `spec.ports`). The Service object must exist when it is called
    /// through; a registered port replaces the previous target. Like kube-apiserver, the proxy
    /// answers 503 `no endpoints available for service "SERVICE"` for a port with no target.
    pub fn register_service_proxy(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
        target: SocketAddr,
    ) {
        self.shared
            .service_proxies
            .set(namespace, service, port, target);
    }

    /// Forgets the target of [`Emulator::register_service_proxy`]; returns it.
    pub fn unregister_service_proxy(
        &self,
        namespace: &str,
        service: &str,
        port: u16,
    ) -> Option<SocketAddr> {
        self.shared.service_proxies.remove(namespace, service, port)
    }

    /// The CA certificate (PEM) that signed the server's certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// The request log.
    pub fn audit(&self) -> &AuditLog {
        &self.shared.audit
    }

    /// The fault table.
    pub fn faults(&self) -> &Faults {
        &self.shared.faults
    }

    /// Change how istiod's status writer is emulated from the next write on (None: write no
    /// status); e.g. mark an object stuck, or release it.
    pub fn set_propagation(&self, propagation: Option<crate::propagation::Propagation>) {
        *self.propagation.lock().unwrap_or_else(|e| e.into_inner()) = propagation;
    }

    /// How istiod's status writer is emulated now.
    pub fn propagation(&self) -> Option<crate::propagation::Propagation> {
        self.propagation
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Runs `f` with the cluster locked (direct access for tests).
    pub fn with_cluster<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        f(&mut self.shared.lock())
    }

    /// Creates or replaces every document of a (multi-document) YAML string, CRDs included,
    /// in order, as the `kube-emulator` manager; returns the stored objects.
    pub fn apply_yaml(&self, yaml: &str) -> Result<Vec<Value>, Error> {
        let mut out = vec![];
        for (i, doc) in serde_yaml::Deserializer::from_str(yaml).enumerate() {
            let index = i + 1;
            let v: Value = serde::Deserialize::deserialize(doc).map_err(|e| Error::Yaml {
                index,
                message: e.to_string(),
            })?;
            if v.is_null() {
                continue;
            }
            let api_version = v["apiVersion"].as_str().unwrap_or("").to_string();
            let kind = v["kind"].as_str().unwrap_or("").to_string();
            let mut c = self.shared.lock();
            let res = c
                .resource_for(&api_version, &kind)
                .ok_or(Error::UnknownKind {
                    index,
                    api_version,
                    kind,
                })?;
            let ns = if res.namespaced {
                v["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or("default")
                    .to_string()
            } else {
                String::new()
            };
            let name = v["metadata"]["name"].as_str().unwrap_or("").to_string();
            let opts = WriteOptions {
                manager: "kube-emulator".into(),
                field_validation: FieldValidation::Strict,
                ..Default::default()
            };
            let result = match c.get(&res, &ns, &name) {
                Ok(existing) => {
                    let mut v = v.clone();
                    v["metadata"]["resourceVersion"] =
                        existing["metadata"]["resourceVersion"].clone();
                    c.update(&res, &ns, &name, v, "", &opts)
                }
                Err(_) => c.create(&res, &ns, v, &opts),
            };
            out.push(result.map_err(|source| Error::Api { index, source })?.0);
        }
        Ok(out)
    }

    /// Reads one object by apiVersion, kind, namespace (`""` for cluster-scoped) and name.
    pub fn get(&self, api_version: &str, kind: &str, namespace: &str, name: &str) -> Option<Value> {
        let c = self.shared.lock();
        let res = c.resource_for(api_version, kind)?;
        c.get(&res, namespace, name).ok()
    }

    /// Lists objects of a kind, in one namespace or all (`None`).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>) -> Vec<Value> {
        let c = self.shared.lock();
        let Some(res) = c.resource_for(api_version, kind) else {
            return vec![];
        };
        c.list(&res, namespace, &Default::default(), &Default::default())
            .0
    }

    /// Stops accepting connections, ends watches and waits for in-flight requests.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let task = self.task.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = task {
            let _ = t.await;
        }
    }
}

impl Drop for Emulator {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

async fn serve(
    listener: TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    acceptor: tokio_rustls::TlsAcceptor,
) {
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                let acceptor = acceptor.clone();
                let watcher = graceful.watcher();
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(std::time::Duration::from_secs(10), acceptor.accept(stream)).await else { return };
                    let svc = service_fn(move |req| handle(shared.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tls), svc);
                    let _ = watcher.watch(conn).await;
                });
            }
        }
    }
    drop(listener);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), graceful.shutdown()).await;
}
