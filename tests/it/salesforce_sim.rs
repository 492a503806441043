//! A Salesforce simulator on loopback, for the Salesforce connector's tests. Our own
//! implementation of the shapes of Salesforce's REST API documentation (nothing copied):
//!
//! - `GET /services/data/{v}/sobjects/{Obj}/updated/?start=&end=` — the ids of records changed
//!   in the window (whole minutes), `{"ids": […], "latestDateCovered"}`; a start more than 30
//!   days ago is 400 `INVALID_REPLICATION_DATE`;
//! - `GET /services/data/{v}/composite/sobjects/{Obj}?ids=&fields=` — the records, in the
//!   order asked, `null` for an id that does not exist;
//! - `GET /services/data/{v}/query?q=SELECT … FROM {Obj} ORDER BY Id` and
//!   `GET /services/data/{v}/query/{locator}` — `{"totalSize", "done", "records",
//!   "nextRecordsUrl"?}` in pages of [`Switches::query_page`];
//! - `GET /services/data/{v}/sobjects/{Obj}/deleted/?start=&end=` — `{"deletedRecords":
//!   [{"id", "deletedDate"}], "earliestDateAvailable", "latestDateCovered"}` (the recycle
//!   bin keeps 15 days);
//! - `PATCH /services/data/{v}/sobjects/{Obj}/{ExtIdField}/{value}` — upsert by external id:
//!   201 `{"id", "success": true, "errors": [], "created": true}`, or 200 with
//!   `"created": false`;
//! - `PATCH /services/data/{v}/composite/sobjects/{Obj}/{ExtIdField}` — the collection upsert
//!   (`{"allOrNone", "records"}`, at most 200, else 400 `EXCEEDED_ID_LIMIT`): 200 with one
//!   result per record, a record without a `Name`-like `Status__c` refused with
//!   `REQUIRED_FIELD_MISSING` in its result;
//! - `POST /services/oauth2/token` — `grant_type=refresh_token` with the client's credentials
//!   (in the form, or Basic); answers `{"access_token", "instance_url", "token_type", …}`, a new
//!   refresh token only when rotation is on; `invalid_grant` for an unknown one.
//!
//! Every data answer carries `Sforce-Limit-Info: api-usage=N/M` (the org's daily budget, N
//! counting every data call); at N = M a call gets 403 `REQUEST_LIMIT_EXCEEDED`. An unknown or
//! expired token gets 401 `INVALID_SESSION_ID`. Switches ([`Switches`]): expire every token,
//! `invalid_grant`, rotate refresh tokens, fail the next n calls (503 `SERVER_UNAVAILABLE`),
//! lose the answer of the next n upserts (made, answered 503), the query's page size.
//! [`SalesforceSim::calls`] counts the answers by route.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Form, Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, patch, post};
use chrono::{DateTime, Duration, DurationRound, Utc};
use serde_json::{Value, json};

/// The token endpoint's path.
pub const TOKEN_PATH: &str = "/services/oauth2/token";

/// What the simulator does on its next answers.
#[derive(Clone, Debug)]
pub struct Switches {
    pub expire_tokens: bool,
    pub invalid_grant: bool,
    pub rotate_refresh_tokens: bool,
    pub fail_next: u32,
    pub lose_next_answers: u32,
    pub query_page: usize,
}

impl Default for Switches {
    fn default() -> Self {
        Switches {
            expire_tokens: false,
            invalid_grant: false,
            rotate_refresh_tokens: false,
            fail_next: 0,
            lose_next_answers: 0,
            query_page: 2000,
        }
    }
}

#[derive(Default)]
struct Org {
    switches: Switches,
    /// Accounts by id.
    accounts: BTreeMap<String, Value>,
    /// Deleted accounts: id, when.
    deleted: Vec<(String, DateTime<Utc>)>,
    /// Upserted records by object, then by external id value.
    upserted: HashMap<String, BTreeMap<String, Value>>,
    next: u64,
    calls: HashMap<String, u32>,
    access_tokens: HashSet<String>,
    refresh_tokens: HashSet<String>,
    issued: u64,
    /// The daily API budget: used, max.
    used: i64,
    max: i64,
}

