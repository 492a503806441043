//! Stripe Connect against its simulator, on both backends: payments in (a first full
//! reconciliation by the PaymentIntents list, then the events feed in pages of 100 with
//! `starting_after`, the cursor advancing; a cursor older than the feed's window falls back
//! to a full reconciliation), a 429 `rate_limit_error` honoured (no call during the pause),
//! the test key's budget keeping a long scan clear of throttling, a 401
//! `authentication_error` ending in an auth failure after one refused refresh, and
//! PaymentIntents out whose retry after a lost answer is the same idempotent request.

use std::sync::atomic::Ordering;
use std::time::Duration;

use chrono::Utc;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::outbound::accept_event;
use hangar_workers::error_class::ErrorClass;
use hangar_workers::wire::EventEnvelope;
use serde_json::json;

use crate::stripe_support::{StripeWorld, WORKSPACE};
use crate::support::{Backend, wait_for};

async fn payments_in(backend: Backend) {
    let w = StripeWorld::new(backend).await;
    w.sim.add_intents(230, chrono::Duration::hours(2));

    // No cursor: the PaymentIntents are listed, 100 a page.
    w.sync("payments", None).await.expect("first sync");
    let first = w.last_run().await;
    assert_eq!(
        (first.status.as_str(), first.records.created),
        ("succeeded", 230),
        "{first:?}"
    );
    assert!(
        first.log.iter().any(|l| l.contains("no cursor yet")),
        "{:?}",
        first.log
    );
    assert_eq!(w.sim.calls("list"), 3);
    assert_eq!(
        w.sim.calls("events"),
        1,
        "the feed read once after the scan"
    );

    // Clients pay 5 of them and 130 more are created: 135 events, two lists of the feed.
    let ids: Vec<String> = w
        .sim
        .intents()
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    for id in &ids[..5] {
        w.sim.succeed(id);
    }
    w.sim.add_intents(
        130,
        chrono::Duration::zero() - chrono::Duration::seconds(131),
    );
    let events_before = w.sim.calls("events");
    w.sync("payments", None).await.expect("second sync");
    let second = w.last_run().await;
    assert_eq!(
        (
            second.status.as_str(),
            second.records.created,
            second.records.updated
        ),
        ("succeeded", 130, 5),
        "{second:?}"
    );
    assert!(
        w.sim.calls("events") - events_before >= 2,
        "135 events take two lists"
    );
    assert_eq!(w.sim.calls("list"), 3, "no second scan");
    let cursor_at = second.cursor_after.as_ref().unwrap()["cursor"]["at"].clone();
    let first_at = first.cursor_after.as_ref().unwrap()["cursor"]["at"].clone();
    assert!(
        cursor_at.as_str() > first_at.as_str(),
        "{cursor_at} after {first_at}"
    );
    let paid = w
        .store
        .mapped_payload(crate::stripe_support::INTEGRATION, "PaymentIntent", &ids[0])
        .await
        .unwrap();
    assert_eq!(paid.map(|p| p["status"].clone()), Some(json!("succeeded")));

    // Nothing new: nothing changes.
    w.sync("payments", None).await.expect("third sync");
    let third = w.last_run().await;
    assert_eq!(
        (third.records.created, third.records.updated),
        (0, 0),
        "{third:?}"
    );

    // A cursor older than Stripe keeps events: a full reconciliation again.
    w.age_the_cursor().await;
    w.sync("payments", None).await.expect("after the window");
    let late = w.last_run().await;
    assert!(
        late.log
            .iter()
            .any(|l| l.contains("older than the provider's 29-day changes window")),
        "{:?}",
        late.log
    );
    assert_eq!(
        w.sim.calls("list"),
        3 + 4,
        "360 PaymentIntents listed again"
    );
    assert_eq!(
        (late.records.created, late.records.updated),
        (0, 0),
        "{late:?}"
    );
}

#[tokio::test]
async fn payments_in_postgres() {
    payments_in(Backend::Postgres).await;
}

#[tokio::test]
async fn payments_in_sqlite() {
    payments_in(Backend::Sqlite).await;
}

