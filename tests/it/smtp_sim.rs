//! A TLS-capable SMTP server on loopback, for the email connector's tests: STARTTLS (the
//! submission port's way, 587) or implicit TLS (465's), or plain for a local relay. Its
//! certificate is self-signed for `127.0.0.1`, made by `rcgen` when the server starts; the
//! client trusts it through the connector's test-only root ([`SmtpSim::root_pem`]), never by
//! accepting invalid certificates.
//!
//! It offers `AUTH PLAIN LOGIN` only once the connection is encrypted (as real servers do),
//! checks the login against [`USER`] / [`PASSWORD`] (`535 5.7.8` otherwise), and answers
//! `RCPT` as scripted ([`SmtpSim::script_rcpt`]: `451` transient, `550` permanent). Each
//! message is recorded with whether it came over TLS.

use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

/// The SMTP AUTH user the server accepts.
pub const USER: &str = "hangar-notify";
/// Its password (the integration's credential).
pub const PASSWORD: &str = "smtp-pa55-secret";

/// How the server secures its connections.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Security {
    /// Plain, `STARTTLS` advertised and required before `AUTH`.
    StartTls,
    /// TLS from the first byte.
    Implicit,
    /// Plain, with `AUTH` offered unencrypted (a local relay).
    Plain,
}

/// One message received.
#[derive(Clone, Debug)]
pub struct Received {
    /// The login it was sent under (`user`).
    pub user: String,
    /// `MAIL FROM` and `RCPT TO` addresses.
    pub from: String,
    pub to: Vec<String>,
    /// Headers and body, as sent (dot-unstuffed).
    pub data: String,
    /// Whether the connection was encrypted.
    pub tls: bool,
}

#[derive(Default)]
struct State {
    rcpt_reply: Option<String>,
    messages: Vec<Received>,
    failed_logins: u32,
}

/// A running server.
#[derive(Clone)]
pub struct SmtpSim {
    /// Its port on 127.0.0.1.
    pub port: u16,
    /// The PEM of its self-signed certificate (the root a test trusts).
    pub root_pem: String,
    state: Arc<Mutex<State>>,
}

enum Next<S> {
    /// The client asked for STARTTLS: the plain stream, to wrap.
    StartTls(S),
    Done,
}