/// A running simulator.
#[derive(Clone)]
pub struct SalesforceSim {
    /// `http://127.0.0.1:PORT`: the org's instance URL.
    pub base: String,
    org: Arc<Mutex<Org>>,
}

/// Salesforce's date-time in a record.
pub fn sf_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn errors(status: StatusCode, code: &str, message: &str) -> Response {
    (
        status,
        axum::Json(json!([{"message": message, "errorCode": code}])),
    )
        .into_response()
}

impl SalesforceSim {
    /// Starts a simulator with one valid access token (`access-0`) and refresh token
    /// (`refresh-0`), a daily budget of 15 000 and no data.
    pub async fn start() -> SalesforceSim {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind simulator");
        let base = format!("http://{}", listener.local_addr().expect("addr"));
        let mut org = Org {
            max: 15_000,
            ..Org::default()
        };
        org.access_tokens.insert("access-0".into());
        org.refresh_tokens.insert("refresh-0".into());
        let sim = SalesforceSim {
            base,
            org: Arc::new(Mutex::new(org)),
        };
        let app = Router::new()
            .route("/services/data/{v}/sobjects/{obj}/updated/", get(updated))
            .route("/services/data/{v}/composite/sobjects/{obj}", get(records))
            .route("/services/data/{v}/query", get(query))
            .route("/services/data/{v}/query/{locator}", get(query_more))
            .route("/services/data/{v}/sobjects/{obj}/deleted/", get(deleted))
            .route(
                "/services/data/{v}/sobjects/{obj}/{field}/{value}",
                patch(upsert),
            )
            .route(
                "/services/data/{v}/composite/sobjects/{obj}/{field}",
                patch(upsert_collection),
            )
            .route(TOKEN_PATH, post(token))
            .with_state(sim.clone());
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        sim
    }

    /// The token endpoint's URL.
    pub fn token_url(&self) -> String {
        format!("{}{TOKEN_PATH}", self.base)
    }

    /// Changes the switches.
    pub fn switch(&self, f: impl FnOnce(&mut Switches)) {
        f(&mut self.org.lock().unwrap().switches);
    }

    /// Sets the org's daily API usage.
    pub fn set_usage(&self, used: i64, max: i64) {
        let mut org = self.org.lock().unwrap();
        (org.used, org.max) = (used, max);
    }

    /// How many answers `route` gave (`updated`, `records`, `query`, `upsert`, `token`,
    /// `401`, `403`, `5xx`).
    pub fn calls(&self, route: &str) -> u32 {
        self.org
            .lock()
            .unwrap()
            .calls
            .get(route)
            .copied()
            .unwrap_or(0)
    }

    /// Adds `n` accounts changed one second apart, ending `ago` before now; their ids.
    pub fn add_accounts(&self, n: usize, ago: Duration) -> Vec<String> {
        let mut org = self.org.lock().unwrap();
        let end = Utc::now() - ago;
        (0..n)
            .map(|i| {
                org.next += 1;
                let k = org.next;
                let id = format!("001SIM{k:012}");
                let at = sf_time(end - Duration::seconds((n - i) as i64));
                org.accounts.insert(
                    id.clone(),
                    json!({"attributes": {"type": "Account", "url": format!("/services/data/v62.0/sobjects/Account/{id}")},
                        "Id": id, "Name": format!("Operator {k}"), "Type": "Customer",
                        "BillingCity": "Teterboro", "BillingCountry": "US",
                        "CreatedDate": at, "LastModifiedDate": at, "SystemModstamp": at}),
                );
                id
            })
            .collect()
    }

    /// A Salesforce user edits an account now.
    pub fn edit(&self, id: &str, field: &str, value: Value) {
        let mut org = self.org.lock().unwrap();
        let account = org.accounts.get_mut(id).expect("account");
        account[field] = value;
        let now = sf_time(Utc::now());
        account["LastModifiedDate"] = json!(now);
        account["SystemModstamp"] = json!(now);
    }

