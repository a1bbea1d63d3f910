//! A canned HTTP API server for error paths that need a server answering with a given status
//! (404 on a namespace, 403 on everything): each request line is answered by a closure. It is no
//! emulator — nothing is stored — only a real socket speaking HTTP/1.1 to the real kube-rs client.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// One request the server received.
#[derive(Debug, Clone)]
pub struct Request {
    /// `GET`, `PATCH`, ...
    pub method: String,
    /// Path and query.
    pub path: String,
    /// The body (empty for GET).
    pub body: String,
}

/// A running canned server.
#[derive(Debug, Clone)]
pub struct Server {
    /// `http://127.0.0.1:PORT`.
    pub url: String,
    requests: Arc<Mutex<Vec<Request>>>,
}

impl Server {
    /// The requests received so far, in order.
    pub fn requests(&self) -> Vec<Request> {
        self.requests.lock().expect("request log").clone()
    }
}

/// Start the server on 127.0.0.1 (a random port); `answer(method, path, body)` gives the status
/// code and the JSON body. The thread lives as long as the test process.
pub fn serve(answer: impl Fn(&str, &str, &str) -> (u16, String) + Send + 'static) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    let requests = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&requests);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let mut reader = BufReader::new(stream);
            let mut request_line = String::new();
            if reader.read_line(&mut request_line).is_err() {
                continue;
            }
            let mut content_length = 0;
            let mut line = String::new();
            while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                if let Some((name, value)) = line.split_once(':') {
                    if name.eq_ignore_ascii_case("content-length") {
                        content_length = value.trim().parse().unwrap_or(0);
                    }
                }
                line.clear();
            }
            let mut body = vec![0; content_length];
            if reader.read_exact(&mut body).is_err() {
                continue;
            }
            let body = String::from_utf8_lossy(&body).into_owned();
            let mut parts = request_line.split_whitespace();
            let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
            log.lock().expect("request log").push(Request {
                method: method.to_string(),
                path: path.to_string(),
                body: body.clone(),
            });
            let (code, response_body) = answer(method, path, &body);
            let response = format!(
                "HTTP/1.1 {code} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\
                 Connection: close\r\n\r\n{response_body}",
                response_body.len()
            );
            let _ = reader.get_mut().write_all(response.as_bytes());
        }
    });
    Server { url, requests }
}

/// A Kubernetes `Status` failure body.
pub fn status(code: u16, reason: &str, message: &str) -> String {
    serde_json::json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code,
    })
    .to_string()
}

/// A kubeconfig for `url` with a bearer token, default namespace `namespace`.
pub fn kubeconfig(dir: &Path, url: &str, namespace: &str) -> PathBuf {
    super::write(
        dir,
        "fake.kubeconfig",
        &format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster: {{server: \"{url}\"}}\n\
             users:\n- name: u\n  user: {{token: t}}\ncontexts:\n- name: fake\n  context: {{cluster: fake, user: u, namespace: {namespace}}}\n\
             current-context: fake\n"
        ),
    )
}
