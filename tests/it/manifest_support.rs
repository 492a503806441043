//! Support for the manifest connector's tests: TEST manifests for `camp` (the shipped
//! template's streams, filled with the simulator's shapes: [`manifest`] with an auth kind
//! and a due-items style), and [`ManifestWorld`]: a migrated database, the simulator, and a
//! test seam holding integrations whose settings carry a test manifest (what an admin
//! gives in `settings.manifest`), run by the real sync handler over `Connectors::builtin`.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hangar_integrations::access::{AccessError, AccessToken, IntegrationAccess, IntegrationInfo};
use hangar_integrations::provider::Provider;
use hangar_integrations::store::SyncStore;
use hangar_integrations::store::sync_runs::RunRow;
use hangar_integrations::sync::changes::Changes;
use hangar_integrations::sync::connector::Connectors;
use hangar_integrations::sync::handler::SyncHandler;
use hangar_integrations::sync::{SyncArgs, Trigger};
use hangar_workers::db::Database;
use hangar_workers::kinds::{BoxFuture, JobFailure};
use hangar_workers::targets::TargetPolicy;
use serde_json::json;

use crate::manifest_sim::{API_KEY, CLIENT_ID, CLIENT_SECRET, ManifestSim, PASSWORD, TOKEN, USER};
use crate::support::{Backend, TestDb};

pub const WORKSPACE: &str = "ws_manifest";

/// An auth kind of the test manifest: its `[auth]` table and the credential (the token a
/// call carries: an API key, or the JSON of `credentials.secrets`).
pub fn auth(kind: &str) -> (String, String) {
    let secrets = |pairs: &[(&str, &str)]| {
        let map: serde_json::Map<String, serde_json::Value> = pairs
            .iter()
            .map(|(k, v)| (k.to_string(), json!(v)))
            .collect();
        serde_json::Value::Object(map).to_string()
    };
    match kind {
        "api_key_header" => (
            "[auth]\nkind = \"api_key\"\nplacement = \"header\"\nname = \"X-Api-Key\"\nvalue = \"{{secret.api_key}}\"\n".into(),
            API_KEY.into(),
        ),
        "api_key_query" => (
            "[auth]\nkind = \"api_key\"\nplacement = \"query\"\nname = \"api_key\"\nvalue = \"{{secret.api_key}}\"\n".into(),
            API_KEY.into(),
        ),
        "basic" => (
            "[auth]\nkind = \"basic\"\nusername = \"{{secret.username}}\"\npassword = \"{{secret.password}}\"\n".into(),
            secrets(&[("username", USER), ("password", PASSWORD)]),
        ),
        "bearer" => (
            "[auth]\nkind = \"bearer\"\ntoken = \"{{secret.token}}\"\n".into(),
            TOKEN.into(),
        ),
        "oauth" => (
            "[auth]\nkind = \"oauth_client_credentials\"\ntoken_url = \"/oauth/token\"\nclient_id = \"{{secret.client_id}}\"\nclient_secret = \"{{secret.client_secret}}\"\nscopes = [\"maintenance\"]\n".into(),
            secrets(&[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)]),
        ),
        "session" => (
            "[auth]\nkind = \"session\"\nlogin_path = \"/login\"\ntoken_path = \"session.token\"\nexpires_in_path = \"session.expires_in\"\n[auth.fields]\nuser = \"{{secret.username}}\"\npass = \"{{secret.password}}\"\n".into(),
            secrets(&[("username", USER), ("password", PASSWORD)]),
        ),
        other => panic!("auth kind {other}"),
    }
}

/// How the due items are read: decoder, pagination and cursor.
#[derive(Clone, Copy, Debug)]
pub struct Style {
    pub format: &'static str,
    pub pagination: &'static str,
    pub cursor: &'static str,
}

/// JSON, page numbers, a date-time cursor.
pub const JSON_PAGES: Style = Style {
    format: "json",
    pagination: "page_number",
    cursor: "date_time",
};