    /// A Salesforce user deletes an account now (to the recycle bin).
    pub fn delete(&self, id: &str) {
        let mut org = self.org.lock().unwrap();
        org.accounts.remove(id).expect("account");
        org.deleted.push((id.to_owned(), Utc::now()));
    }

    /// The records upserted into `object`, by external id value.
    pub fn upserted(&self, object: &str) -> BTreeMap<String, Value> {
        let org = self.org.lock().unwrap();
        org.upserted.get(object).cloned().unwrap_or_default()
    }
}

/// Counts `route`'s answer and adds the usage header.
fn answer(org: &mut Org, route: &str, response: Response) -> Response {
    *org.calls.entry(route.to_owned()).or_default() += 1;
    let mut response = response;
    if let Ok(value) = format!("api-usage={}/{}", org.used, org.max).parse() {
        response.headers_mut().insert("sforce-limit-info", value);
    }
    response
}

/// Session, daily budget and faults; `Err` is the answer to give (already counted).
fn gate(org: &mut Org, headers: &HeaderMap) -> Result<(), Box<Response>> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if org.switches.expire_tokens || !org.access_tokens.contains(token) {
        let refused = errors(
            StatusCode::UNAUTHORIZED,
            "INVALID_SESSION_ID",
            "Session expired or invalid",
        );
        return Err(Box::new(answer(org, "401", refused)));
    }
    if org.used >= org.max {
        let refused = errors(
            StatusCode::FORBIDDEN,
            "REQUEST_LIMIT_EXCEEDED",
            &format!("TotalRequests Limit exceeded. ({}/{})", org.used, org.max),
        );
        return Err(Box::new(answer(org, "403", refused)));
    }
    org.used += 1;
    if org.switches.fail_next > 0 {
        org.switches.fail_next -= 1;
        let failed = errors(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server is unavailable",
        );
        return Err(Box::new(answer(org, "5xx", failed)));
    }
    Ok(())
}

fn parse_param(params: &HashMap<String, String>, name: &str) -> Option<DateTime<Utc>> {
    let text = params.get(name)?;
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn record_time(record: &Value) -> DateTime<Utc> {
    record["SystemModstamp"]
        .as_str()
        .and_then(|t| DateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f%z").ok())
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

async fn updated(
    State(sim): State<SalesforceSim>,
    UrlPath((_v, obj)): UrlPath<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let (Some(start), Some(end)) = (parse_param(&params, "start"), parse_param(&params, "end"))
    else {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "start and end are required date-times",
        );
        return answer(&mut org, "400", bad);
    };
    let minute = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap_or(t);
    if start < Utc::now() - Duration::days(30) || end <= start {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "startDate cannot be more than 30 days ago, and must be before endDate",
        );
        return answer(&mut org, "400", bad);
    }
    let (from, to) = (minute(start), minute(end) + Duration::minutes(1));
    let ids: Vec<&String> = if obj == "Account" {
        org.accounts
            .iter()
            .filter(|(_, a)| (from..to).contains(&record_time(a)))
            .map(|(id, _)| id)
            .collect()
    } else {
        Vec::new()
    };
    let body = json!({"ids": ids, "latestDateCovered": sf_time(minute(end))});
    answer(&mut org, "updated", axum::Json(body).into_response())
}

/// `record` with only `fields` (and its attributes).
fn project(record: &Value, fields: &[&str]) -> Value {
    let mut out = json!({"attributes": record["attributes"].clone()});
    for f in fields {
        out[*f] = record.get(*f).cloned().unwrap_or(Value::Null);
    }
    out
}

async fn records(
    State(sim): State<SalesforceSim>,
    UrlPath((_v, obj)): UrlPath<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let fields: Vec<&str> = params
        .get("fields")
        .map(|f| f.split(',').collect())
        .unwrap_or_default();
    if fields.is_empty() || obj != "Account" {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "INVALID_FIELD",
            "fields are required",
        );
        return answer(&mut org, "400", bad);
    }
    let items: Vec<Value> = params
        .get("ids")
        .map(|ids| ids.split(',').collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|id| {
            org.accounts
                .get(id)
                .map_or(Value::Null, |a| project(a, &fields))
        })
        .collect();
    answer(&mut org, "records", axum::Json(items).into_response())
}

