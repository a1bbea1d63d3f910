//! A real OCI registry for the tests: Debian's `docker-registry` (the CNCF distribution
//! registry) on 127.0.0.1 on a free port, with TLS from a CA made here (rcgen) and htpasswd
//! basic auth (`htpasswd` from apache2-utils, bcrypt as the registry requires).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The registry binary of Debian's `docker-registry` package.
const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
/// `htpasswd` of Debian's `apache2-utils`.
const HTPASSWD_BIN: &str = "/usr/bin/htpasswd";

/// The user the registry accepts.
pub const USER: &str = "canary";
/// Its password.
pub const PASSWORD: &str = "s3cret-pass";

/// A running registry; stopped (killed) when dropped or by [`Registry::stop`].
pub struct Registry {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Registry {
    /// Starts a registry, or `None` (a skip, a failure under `CI=true`) when `docker-registry`
    /// or `htpasswd` is missing.
    #[track_caller]
    pub fn start() -> Option<Registry> {
        let tools = [REGISTRY_BIN, HTPASSWD_BIN]
            .iter()
            .all(|bin| Path::new(bin).is_file());
        kube_emulator::testing::require(
            tools.then_some(()),
            "docker-registry and htpasswd (Debian's docker-registry and apache2-utils)",
        )?;
        let dir = tempfile::tempdir().expect("registry directory");
        let (ca_pem, cert_pem, key_pem) = certificates();
        std::fs::write(dir.path().join("ca.pem"), ca_pem).expect("write the CA");
        std::fs::write(dir.path().join("server.pem"), cert_pem).expect("write the certificate");
        std::fs::write(dir.path().join("server.key"), key_pem).expect("write the key");
        let htpasswd = Command::new(HTPASSWD_BIN)
            .args(["-Bbn", USER, PASSWORD])
            .output()
            .expect("run htpasswd");
        assert!(htpasswd.status.success(), "htpasswd: {htpasswd:?}");
        std::fs::write(dir.path().join("htpasswd"), htpasswd.stdout).expect("write htpasswd");
        // A free port: bind, read, release (the registry binds it a moment later).
        let addr = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port");
        let root = dir.path().display();
        let config = format!(
            "version: 0.1\n\
             log:\n  level: error\n\
             storage:\n  filesystem:\n    rootdirectory: {root}/data\n\
             http:\n  addr: {addr}\n  tls:\n    certificate: {root}/server.pem\n    key: {root}/server.key\n\
             auth:\n  htpasswd:\n    realm: canary-tests\n    path: {root}/htpasswd\n"
        );
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).expect("write the registry config");
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("registry.log")).expect("log file"))
            .spawn()
            .expect("start docker-registry");
        let registry = Registry {
            child: Some(child),
            addr,
            dir,
        };
        registry.wait_listening();
        Some(registry)
    }

    fn wait_listening(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {} within 30s; its log:\n{}",
                self.addr,
                std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
            );
            std::thread::yield_now();
        }
    }

    /// `127.0.0.1:<port>`, the registry part of an `oci://` reference.
    pub fn host(&self) -> String {
        self.addr.to_string()
    }

    /// The CA's certificate (PEM file), for `SSL_CERT_FILE`.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    /// A docker config directory (for `DOCKER_CONFIG`) whose `auths` entry for this registry
    /// holds `user:password`.
    pub fn docker_config(&self, user: &str, password: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("docker config directory");
        let auth = kube_emulator::tls::base64(format!("{user}:{password}").as_bytes());
        let config = serde_json::json!({ "auths": { self.host(): { "auth": auth } } });
        std::fs::write(dir.path().join("config.json"), config.to_string())
            .expect("write the docker config");
        dir
    }

    /// Stops the registry (it no longer accepts connections when this returns).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A fresh CA, and a server certificate for 127.0.0.1 and localhost it signed: (CA PEM,
/// server certificate PEM, server key PEM).
fn certificates() -> (String, String, String) {
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "canary-tests-registry-ca");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let issuer = Issuer::new(ca_params, ca_key);
    let key = KeyPair::generate().expect("server key");
    let mut params = CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()])
        .expect("server params");
    params
        .distinguished_name
        .push(DnType::CommonName, "canary-tests-registry");
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&key, &issuer).expect("server certificate");
    (ca.pem(), cert.pem(), key.serialize_pem())
}