/// The test manifest with `auth` (an `[auth]` table) and `style`.
pub fn manifest(auth: &str, style: Style) -> String {
    let (records, id, seq, updated, description) = match style.format {
        "xml" => (
            "records_path = \"DueItems.Item\"",
            "@id",
            "Seq",
            "UpdatedAt",
            "Description",
        ),
        "csv" => ("", "id", "seq", "updated_at", "description"),
        _ => (
            "records_path = \"data.items\"",
            "id",
            "seq",
            "updated_at",
            "description",
        ),
    };
    let pagination = match style.pagination {
        "page_number" => {
            "kind = \"page_number\"\nparam = \"page\"\nsize_param = \"per_page\"\nsize = 10"
                .to_owned()
        }
        "offset" => {
            "kind = \"offset\"\nparam = \"offset\"\nsize_param = \"limit\"\nsize = 10".to_owned()
        }
        "cursor_token" => {
            let at = if style.format == "xml" {
                "DueItems.Next"
            } else {
                "data.next"
            };
            format!(
                "kind = \"cursor_token\"\nparam = \"page_token\"\ntoken_path = \"{at}\"\nsize_param = \"page_size\"\nsize = 10"
            )
        }
        "link_header" => "kind = \"link_header\"\nsize_param = \"lsize\"\nsize = 10".to_owned(),
        _ => "kind = \"none\"".to_owned(),
    };
    let cursor = match style.cursor {
        "date_time" => format!(
            "kind = \"date_time\"\nparam = \"modified_since\"\nfield = \"{updated}\"\ngranularity_secs = 1\nlookback = 60\nretention_days = 30"
        ),
        _ => format!(
            "kind = \"incrementing\"\nparam = \"after_seq\"\nfield = \"{seq}\"\nlookback = 0"
        ),
    };
    format!(
        r#"version = 1
provider = "camp"
name = "CAMP Systems (test manifest for the simulator)"
base_url = "https://camp.invalid"

{auth}
[rate_budget]
requests = 1000
per_secs = 1
concurrent = 4

[check]
path = "/me"

[[rules]]
status = [403]
path = "error.code"
equals = "QUOTA_EXCEEDED"
action = "rate_limited"
wait_header = "X-Quota-Reset"
message_path = "error.message"

[[rules]]
status = [403]
path = "error.code"
equals = "ACCOUNT_LOCKED"
action = "fatal"
class = "auth"

[[rules]]
status = ["4xx"]
path = "error.code"
equals = "SESSION_EXPIRED"
action = "refresh"

[[rules]]
status = ["2xx"]
path = "meta.errors"
message_path = "meta.errors[0].title"
action = "soft_error"

[[rules]]
header = "X-Maintenance"
header_equals = "on"
action = "retry"
class = "server"

[[streams]]
data_type = "flight_times"
direction = "out"
object_type = "flight_time"
conflict = "ordinary"
events = ["trip.completed"]
internal_id = "trip_id"
primary_key = "result.id"

[streams.request]
method = "POST"
path = "/flight-times"

[streams.update]
method = "PUT"
path = "/flight-times/{{{{external_id}}}}"

[streams.map]
aircraft = "tail_number"
"times.block_out" = "block_out"
"times.block_in" = "block_in"
reference = "trip_id"

[[streams]]
data_type = "due_items"
direction = "in"
object_type = "due_item"
conflict = "ordinary"
primary_key = "{id}"
modified_path = "{updated}"

[streams.request]
path = "/due-items"
query = {{ format = "{format}" }}

[streams.cursor]
{cursor}

[streams.pagination]
{pagination}

[streams.decode]
format = "{format}"
{records}

[streams.map]
id = "{id}"
description = "{description}"
"#,
        format = style.format,
    )
}

/// The test seam: integrations by id, each with its settings and credential.
#[derive(Default)]
pub struct Seam {
    pub integrations: Mutex<HashMap<String, (IntegrationInfo, String)>>,
    pub refreshes: Mutex<u32>,
}

