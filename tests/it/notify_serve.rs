//! Slack and Email end to end in a `hangar serve` process, on both backends: an admin enables
//! both with `PUT …/integrations/{slack,email}` (an operator may not; no answer shows the
//! webhook URL or the SMTP password), a `crew.currency_expiring` event posted to the API
//! becomes a Slack message and an email; once the Slack channel is archived the next event
//! disables the Slack integration with a `channel_disabled` alert (the email still goes), and
//! enabling it again resolves the alert.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::slack_sim::{HOOK_CHANNEL, SlackSim};
use crate::smtp_sim::{PASSWORD, Security, SmtpSim, USER};
use crate::stripe_serve::{SYNC_POOLS, call};
use crate::support::{Backend, TestDb, serve_http, stdout_ok, wait_for};

fn event(id: &str) -> Value {
    json!({"id": id, "type": "crew.currency_expiring", "workspace_id": "ws_ops",
        "timestamp": "2026-11-22T10:00:00Z",
        "data": {"crew_member_id": "crw_17", "currency": "night_landings", "expires_on": "2026-12-20"}})
}

async fn enabled_by_an_admin_and_delivered(backend: Backend) {
    let db = TestDb::new(backend).await;
    db.pools(SYNC_POOLS);
    let _ = db.store().await;
    let slack = SlackSim::start().await;
    let smtp = SmtpSim::start(Security::Plain).await;
    let (_serve, base) = serve_http(&db).await;
    let token = |role: &str| {
        stdout_ok(&db.run(&["tokens", "create", "--role", role]))
            .trim()
            .to_owned()
    };
    let (admin, operator) = (token("admin"), token("operator"));
    let slack_path = format!("{base}/api/v1/workspaces/ws_ops/integrations/slack");
    let email_path = format!("{base}/api/v1/workspaces/ws_ops/integrations/email");
    let slack_body = json!({"enabled": true, "data_types": ["crew"], "frequency": "realtime",
        "credentials": {"api_key": slack.hook_url()}});
    let email_body = json!({"enabled": true, "data_types": ["crew"], "frequency": "realtime",
        "settings": {"host": "127.0.0.1", "port": smtp.port, "tls": "none", "username": USER,
            "from": "hangar@ops.example.com", "to": ["dispatch@ops.example.com"]},
        "credentials": {"api_key": PASSWORD}});

    let (status, _, text) = call(
        Method::PUT,
        &slack_path,
        &operator,
        Some(slack_body.clone()),
    )
    .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "messaging is an admin's: {text}"
    );
    for (path, body) in [(&slack_path, &slack_body), (&email_path, &email_body)] {
        let (status, saved, text) = call(Method::PUT, path, &admin, Some(body.clone())).await;
        assert_eq!(
            (status, &saved["status"]),
            (StatusCode::OK, &json!("active")),
            "{text}"
        );
        assert!(
            !text.contains(PASSWORD) && !text.contains(&slack.hook_url()),
            "{text}"
        );
    }

    let events = format!("{base}/api/v1/events");
    let (status, _, text) = call(Method::POST, &events, &admin, Some(event("evt_cur_1"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let posted = wait_for("the Slack message", Duration::from_secs(30), || async {
        Some(slack.messages()).filter(|m| !m.is_empty())
    })
    .await;
    assert_eq!(posted[0].channel, HOOK_CHANNEL);
    assert!(
        posted[0].text.contains("*Crew currency expiring*"),
        "{}",
        posted[0].text
    );
    assert!(
        posted[0].text.contains("crew_member_id: `crw_17`"),
        "{}",
        posted[0].text
    );
    let mails = wait_for("the email", Duration::from_secs(30), || async {
        Some(smtp.messages()).filter(|m| !m.is_empty())
    })
    .await;
    assert!(
        mails[0]
            .data
            .contains("Subject: [PlaneConnection] Crew currency expiring"),
        "{}",
        mails[0].data
    );
    assert_eq!(mails[0].to, ["dispatch@ops.example.com"]);

    // The channel is archived: the next event disables the Slack integration, with an alert.
    slack.archive(HOOK_CHANNEL);
    let (status, _, text) = call(Method::POST, &events, &admin, Some(event("evt_cur_2"))).await;
    assert_eq!(status, StatusCode::ACCEPTED, "{text}");
    let disabled = wait_for(
        "the Slack integration disabled",
        Duration::from_secs(30),
        || async {
            let (_, found, _) = call(Method::GET, &slack_path, &admin, None).await;
            Some(found).filter(|f| f["status"] == "disabled")
        },
    )
    .await;
    assert!(
        disabled.to_string().contains("channel_is_archived"),
        "the reason is shown: {disabled}"
    );
    let alerts_url = format!("{base}/api/v1/alerts");
    let alert = wait_for(
        "the channel_disabled alert",
        Duration::from_secs(10),
        || async {
            let (_, alerts, _) = call(Method::GET, &alerts_url, &admin, None).await;
            let list = alerts
                .as_array()
                .cloned()
                .or_else(|| alerts["alerts"].as_array().cloned())?;
            list.into_iter()
                .find(|a| a["kind"] == "channel_disabled" && a["integration"] == "slack")
        },
    )
    .await;
    assert_eq!(alert["severity"], "critical", "{alert}");
    assert!(alert["resolved_at"].is_null(), "{alert}");
    wait_for("the second email", Duration::from_secs(30), || async {
        Some(()).filter(|_| smtp.messages().len() == 2)
    })
    .await;
    assert_eq!(slack.messages().len(), 1);

    // The admin un-archives the channel and enables Slack again: the alert is resolved.
    let (status, saved, text) = call(Method::PUT, &slack_path, &admin, Some(slack_body)).await;
    assert_eq!(
        (status, &saved["status"]),
        (StatusCode::OK, &json!("active")),
        "{text}"
    );
    let (_, alerts, _) = call(Method::GET, &format!("{alerts_url}?all=true"), &admin, None).await;
    let text = alerts.to_string();
    assert!(
        !text.contains(PASSWORD) && !text.contains("hangarHookSecret"),
        "{text}"
    );
    let list = alerts
        .as_array()
        .cloned()
        .or_else(|| alerts["alerts"].as_array().cloned())
        .unwrap_or_default();
    let ours = list
        .iter()
        .find(|a| a["kind"] == "channel_disabled" && a["integration"] == "slack")
        .expect("the alert");
    assert!(
        !ours["resolved_at"].is_null(),
        "resolved once enabled again: {ours}"
    );
}

#[tokio::test]
async fn notify_enabled_by_an_admin_and_delivered_postgres() {
    enabled_by_an_admin_and_delivered(Backend::Postgres).await;
}

#[tokio::test]
async fn notify_enabled_by_an_admin_and_delivered_sqlite() {
    enabled_by_an_admin_and_delivered(Backend::Sqlite).await;
}