impl SmtpSim {
    /// Starts a server securing its connections as `security`.
    pub async fn start(security: Security) -> SmtpSim {
        let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".to_owned()])
            .expect("a self-signed certificate");
        let root_pem = cert.cert.pem();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der()));
        let config = ServerConfig::builder_with_provider(Arc::new(
            tokio_rustls::rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .expect("the server's certificate");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("address").port();
        let sim = SmtpSim {
            port,
            root_pem,
            state: Arc::default(),
        };
        let server = sim.clone();
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                let server = server.clone();
                let acceptor = acceptor.clone();
                tokio::spawn(async move { server.connection(socket, security, acceptor).await });
            }
        });
        sim
    }

    /// Answers the next `RCPT TO` commands with `reply` (`None`: `250 ok`).
    pub fn script_rcpt(&self, reply: Option<&str>) {
        self.state.lock().unwrap().rcpt_reply = reply.map(str::to_owned);
    }

    /// The messages received so far.
    pub fn messages(&self) -> Vec<Received> {
        self.state.lock().unwrap().messages.clone()
    }

    /// Logins refused so far.
    pub fn failed_logins(&self) -> u32 {
        self.state.lock().unwrap().failed_logins
    }

    async fn connection(self, socket: TcpStream, security: Security, acceptor: TlsAcceptor) {
        match security {
            Security::Implicit => {
                if let Ok(tls) = acceptor.accept(socket).await {
                    self.session(tls, true, false, true).await;
                }
            }
            Security::Plain => {
                self.session(socket, false, false, true).await;
            }
            Security::StartTls => {
                if let Next::StartTls(plain) = self.session(socket, false, true, false).await
                    && let Ok(tls) = acceptor.accept(plain).await
                {
                    self.session(tls, true, false, false).await;
                }
            }
        }
    }

    /// One SMTP dialogue over `stream` (`tls`: it is encrypted; `offer_starttls`: advertise
    /// and accept STARTTLS; `greet`: send the banner — not after a STARTTLS upgrade).
    async fn session<S: AsyncRead + AsyncWrite + Unpin>(
        &self,
        stream: S,
        tls: bool,
        offer_starttls: bool,
        greet: bool,
    ) -> Next<S> {
        let mut stream = BufReader::new(stream);
        if greet || !tls {
            let _ = stream.write_all(b"220 sim.test ESMTP\r\n").await;
        }
        let auth_offered = tls || !offer_starttls;
        let (mut user, mut from, mut to) = (None::<String>, String::new(), Vec::new());
        loop {
            let mut line = String::new();
            match stream.read_line(&mut line).await {
                Ok(0) | Err(_) => return Next::Done,
                Ok(_) => {}
            }
            let line = line.trim_end().to_owned();
            let upper = line.to_ascii_uppercase();
            let reply = if upper.starts_with("EHLO") || upper.starts_with("HELO") {
                let mut lines = vec!["250-sim.test".to_owned()];
                if offer_starttls && !tls {
                    lines.push("250-STARTTLS".into());
                }
                if auth_offered {
                    lines.push("250-AUTH PLAIN LOGIN".into());
                }
                lines.push("250 8BITMIME".into());
                lines.join("\r\n")
            } else if upper == "STARTTLS" && offer_starttls && !tls {
                let _ = stream.write_all(b"220 2.0.0 ready to start TLS\r\n").await;
                let _ = stream.flush().await;
                return Next::StartTls(stream.into_inner());
            } else if upper.starts_with("AUTH PLAIN") && auth_offered {
                let given = line[10..].trim();
                let decoded =
                    base64::Engine::decode(&base64::engine::general_purpose::STANDARD, given)
                        .unwrap_or_default();
                let parts: Vec<&[u8]> = decoded.split(|b| *b == 0).collect();
                if parts.len() == 3
                    && parts[1] == USER.as_bytes()
                    && parts[2] == PASSWORD.as_bytes()
                {
                    user = Some(USER.to_owned());
                    "235 2.7.0 Authentication successful".to_owned()
                } else {
                    self.state.lock().unwrap().failed_logins += 1;
                    "535 5.7.8 Authentication credentials invalid".to_owned()
                }
            } else if upper.starts_with("AUTH") {
                "530 5.7.0 Must issue a STARTTLS command first".to_owned()
            } else if upper.starts_with("MAIL FROM:") {
                if user.is_none() {
                    "530 5.7.0 Authentication required".to_owned()
                } else {
                    from = address(&line[10..]);
                    to.clear();
                    "250 2.1.0 ok".to_owned()
                }
            } else if upper.starts_with("RCPT TO:") {
                let scripted = self.state.lock().unwrap().rcpt_reply.clone();
                match scripted {
                    Some(reply) => reply,
                    None => {
                        to.push(address(&line[8..]));
                        "250 2.1.5 ok".to_owned()
                    }
                }
            } else if upper == "DATA" {
                let _ = stream
                    .write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await;
                let mut data = String::new();
                loop {
                    let mut l = String::new();
                    match stream.read_line(&mut l).await {
                        Ok(0) | Err(_) => return Next::Done,
                        Ok(_) => {}
                    }
                    let l = l.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(l));
                    data.push('\n');
                }
                self.state.lock().unwrap().messages.push(Received {
                    user: user.clone().unwrap_or_default(),
                    from: from.clone(),
                    to: to.clone(),
                    data,
                    tls,
                });
                "250 2.0.0 queued".to_owned()
            } else if upper == "QUIT" {
                let _ = stream.write_all(b"221 2.0.0 bye\r\n").await;
                return Next::Done;
            } else if upper == "RSET" || upper == "NOOP" {
                "250 ok".to_owned()
            } else {
                "502 5.5.2 command not recognized".to_owned()
            };
            let _ = stream.write_all(format!("{reply}\r\n").as_bytes()).await;
            let _ = stream.flush().await;
        }
    }
}

/// The address of `<a@b> SIZE=…`.
fn address(rest: &str) -> String {
    let rest = rest.trim();
    rest.strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .map_or(rest, |(a, _)| a)
        .to_owned()
}