impl IntegrationAccess for Seam {
    fn integration<'a>(
        &'a self,
        id: &'a str,
    ) -> BoxFuture<'a, Result<IntegrationInfo, AccessError>> {
        Box::pin(async move {
            let map = self.integrations.lock().unwrap();
            map.get(id)
                .map(|(info, _)| info.clone())
                .ok_or_else(|| AccessError::NotFound(id.to_owned()))
        })
    }

    fn access_token<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            let map = self.integrations.lock().unwrap();
            map.get(id)
                .map(|(_, token)| AccessToken {
                    token: token.clone(),
                    version: 1,
                })
                .ok_or_else(|| AccessError::NotFound(id.to_owned()))
        })
    }

    fn refresh_after_unauthorized<'a>(
        &'a self,
        id: &'a str,
        _seen_version: i64,
    ) -> BoxFuture<'a, Result<AccessToken, AccessError>> {
        Box::pin(async move {
            *self.refreshes.lock().unwrap() += 1;
            Err(AccessError::NeedsReauth(
                id.to_owned(),
                "static secrets cannot be refreshed".into(),
            ))
        })
    }
}

/// One manifest test's world.
pub struct ManifestWorld {
    /// Kept for the test's life (its database).
    pub _db: TestDb,
    pub sim: ManifestSim,
    pub store: SyncStore,
    pub seam: Arc<Seam>,
    pub handler: SyncHandler,
}

impl ManifestWorld {
    pub async fn new(backend: Backend) -> ManifestWorld {
        let db = TestDb::new(backend).await;
        let _ = db.store().await;
        let sim = ManifestSim::start().await;
        let store = SyncStore::new(Database::connect(&db.url).await.expect("connect"));
        let seam = Arc::new(Seam::default());
        let handler = SyncHandler::new(
            store.clone(),
            seam.clone(),
            Connectors::builtin(),
            &TargetPolicy::allow_all(),
            Changes::api_only(),
        )
        .expect("handler");
        ManifestWorld {
            _db: db,
            sim,
            store,
            seam,
            handler,
        }
    }

    /// Adds (or replaces) integration `id` of `camp` with `manifest` and `token`.
    pub fn integrate(&self, id: &str, manifest: &str, token: &str) {
        let info = IntegrationInfo {
            id: id.into(),
            workspace_id: WORKSPACE.into(),
            provider: Provider::Camp,
            enabled: true,
            data_types: vec!["due_items".into(), "flight_times".into()],
            settings: json!({"manifest": manifest, "base_url": self.sim.base}),
        };
        self.seam
            .integrations
            .lock()
            .unwrap()
            .insert(id.into(), (info, token.into()));
    }

    /// One sync of `data_type` for integration `id`.
    pub async fn sync(
        &self,
        id: &str,
        data_type: &str,
        event_id: Option<&str>,
    ) -> Result<(), JobFailure> {
        let trigger = if event_id.is_some() {
            Trigger::Event
        } else {
            Trigger::Manual
        };
        self.handler
            .sync(
                &SyncArgs {
                    integration_id: id.into(),
                    data_type: data_type.into(),
                    trigger,
                    event_id: event_id.map(str::to_owned),
                },
                None,
            )
            .await
    }

    /// The newest run of integration `id`.
    pub async fn last_run(&self, id: &str) -> RunRow {
        let runs = self.store.runs(WORKSPACE, None, 200).await.expect("runs");
        runs.into_iter()
            .find(|r| r.integration_id == id)
            .expect("a run")
    }
}

/// A filled ASAP Gateway manifest (the template's stream, made-up values a test server
/// could speak): what an admin gives to enable `asap`.
pub const ASAP_FILLED: &str = r#"version = 1
provider = "asap"
base_url = "https://asap.invalid/api"

[auth]
kind = "api_key"
placement = "header"
name = "X-Api-Key"
value = "{{secret.api_key}}"

[check]
path = "/me"

[[streams]]
data_type = "safety_reports"
direction = "out"
object_type = "safety_report"
conflict = "safety"
events = ["safety_report.submitted", "safety_report.updated", "safety_report.closed"]
internal_id = "safety_report_id"
primary_key = "id"

[streams.request]
method = "POST"
path = "/reports"
"#;