/// More events since the cursor than one engine page reads (1 050 over 17 minutes): the
/// window narrows until a page holds them all, the cursor never passing an event unread.
async fn a_busy_feed_is_read_oldest_first(backend: Backend) {
    let w = StripeWorld::new(backend).await;
    w.sync("payments", None).await.expect("first sync");
    // Events from the next second on (a burst after the cursor).
    w.sim.add_intents(1050, chrono::Duration::seconds(-1051));
    wait_for("the feed to be read", Duration::from_secs(60), || async {
        match w.sync("payments", None).await {
            Ok(()) => Some(()),
            Err(f) => {
                assert_eq!(f.class, ErrorClass::RateLimit, "{f:?}");
                None
            }
        }
    })
    .await;
    let runs = w.store.runs(WORKSPACE, None, 1000).await.unwrap();
    let created: i64 = runs.iter().map(|r| r.records.created).sum();
    assert_eq!(created, 1050, "every PaymentIntent, once");
    let done = &runs[0];
    assert_eq!(done.status, "succeeded", "{done:?}");
    assert!(
        w.sim.calls("events") > 11,
        "the window was narrowed and read again"
    );
}

#[tokio::test]
async fn a_busy_feed_is_read_oldest_first_postgres() {
    a_busy_feed_is_read_oldest_first(Backend::Postgres).await;
}

#[tokio::test]
async fn a_busy_feed_is_read_oldest_first_sqlite() {
    a_busy_feed_is_read_oldest_first(Backend::Sqlite).await;
}

async fn limits_are_honoured(backend: Backend) {
    let w = StripeWorld::new(backend).await;
    w.sim.add_intents(20, chrono::Duration::hours(1));
    w.sim.switch(|s| s.throttle_next = 1);
    let failure = w.sync("payments", None).await.expect_err("throttled");
    assert_eq!(failure.class, ErrorClass::RateLimit);
    assert_eq!(failure.retry_after.as_deref(), Some("2"));
    let run = w.last_run().await;
    assert_eq!(run.status, "rate_limited");
    assert!(
        run.error.as_deref().unwrap().contains("rate_limit_error"),
        "{run:?}"
    );
    // During the pause no attempt calls Stripe; after it the run completes.
    let answered = w.sim.calls("list") + w.sim.calls("429");
    wait_for("the pause to end", Duration::from_secs(15), || async {
        match w.sync("payments", None).await {
            Ok(()) => Some(()),
            Err(f) => {
                assert_eq!(f.class, ErrorClass::RateLimit);
                assert_eq!(
                    w.sim.calls("list") + w.sim.calls("429"),
                    answered,
                    "a call during the pause"
                );
                None
            }
        }
    })
    .await;
    assert_eq!(w.last_run().await.records.created, 20);

    // A test key's budget is 25 requests a second, paced: 23.75 a second (one every 42 ms),
    // a burst of 1. Four callers run syncs back to back until 40 ran (each one call to the
    // feed), against a Stripe that allows 50 in any second: the callers wait for their slots
    // (counted in the runs' `rate_wait_ms`), none goes over the budget, and Stripe never
    // throttles.
    w.sim.switch(|s| s.per_second = Some(50));
    let (throttled, feed_calls) = (w.sim.calls("429"), w.sim.calls("events"));
    let waited_before = w.wait_ms().await;
    let started = std::time::Instant::now();
    let ran = std::sync::atomic::AtomicU32::new(0);
    let caller = || async {
        while ran.load(Ordering::SeqCst) < 40 && started.elapsed() < Duration::from_secs(30) {
            match w.sync("payments", None).await {
                Ok(()) => {
                    ran.fetch_add(1, Ordering::SeqCst);
                }
                Err(f) => assert_eq!(f.class, ErrorClass::RateLimit, "{f:?}"),
            }
        }
    };
    tokio::join!(caller(), caller(), caller(), caller());
    let ran = ran.load(Ordering::SeqCst);
    let waited_ms = w.wait_ms().await - waited_before;
    let elapsed = started.elapsed().as_secs_f64();
    assert_eq!(
        w.sim.calls("429"),
        throttled,
        "the budget kept under Stripe's limit"
    );
    assert!(ran >= 40, "the budget refills every second ({ran} runs)");
    assert!(waited_ms > 0, "the runs waited for their slots");
    let calls = w.sim.calls("events") - feed_calls;
    assert!(
        f64::from(calls) <= 23.75 * elapsed + 2.0,
        "{calls} calls in {elapsed:.2} s"
    );
}

