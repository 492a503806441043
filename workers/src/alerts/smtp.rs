//! The email channel's transport: one message over SMTP to a host the target policy allows
//! (the `allow_private_targets` setting, as for webhook URLs), connected by the checked address so
//! a DNS answer that changes between check and use cannot slip through (TLS still verifies the
//! configured host name). A failure is classified and described in Hangar's own words, never
//! with the server's reply text or banner: an admin's test route must not become a port and
//! banner scanner.

use std::net::SocketAddr;
use std::time::Duration;

use lettre::message::{Mailbox, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::channels::{EmailConfig, TlsMode};
use super::deliver::Notice;
use crate::error_class::ErrorClass;
use crate::kinds::JobFailure;
use crate::targets::TargetPolicy;

/// How long one delivery may take, connection to QUIT.
const TIMEOUT: Duration = Duration::from_secs(30);

/// Sends one email to the channel's recipients.
pub async fn send_email(
    config: &EmailConfig,
    notice: &Notice,
    targets: &TargetPolicy,
) -> Result<(), JobFailure> {
    let client_error = |m: String| JobFailure::new(ErrorClass::Client, m);
    let from: Mailbox = config
        .from
        .parse()
        .map_err(|_| client_error("email from: not an address".into()))?;
    let mut builder = Message::builder().from(from).subject(notice.title.clone());
    for to in &config.to {
        builder = builder.to(to
            .parse()
            .map_err(|_| client_error("email to: not an address".into()))?);
    }
    let message = builder
        .header(ContentType::TEXT_PLAIN)
        .body(notice.text.clone())
        .map_err(|e| client_error(format!("email: {e}")))?;
    let address = allowed_address(&config.host, config.port, targets).await?;
    let tls = |host: &str| {
        TlsParameters::new(host.to_owned())
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
