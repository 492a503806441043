//! The Email connector against a local TLS-capable SMTP server ([`crate::smtp_sim`]), on both
//! backends: STARTTLS (587's way) and implicit TLS (465's) both deliver, encrypted, with the
//! login, a subject and a `Message-ID` that a retry repeats; a server whose certificate is not
//! trusted is refused (no code path accepts an invalid certificate); SMTP replies take their
//! classes: 4xx transient (`server`, retried), 5xx permanent (`client`), 535 `auth` (after the
//! one refused refresh: re-authorisation).

use hangar_integrations::provider::Provider;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::mail::TrustRoots;
use serde_json::{Value, json};

use crate::notify_support::NotifyWorld;
use crate::smtp_sim::{PASSWORD, Security, SmtpSim, USER};
use crate::support::Backend;

fn settings(sim: &SmtpSim, tls: &str) -> Value {
    json!({"host": "127.0.0.1", "port": sim.port, "tls": tls, "username": USER,
        "from": "hangar@ops.example.com", "to": ["dispatch@ops.example.com", "chief.pilot@ops.example.com"]})
}

async fn world(
    backend: Backend,
    sim: &SmtpSim,
    tls: &str,
    password: &str,
    trust: bool,
) -> NotifyWorld {
    let roots = if trust {
        TrustRoots::default().with_pem(sim.root_pem.clone())
    } else {
        TrustRoots::default()
    };
    NotifyWorld::new(
        backend,
        Provider::Email,
        &["invoices"],
        settings(sim, tls),
        password,
        roots,
    )
    .await
}

async fn both_tls_modes_deliver(backend: Backend) {
    for (security, tls) in [
        (Security::StartTls, "starttls"),
        (Security::Implicit, "implicit"),
    ] {
        let sim = SmtpSim::start(security).await;
        let w = world(backend, &sim, tls, PASSWORD, true).await;
        w.event(
            "evt_overdue",
            "invoice.overdue",
            json!({"invoice_id": "inv_42", "days_overdue": 3}),
        )
        .await;
        w.sync("invoices", "evt_overdue")
            .await
            .unwrap_or_else(|f| panic!("{tls}: {f:?}"));
        let messages = sim.messages();
        assert_eq!(messages.len(), 1, "{tls}");
        let m = &messages[0];
        assert!(m.tls, "{tls}: sent encrypted");
        assert_eq!(m.user, USER);
        assert_eq!(m.from, "hangar@ops.example.com");
        assert_eq!(
            m.to,
            ["dispatch@ops.example.com", "chief.pilot@ops.example.com"]
        );
        assert!(
            m.data
                .contains("Subject: [PlaneConnection] Invoice overdue"),
            "{}",
            m.data
        );
        assert!(
            m.data.contains("invoice_id: inv_42") && m.data.contains("days_overdue: 3"),
            "{}",
            m.data
        );
        assert!(
            m.data.contains("@ops.example.com>"),
            "a Message-ID of the sender's domain: {}",
            m.data
        );
        let run = w.last_run().await;
        assert_eq!(
            (run.status.as_str(), run.records.created),
            ("succeeded", 1),
            "{tls}: {run:?}"
        );
        assert!(!format!("{run:?}").contains(PASSWORD));

        // Without the test's root the self-signed server is refused before any login.
        let untrusted = world(backend, &sim, tls, PASSWORD, false).await;
        untrusted
            .event("evt_x", "invoice.paid", json!({"invoice_id": "inv_42"}))
            .await;
        let failure = untrusted
            .sync("invoices", "evt_x")
            .await
            .expect_err("untrusted");
        assert_eq!(
            failure.class,
            ErrorClass::Timeout,
            "{tls}: {}",
            failure.message
        );
        assert!(failure.message.contains("TLS"), "{}", failure.message);
        assert_eq!(
            sim.messages().len(),
            1,
            "nothing sent to an untrusted server"
        );
    }
}

#[tokio::test]
async fn email_starttls_and_implicit_tls_deliver_postgres() {
    both_tls_modes_deliver(Backend::Postgres).await;
}

#[tokio::test]
async fn email_starttls_and_implicit_tls_deliver_sqlite() {
    both_tls_modes_deliver(Backend::Sqlite).await;
}

async fn replies_are_classified(backend: Backend) {
    let sim = SmtpSim::start(Security::StartTls).await;
    let w = world(backend, &sim, "starttls", PASSWORD, true).await;
    w.event("evt_sent", "invoice.sent", json!({"invoice_id": "inv_7"}))
        .await;

    sim.script_rcpt(Some("451 4.3.0 Mailbox temporarily unavailable"));
    let failure = w.sync("invoices", "evt_sent").await.expect_err("4xx");
    assert_eq!(
        failure.class,
        ErrorClass::Server,
        "transient: {}",
        failure.message
    );
    assert!(
        failure.message.contains("451") && !failure.message.contains("Mailbox"),
        "{}",
        failure.message
    );

    sim.script_rcpt(Some("550 5.1.1 No such user"));
    let failure = w.sync("invoices", "evt_sent").await.expect_err("5xx");
    assert_eq!(
        failure.class,
        ErrorClass::Client,
        "permanent: {}",
        failure.message
    );

    // The retry after the 4xx goes through with the same Message-ID.
    sim.script_rcpt(None);
    w.sync("invoices", "evt_sent").await.expect("sent");
    assert_eq!(sim.messages().len(), 1);

    let wrong = world(backend, &sim, "starttls", "not-the-password", true).await;
    wrong
        .event("evt_sent2", "invoice.sent", json!({"invoice_id": "inv_8"}))
        .await;
    let failure = wrong.sync("invoices", "evt_sent2").await.expect_err("535");
    assert_eq!(failure.class, ErrorClass::Auth, "{}", failure.message);
    assert!(
        failure.message.contains("re-authorisation"),
        "{}",
        failure.message
    );
    assert_eq!(
        *wrong.access.refreshes.lock().unwrap(),
        1,
        "one refresh, refused"
    );
    assert_eq!(sim.failed_logins(), 1);
    assert!(!failure.message.contains("not-the-password"));
}

#[tokio::test]
async fn email_smtp_replies_are_classified_postgres() {
    replies_are_classified(Backend::Postgres).await;
}

#[tokio::test]
async fn email_smtp_replies_are_classified_sqlite() {
    replies_are_classified(Backend::Sqlite).await;
}