#[tokio::test]
async fn limits_are_honoured_postgres() {
    limits_are_honoured(Backend::Postgres).await;
}

#[tokio::test]
async fn limits_are_honoured_sqlite() {
    limits_are_honoured(Backend::Sqlite).await;
}

async fn a_refused_key_is_an_auth_failure(backend: Backend) {
    let w = StripeWorld::new(backend).await;
    w.sim.switch(|s| s.revoke_key = true);
    let failure = w.sync("payments", None).await.expect_err("refused");
    assert_eq!(failure.class, ErrorClass::Auth, "{failure:?}");
    assert_eq!(
        *w.access.refreshes.lock().unwrap(),
        1,
        "one refresh asked, refused"
    );
    assert_eq!(w.sim.calls("401"), 1, "no retry with the same key");
    assert_eq!(w.last_run().await.status, "failed");
}

#[tokio::test]
async fn a_refused_key_is_an_auth_failure_postgres() {
    a_refused_key_is_an_auth_failure(Backend::Postgres).await;
}

#[tokio::test]
async fn a_refused_key_is_an_auth_failure_sqlite() {
    a_refused_key_is_an_auth_failure(Backend::Sqlite).await;
}

fn invoice_sent(id: &str, amount: f64) -> EventEnvelope {
    let data = json!({"invoice_id": "inv_77", "currency": "USD", "doc_number": "1077",
        "lines": [{"amount": amount, "description": "Charter KTEB-KPBI"}]});
    EventEnvelope {
        id: id.to_owned(),
        event_type: "invoice.sent".to_owned(),
        workspace_id: WORKSPACE.to_owned(),
        timestamp: Utc::now(),
        data: data.as_object().unwrap().clone(),
    }
}

async fn payment_intents_out(backend: Backend) {
    let w = StripeWorld::new(backend).await;
    let integrations = vec![w.access.info.clone()];
    let connectors = Connectors::builtin();
    let jobs = accept_event(
        &w.store,
        &connectors,
        &integrations,
        &invoice_sent("evt_a", 1250.5),
    )
    .await
    .unwrap();
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].args.data_type, "payment_intents");

    // The PaymentIntent is made but its answer is lost: the retry is the same request (same
    // Idempotency-Key, same parameters), answered again without a second PaymentIntent.
    w.sim.switch(|s| s.lose_next_answers = 1);
    let failure = w
        .sync("payment_intents", Some("evt_a"))
        .await
        .expect_err("answer lost");
    assert_eq!(failure.class, ErrorClass::Server);
    w.sync("payment_intents", Some("evt_a"))
        .await
        .expect("retry");
    assert_eq!(w.sim.calls("replayed"), 1);
    assert_eq!(w.sim.calls("idempotency_error"), 0);
    let intents = w.sim.intents();
    assert_eq!(intents.len(), 1, "{intents:?}");
    assert_eq!(intents[0]["amount"], 125050);
    assert_eq!(intents[0]["currency"], "usd");
    assert_eq!(intents[0]["metadata"]["hangar_invoice_id"], "inv_77");
    assert_eq!(intents[0]["automatic_payment_methods"]["enabled"], true);
    let run = w.last_run().await;
    assert_eq!(
        (run.status.as_str(), run.direction.as_str()),
        ("succeeded", "out"),
        "{run:?}"
    );

    // The invoice is sent again with another amount: an update of the same PaymentIntent.
    accept_event(
        &w.store,
        &connectors,
        &integrations,
        &invoice_sent("evt_b", 99.0),
    )
    .await
    .unwrap();
    w.sync("payment_intents", Some("evt_b"))
        .await
        .expect("update");
    let intents = w.sim.intents();
    assert_eq!(
        (intents.len(), &intents[0]["amount"]),
        (1, &json!(9900)),
        "{intents:?}"
    );
    assert_eq!(w.sim.calls("update"), 1);
}

#[tokio::test]
async fn payment_intents_out_postgres() {
    payment_intents_out(Backend::Postgres).await;
}

#[tokio::test]
async fn payment_intents_out_sqlite() {
    payment_intents_out(Backend::Sqlite).await;
}