fn query_page(org: &mut Org, v: &str, fields: &[String], offset: usize) -> Response {
    let size = org.switches.query_page.max(1);
    let fields: Vec<&str> = fields.iter().map(String::as_str).collect();
    let all: Vec<Value> = org.accounts.values().map(|a| project(a, &fields)).collect();
    let page: Vec<Value> = all.iter().skip(offset).take(size).cloned().collect();
    let done = offset + page.len() >= all.len();
    let mut body = json!({"totalSize": all.len(), "done": done, "records": page});
    if !done {
        body["nextRecordsUrl"] = json!(format!(
            "/services/data/{v}/query/01gSIM-{}-{}",
            offset + size,
            fields.join(".")
        ));
    }
    answer(org, "query", axum::Json(body).into_response())
}

async fn query(
    State(sim): State<SalesforceSim>,
    UrlPath(v): UrlPath<String>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let q = params.get("q").cloned().unwrap_or_default();
    let parsed = q
        .strip_prefix("SELECT ")
        .and_then(|rest| rest.split_once(" FROM Account ORDER BY Id"))
        .filter(|(_, tail)| tail.is_empty());
    let Some((fields, _)) = parsed else {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            &format!("unexpected query: {q}"),
        );
        return answer(&mut org, "400", bad);
    };
    let fields: Vec<String> = fields.split(", ").map(str::to_owned).collect();
    query_page(&mut org, &v, &fields, 0)
}

async fn query_more(
    State(sim): State<SalesforceSim>,
    UrlPath((v, locator)): UrlPath<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let mut parts = locator.splitn(3, '-');
    let (Some("01gSIM"), Some(offset), Some(fields)) = (parts.next(), parts.next(), parts.next())
    else {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "INVALID_QUERY_LOCATOR",
            "invalid query locator",
        );
        return answer(&mut org, "400", bad);
    };
    let offset = offset.parse().unwrap_or(usize::MAX);
    let fields: Vec<String> = fields.split('.').map(str::to_owned).collect();
    query_page(&mut org, &v, &fields, offset)
}

async fn upsert(
    State(sim): State<SalesforceSim>,
    UrlPath((_v, obj, field, value)): UrlPath<(String, String, String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let Some(fields) = body.as_object() else {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "JSON_PARSER_ERROR",
            "the body must be an object",
        );
        return answer(&mut org, "400", bad);
    };
    org.next += 1;
    let fresh_id = format!("a00SIM{:012}", org.next);
    let now = sf_time(Utc::now());
    let records = org.upserted.entry(obj.clone()).or_default();
    let created = !records.contains_key(&value);
    let record = records.entry(value.clone()).or_insert_with(|| {
        json!({"attributes": {"type": obj}, "Id": fresh_id, field.as_str(): value, "CreatedDate": now})
    });
    for (k, v) in fields {
        record[k] = v.clone();
    }
    record["LastModifiedDate"] = json!(now);
    record["SystemModstamp"] = json!(now);
    let id = record["Id"].clone();
    if org.switches.lose_next_answers > 0 {
        org.switches.lose_next_answers -= 1;
        let lost = errors(
            StatusCode::SERVICE_UNAVAILABLE,
            "SERVER_UNAVAILABLE",
            "Server is unavailable",
        );
        return answer(&mut org, "5xx", lost);
    }
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    let body = json!({"id": id, "success": true, "errors": [], "created": created});
    answer(
        &mut org,
        "upsert",
        (status, axum::Json(body)).into_response(),
    )
}

