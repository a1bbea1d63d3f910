//! A webhook receiver for the tests: an HTTP/1.1 server on 127.0.0.1 that records every JSON
//! payload POSTed to it and answers what the test sets (status, body, delay).

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the receiver answers.
#[derive(Debug, Clone)]
struct Answer {
    status: u16,
    body: String,
    delay: Duration,
}

#[derive(Debug, Default)]
struct Shared {
    /// By path; the others answer `200 OK`.
    answers: std::collections::BTreeMap<String, Answer>,
    received: Vec<(String, serde_json::Value)>,
}

/// A running receiver; it stops with the test process.
#[derive(Debug, Clone)]
pub struct Webhook {
    addr: SocketAddr,
    shared: Arc<Mutex<Shared>>,
}

impl Webhook {
    /// Starts a receiver answering `200 OK` with an empty body.
    pub fn start() -> Webhook {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the webhook receiver");
        let addr = listener.local_addr().expect("its address");
        let shared = Arc::new(Mutex::new(Shared::default()));
        let served = shared.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = served.clone();
                std::thread::spawn(move || serve(stream, &shared));
            }
        });
        Webhook { addr, shared }
    }

    /// The URL of `path` on this receiver (`http://127.0.0.1:PORT/path`).
    pub fn url(&self, path: &str) -> String {
        format!("http://{}/{}", self.addr, path.trim_start_matches('/'))
    }

    /// Answer requests to `path` with `status` and `body` from now on.
    pub fn answer(&self, path: &str, status: u16, body: &str) {
        self.set(path, status, body, Duration::ZERO);
    }

    /// Answer requests to `path` only after `delay` (to make a hook time out).
    pub fn answer_after(&self, path: &str, delay: Duration) {
        self.set(path, 200, "", delay);
    }

    fn set(&self, path: &str, status: u16, body: &str, delay: Duration) {
        let path = format!("/{}", path.trim_start_matches('/'));
        self.shared.lock().unwrap().answers.insert(
            path,
            Answer {
                status,
                body: body.to_string(),
                delay,
            },
        );
    }

    /// Every `(path, payload)` received so far, oldest first.
    pub fn received(&self) -> Vec<(String, serde_json::Value)> {
        self.shared.lock().unwrap().received.clone()
    }
}

fn serve(stream: TcpStream, shared: &Mutex<Shared>) {
    let mut reader = BufReader::new(stream.try_clone().expect("clone the stream"));
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let path = request_line
        .split_whitespace()
        .nth(1)
        .unwrap_or("/")
        .to_string();
    let mut length = 0;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            if name.eq_ignore_ascii_case("content-length") {
                length = value.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0; length];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let answer = {
        let mut shared = shared.lock().unwrap();
        let payload = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
        let answer = shared.answers.get(&path).cloned();
        shared.received.push((path, payload));
        answer.unwrap_or(Answer {
            status: 200,
            body: String::new(),
            delay: Duration::ZERO,
        })
    };
    std::thread::sleep(answer.delay);
    let reason = match answer.status {
        200 => "OK",
        403 => "Forbidden",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    };
    let mut stream = stream;
    let _ = write!(
        stream,
        "HTTP/1.1 {} {reason}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        answer.body
    );
}
