//! The SMTP transport, shared by the email alert channel ([`crate::alerts`]) and the email
//! connector of the integrations: one message over SMTP (STARTTLS, implicit TLS, or none for
//! a local relay) to a host the target policy allows (the `allow_private_targets` setting, as
//! for webhook URLs), connected by the checked address so a DNS answer that changes between
//! check and use cannot slip through (TLS still verifies the configured host name against the
//! web PKI roots, plus any [`TrustRoots`] a test adds). A failure is classified and described
//! in Hangar's own words, never with the server's reply text or banner: an admin's test route
//! must not become a port and banner scanner.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::alerts::channels::{EmailConfig, TlsMode};
use crate::error_class::ErrorClass;
use crate::kinds::JobFailure;
use crate::targets::TargetPolicy;

/// One plain-text message to the configuration's recipients.
#[derive(Debug, Clone)]
pub struct Mail {
    /// The subject line.
    pub subject: String,
    /// The plain-text body.
    pub text: String,
    /// The `Message-ID` (without angle brackets); the same on every retry of one message,
    /// so a receiver can drop the copy a lost answer made. `None`: one is generated.
    pub message_id: Option<String>,
}

/// Root certificates (PEM) trusted beside the web PKI roots. Empty in production; a test
/// adds the self-signed root of its local SMTP server here, so no code path ever accepts an
/// invalid certificate.
#[derive(Debug, Clone, Default)]
pub struct TrustRoots(Vec<Vec<u8>>);

impl TrustRoots {
    /// The web PKI roots and `pem` (one certificate).
    pub fn with_pem(mut self, pem: impl Into<Vec<u8>>) -> TrustRoots {
        self.0.push(pem.into());
        self
    }
}

/// How long one delivery may take, connection to QUIT.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Whether `text` is an email address (or `Name <address>`) the transport can send to.
pub fn is_address(text: &str) -> bool {
    text.parse::<Mailbox>().is_ok()
}

/// Sends `mail` to `config`'s recipients, from `config.from`.
pub async fn send(
    config: &EmailConfig,
    mail: &Mail,
    targets: &TargetPolicy,
    roots: &TrustRoots,
) -> Result<(), JobFailure> {
    let client_error = |m: String| JobFailure::new(ErrorClass::Client, m);
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|_| client_error("email from: not an address".into()))?;
    let mut builder = Message::builder()
        .from(from)
        .subject(mail.subject.clone())
        .message_id(mail.message_id.as_ref().map(|id| format!("<{id}>")));
    for to in &config.to {
        builder = builder.to(to
            .parse()
            .map_err(|_| client_error("email to: not an address".into()))?);
    }
    let message = builder
        .header(ContentType::TEXT_PLAIN)
        .body(mail.text.clone())
        .map_err(|e| client_error(format!("email: {e}")))?;
    let address = allowed_address(&config.host, config.port, targets).await?;
    let tls = |host: &str| {
        let mut builder = TlsParameters::builder(host.to_owned());
        for pem in &roots.0 {
            let root = Certificate::from_pem(pem)
                .map_err(|_| client_error("a trusted root is not a PEM certificate".into()))?;
            builder = builder.add_root_certificate(root);
        }
        builder
            .build()
            .map_err(|_| client_error(format!("SMTP host '{host}': not a name TLS can verify")))
    };
    let tls = match config.tls {
        TlsMode::Starttls => Tls::Required(tls(&config.host)?),
        TlsMode::Implicit => Tls::Wrapper(tls(&config.host)?),
        TlsMode::None => Tls::None,
    };
    let mut transport =
        AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(address.ip().to_string())
            .port(address.port())
            .tls(tls)
            .timeout(Some(TIMEOUT));
    if let (Some(user), Some(password)) = (&config.username, &config.password) {
        transport = transport.credentials(Credentials::new(user.clone(), password.clone()));
    }
    transport
        .build()
        .send(message)
        .await
        .map(|_| ())
        .map_err(|e| smtp_failure(&e))
}

/// The first address of `host` the policy allows; a refused host is a client error (retrying
/// cannot help), one that does not resolve a timeout (DNS may come back).
async fn allowed_address(
    host: &str,
    port: u16,
    targets: &TargetPolicy,
) -> Result<SocketAddr, JobFailure> {
    let found: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|_| {
            JobFailure::new(
                ErrorClass::Timeout,
                format!("SMTP host '{host}' does not resolve"),
            )
        })?
        .collect();
    found
        .iter()
        .copied()
        .find(|a| targets.allows(a.ip()))
        .ok_or_else(|| {
            let ips: Vec<_> = found.iter().map(SocketAddr::ip).collect();
            JobFailure::new(
                ErrorClass::Client,
                format!("refused: {}", targets.refuse(host, &ips)),
            )
        })
}

/// The class of an SMTP failure (535 auth, other 4xx server, other 5xx client; no reply
/// timeout) and what happened in Hangar's words, with the reply code but never its text.
pub fn smtp_failure(error: &lettre::transport::smtp::Error) -> JobFailure {
    let code = error.status().map(|c| c.to_string());
    match code.as_deref() {
        Some(code @ ("535" | "534" | "530")) => JobFailure::new(
            ErrorClass::Auth,
            format!("SMTP authentication failed ({code})"),
        ),
        Some(code) if code.starts_with('4') => JobFailure::new(
            ErrorClass::Server,
            format!("SMTP: temporarily rejected by the server ({code})"),
        ),
        Some(code) => JobFailure::new(
            ErrorClass::Client,
            format!("SMTP: rejected by the server ({code})"),
        ),
        None => {
            let (class, what) = if error.is_timeout() {
                (ErrorClass::Timeout, "timed out")
            } else if error.is_tls() {
                (ErrorClass::Timeout, "TLS handshake failed")
            } else if let Some(kind) = io_error_kind(error) {
                use std::io::ErrorKind;
                match kind {
                    ErrorKind::ConnectionRefused => (ErrorClass::Timeout, "connection refused"),
                    ErrorKind::ConnectionReset | ErrorKind::ConnectionAborted => {
                        (ErrorClass::Timeout, "connection reset")
                    }
                    ErrorKind::TimedOut => (ErrorClass::Timeout, "timed out"),
                    // rustls reports a failed handshake (an untrusted certificate, a name
                    // that does not match) as invalid data.
                    ErrorKind::InvalidData => (ErrorClass::Timeout, "TLS handshake failed"),
                    _ => (ErrorClass::Timeout, "connection failed"),
                }
            } else if error.is_response() {
                (
                    ErrorClass::Client,
                    "the server did not answer as an SMTP server",
                )
            } else if error.is_client() {
                (
                    ErrorClass::Client,
                    "the message could not be sent as configured",
                )
            } else {
                (ErrorClass::Timeout, "connection failed")
            };
            JobFailure::new(class, format!("SMTP: {what}"))
        }
    }
}

/// The kind of the I/O error inside `error`, if one caused it.
fn io_error_kind(error: &lettre::transport::smtp::Error) -> Option<std::io::ErrorKind> {
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        if let Some(io) = cause.downcast_ref::<std::io::Error>() {
            return Some(io.kind());
        }
        source = cause.source();
    }
    None
}