async fn token(
    State(sim): State<SalesforceSim>,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    *org.calls.entry("token".to_owned()).or_default() += 1;
    let basic = headers.contains_key(header::AUTHORIZATION);
    if !basic && (!form.contains_key("client_id") || !form.contains_key("client_secret")) {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_client_id",
            "error_description": "client identifier invalid"})),
        )
            .into_response();
    }
    let refresh = form.get("refresh_token").cloned().unwrap_or_default();
    if form.get("grant_type").map(String::as_str) != Some("refresh_token")
        || org.switches.invalid_grant
        || !org.refresh_tokens.contains(&refresh)
    {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"error": "invalid_grant",
            "error_description": "expired access/refresh token"})),
        )
            .into_response();
    }
    org.issued += 1;
    let access = format!("access-{}", org.issued);
    if org.switches.expire_tokens {
        org.access_tokens.clear();
        org.switches.expire_tokens = false;
    }
    org.access_tokens.insert(access.clone());
    let mut body = json!({"access_token": access, "instance_url": sim.base,
        "id": format!("{}/id/00DSIM/005SIM", sim.base), "token_type": "Bearer",
        "issued_at": Utc::now().timestamp_millis().to_string(), "signature": "c2ln",
        "scope": "api refresh_token"});
    if org.switches.rotate_refresh_tokens {
        org.refresh_tokens.remove(&refresh);
        let next = format!("refresh-{}", org.issued);
        org.refresh_tokens.insert(next.clone());
        body["refresh_token"] = json!(next);
    }
    axum::Json(body).into_response()
}

async fn deleted(
    State(sim): State<SalesforceSim>,
    UrlPath((_v, _obj)): UrlPath<(String, String)>,
    Query(params): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let (Some(start), Some(end)) = (parse_param(&params, "start"), parse_param(&params, "end"))
    else {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "MALFORMED_QUERY",
            "start and end are required",
        );
        return answer(&mut org, "400", bad);
    };
    if start < Utc::now() - Duration::days(30) || end <= start {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "INVALID_REPLICATION_DATE",
            "bad window",
        );
        return answer(&mut org, "400", bad);
    }
    let minute = |t: DateTime<Utc>| t.duration_trunc(Duration::minutes(1)).unwrap_or(t);
    let (from, to) = (minute(start), minute(end) + Duration::minutes(1));
    let records: Vec<Value> = org
        .deleted
        .iter()
        .filter(|(_, at)| (from..to).contains(at))
        .map(|(id, at)| json!({"id": id, "deletedDate": sf_time(*at)}))
        .collect();
    let body = json!({"deletedRecords": records,
        "earliestDateAvailable": sf_time(minute(Utc::now() - Duration::days(15))),
        "latestDateCovered": sf_time(minute(end))});
    answer(&mut org, "deleted", axum::Json(body).into_response())
}

async fn upsert_collection(
    State(sim): State<SalesforceSim>,
    UrlPath((_v, obj, field)): UrlPath<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    let mut org = sim.org.lock().unwrap();
    if let Err(refused) = gate(&mut org, &headers) {
        return *refused;
    }
    let items = body["records"].as_array().cloned().unwrap_or_default();
    if items.is_empty() || items.len() > 200 {
        let bad = errors(
            StatusCode::BAD_REQUEST,
            "EXCEEDED_ID_LIMIT",
            "1 to 200 records",
        );
        return answer(&mut org, "400", bad);
    }
    let now = sf_time(Utc::now());
    let mut results = Vec::new();
    for item in items {
        let value = item[field.as_str()].as_str().unwrap_or("").to_owned();
        if item.get("Status__c").is_none() || value.is_empty() {
            results.push(
                json!({"success": false, "errors": [{"statusCode": "REQUIRED_FIELD_MISSING",
                "message": "Required fields are missing: [Status__c]", "fields": ["Status__c"]}]}),
            );
            continue;
        }
        org.next += 1;
        let fresh_id = format!("a00SIM{:012}", org.next);
        let records = org.upserted.entry(obj.clone()).or_default();
        let created = !records.contains_key(&value);
        let record = records.entry(value.clone()).or_insert_with(
            || json!({"attributes": {"type": obj}, "Id": fresh_id, "CreatedDate": now}),
        );
        for (k, v) in item.as_object().into_iter().flatten() {
            if k != "attributes" {
                record[k] = v.clone();
            }
        }
        record["LastModifiedDate"] = json!(now);
        results
            .push(json!({"id": record["Id"], "success": true, "errors": [], "created": created}));
    }
    answer(&mut org, "collection", axum::Json(results).into_response())
}
