//! A provider fault server on loopback (issue 14), written on raw TCP so that it can misbehave
//! below HTTP: it answers by path, and counts the body bytes it managed to send, so a test
//! can show that Hangar read no more than its cap. Routes:
//! - `/slow-head`: a status line, then one header byte every 200 ms, forever (slow-loris
//!   before the response is complete);
//! - `/slow-body`: a 500 with a 1 MB `Content-Length`, then one body byte every 200 ms;
//! - `/huge`: a 500 with a 10 GiB body sent as fast as the client takes it;
//! - anything else: 200 `ok`.
//!
//! [`FaultServer::start_tls`] serves the same over TLS with a self-signed certificate that no
//! client trusts (an invalid certificate, as a misconfigured provider presents).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// A running fault server.
#[derive(Clone)]
pub struct FaultServer {
    /// `http://127.0.0.1:PORT` (or `https://…`).
    pub base: String,
    /// Body bytes written to clients so far (all routes).
    sent: Arc<AtomicU64>,
    /// Connections accepted so far.
    connections: Arc<AtomicU64>,
}

impl FaultServer {
    /// A plain-HTTP fault server.
    pub async fn start() -> FaultServer {
        FaultServer::serve(None).await
    }

    /// The same over TLS with a self-signed certificate for 127.0.0.1.
    pub async fn start_tls() -> FaultServer {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a self-signed certificate");
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("the server's certificate");
        FaultServer::serve(Some(TlsAcceptor::from(Arc::new(config)))).await
    }

    async fn serve(tls: Option<TlsAcceptor>) -> FaultServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let scheme = if tls.is_some() { "https" } else { "http" };
        let server = FaultServer {
            base: format!("{scheme}://{}", listener.local_addr().expect("addr")),
            sent: Arc::default(),
            connections: Arc::default(),
        };
        let shared = server.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                shared.connections.fetch_add(1, Ordering::SeqCst);
                let sent = shared.sent.clone();
                let tls = tls.clone();
                tokio::spawn(async move {
                    match tls {
                        Some(acceptor) => {
                            if let Ok(stream) = acceptor.accept(socket).await {
                                answer(stream, sent).await;
                            }
                        }
                        None => answer(socket, sent).await,
                    }
                });
            }
        });
        server
    }

    /// The URL of `path` on this server.
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Body bytes written to clients so far.
    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::SeqCst)
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }
}

/// Reads one request (head and `Content-Length` body) and answers it by its path.
async fn answer<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, sent: Arc<AtomicU64>) {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    let head_end = loop {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
        if let Some(at) = request.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
        if request.len() > 64 * 1024 {
            return;
        }
    };
    let head = String::from_utf8_lossy(&request[..head_end]).into_owned();
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    let mut have = request.len() - head_end;
    while have < length {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => have += n,
        }
    }
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    match path.as_str() {
        "/slow-head" => {
            if stream.write_all(b"HTTP/1.1 200 OK\r\n").await.is_err() {
                return;
            }
            for byte in b"X-Slow: ".iter().chain(std::iter::repeat(&b'a')) {
                tokio::time::sleep(Duration::from_millis(200)).await;
                if stream.write_all(&[*byte]).await.is_err() {
                    return;
                }
            }
        }
        "/slow-body" => {
            let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
                        Content-Length: 1000000\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            loop {
                if stream.write_all(b"s").await.is_err() || stream.flush().await.is_err() {
                    return;
                }
                sent.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        "/huge" => {
            let head = "HTTP/1.1 500 Internal Server Error\r\nContent-Type: text/plain\r\n\
                        Content-Length: 10737418240\r\n\r\n";
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            let chunk = vec![b'h'; 64 * 1024];
            while stream.write_all(&chunk).await.is_ok() {
                sent.fetch_add(chunk.len() as u64, Ordering::SeqCst);
            }
        }
        _ => {
            let _ = stream
                .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok")
                .await;
            let _ = stream.shutdown().await;
        }
    }
}
