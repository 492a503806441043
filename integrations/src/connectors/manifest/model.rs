//! The manifest's shape (`version = 1`), as typed values: what [`super::load`] deserializes
//! a manifest without placeholders into. Unknown fields are refused (a misspelt key is an
//! error naming it, never a silent default). Every secret is a reference by name,
//! `{{secret.NAME}}`, resolved from the integration's credential when a call is made; a
//! value is never a secret itself.

use std::collections::BTreeMap;

use serde::Deserialize;

/// The only manifest version this build reads.
pub const VERSION: i64 = 1;

/// A complete manifest: one provider's HTTP shapes.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The manifest format's version ([`VERSION`]).
    pub version: i64,
    /// The provider id it is for (`camp`, `satcom_direct`).
    pub provider: String,
    /// The system's name, for people.
    #[serde(default)]
    pub name: Option<String>,
    /// The address paths are relative to (`settings.base_url` replaces it).
    pub base_url: String,
    /// How calls authenticate.
    pub auth: Auth,
    /// The provider account's request budget.
    #[serde(default)]
    pub rate_budget: RateBudget,
    /// The request that verifies the credentials.
    pub check: Check,
    /// Response rules, first match wins; the retry table is the default after them.
    #[serde(default)]
    pub rules: Vec<Rule>,
    /// One stream per data type.
    pub streams: Vec<Stream>,
}

/// How calls authenticate.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Auth {
    /// An API key in a header or the query (`value`: a `{{secret.NAME}}` reference).
    ApiKey {
        /// `header` or `query`.
        placement: Placement,
        /// The header or query parameter's name.
        name: String,
        /// The value, e.g. `{{secret.api_key}}`.
        value: String,
    },
    /// HTTP Basic.
    Basic {
        /// The user name (a literal or a reference).
        username: String,
        /// The password (a reference).
        password: String,
    },
    /// A static bearer token (a reference).
    Bearer {
        /// The token, e.g. `{{secret.token}}`.
        token: String,
    },
    /// OAuth 2.0 client credentials: a token posted for at `token_url` (form, Basic client
    /// authentication), kept until it expires.
    OauthClientCredentials {
        /// The token endpoint (absolute, or a path below the base URL).
        token_url: String,
        /// The client id (a literal or a reference).
        client_id: String,
        /// The client secret (a reference).
        client_secret: String,
        /// Scopes asked for.
        #[serde(default)]
        scopes: Vec<String>,
    },
    /// A session login: credentials posted to `login_path`, a token and its expiry read
    /// from the answer by path.
    Session(Session),
}

/// Where an API key goes.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Placement {
    /// A request header.
    Header,
    /// A query parameter.
    Query,
}

/// A session login.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Session {
    /// The login path (below the base URL).
    pub login_path: String,
    /// How the fields are posted: `json` (default) or `form`.
    #[serde(default)]
    pub body: BodyFormat,
    /// The posted fields: name → value (a literal or a `{{secret.NAME}}` reference).
    pub fields: BTreeMap<String, String>,
    /// Where the token is in the answer (`data.token`).
    pub token_path: String,
    /// Where its lifetime in seconds is, if the answer says.
    #[serde(default)]
    pub expires_in_path: Option<String>,
    /// Where its expiry time (RFC 3339) is, if the answer says.
    #[serde(default)]
    pub expires_at_path: Option<String>,
    /// The lifetime assumed when the answer does not say (default 3600 s).
    #[serde(default = "default_ttl")]
    pub ttl_secs: u64,
    /// The header the token goes in (default `Authorization`).
    #[serde(default = "default_token_header")]
    pub header: String,
    /// What precedes the token in it (default `Bearer `).
    #[serde(default = "default_token_prefix")]
    pub prefix: String,
}

fn default_ttl() -> u64 {
    3600
}

fn default_token_header() -> String {
    "Authorization".to_owned()
}

fn default_token_prefix() -> String {
    "Bearer ".to_owned()
}

/// How a body is encoded.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum BodyFormat {
    /// `application/json`.
    #[default]
    Json,
    /// `application/x-www-form-urlencoded`.
    Form,
}

/// The provider account's request budget (what the engine's shared budget enforces).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RateBudget {
    /// Requests per window.
    pub requests: i64,
    /// The window, in seconds.
    pub per_secs: u64,
    /// Calls in flight at once.
    #[serde(default = "one")]
    pub concurrent: i64,
}

fn one() -> i64 {
    1
}

impl Default for RateBudget {
    /// One request a second, one at a time: gentle, for a provider that publishes nothing.
    fn default() -> Self {
        RateBudget {
            requests: 60,
            per_secs: 60,
            concurrent: 1,
        }
    }
}

/// The request that verifies the credentials (a cheap authenticated read).
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Check {
    /// `GET` by default.
    #[serde(default = "get")]
    pub method: String,
    /// The path below the base URL.
    pub path: String,
}

fn get() -> String {
    "GET".to_owned()
}

/// A response rule: when every given condition holds, the action.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Status codes (`429`) or classes (`"5xx"`); any when absent.
    #[serde(default)]
    pub status: Vec<StatusMatch>,
    /// A header that must be present (compared with `header_equals` when given).
    #[serde(default)]
    pub header: Option<String>,
    /// The header's value, compared without case.
    #[serde(default)]
    pub header_equals: Option<String>,
    /// A path in the decoded body that must be present (and non-null, non-false, non-empty).
    #[serde(default)]
    pub path: Option<String>,
    /// The value at `path`, compared as text.
    #[serde(default)]
    pub equals: Option<String>,
    /// What to do.
    pub action: Action,
    /// The failure class (the action's default when absent).
    #[serde(default)]
    pub class: Option<FailureClass>,
    /// The header holding the wait (`rate_limited`; default `Retry-After`).
    #[serde(default)]
    pub wait_header: Option<String>,
    /// Where the provider's message is in the body.
    #[serde(default)]
    pub message_path: Option<String>,
}

/// A status code, or a class of them (`"4xx"`).
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(untagged)]
pub enum StatusMatch {
    /// One code.
    Code(u16),
    /// `"2xx"` … `"5xx"`.
    Class(String),
}

impl StatusMatch {
    /// Whether `status` matches.
    pub fn matches(&self, status: u16) -> bool {
        match self {
            StatusMatch::Code(code) => *code == status,
            StatusMatch::Class(class) => class
                .strip_suffix("xx")
                .and_then(|d| d.parse::<u16>().ok())
                .is_some_and(|d| status / 100 == d),
        }
    }
}

/// What a response means.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// The answer is good: decode it.
    Success,
    /// A transient failure: the job retries with backoff (class `server` by default).
    Retry,
    /// Throttled: wait what the wait header says (class `rate_limit`).
    RateLimited,
    /// The session or token is stale: get a new one and retry once (then `auth`).
    Refresh,
    /// An error inside a success status (class `client` by default).
    SoftError,
    /// A failure retrying cannot fix (class `client` by default).
    Fatal,
}

/// The engine's failure classes, as a rule names them.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum FailureClass {
    Timeout,
    Auth,
    RateLimit,
    Server,
    Client,
    Internal,
}

/// Which way a stream moves.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Way {
    /// From the provider.
    In,
    /// To the provider.
    Out,
}

/// The conflict rule class of a stream's records.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Conflict {
    /// Last write wins.
    Ordinary,
    /// Held for review.
    Financial,
    /// Append-only.
    Safety,
}

/// One data type of the provider, one direction.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Stream {
    /// The integration's data type (`due_items`).
    pub data_type: String,
    /// `in` or `out`.
    pub direction: Way,
    /// The object type its records are mapped under (`due_item`).
    pub object_type: String,
    /// The conflict class of its records.
    pub conflict: Conflict,
    /// In: the path of the provider's id in a record. Out: the path of the provider's id in
    /// the answer to a create.
    pub primary_key: String,
    /// In: the path of a record's modification time (the cursor's field when absent).
    #[serde(default)]
    pub modified_path: Option<String>,
    /// The read (in) or create (out) request.
    pub request: Request,
    /// Out: the update of a record pushed before (`{{external_id}}` in its path).
    #[serde(default)]
    pub update: Option<Request>,
    /// In: the cursor.
    #[serde(default)]
    pub cursor: Option<CursorSpec>,
    /// In: the pagination.
    #[serde(default)]
    pub pagination: Pagination,
    /// How answers are decoded and where the records are.
    #[serde(default)]
    pub decode: Decode,
    /// In: which records are kept.
    #[serde(default)]
    pub select: Option<Select>,
    /// Output field (dotted) → source path. In: the platform's record from the provider's;
    /// out: the provider's body from the event's data. Empty: the record as it is.
    #[serde(default)]
    pub map: BTreeMap<String, String>,
    /// Out: the catalog event types that make a record.
    #[serde(default)]
    pub events: Vec<String>,
    /// Out: the path of the platform's id in the event's data.
    #[serde(default)]
    pub internal_id: Option<String>,
}

/// A request below the base URL. Its path and values may hold `{{external_id}}`,
/// `{{record.PATH}}` (out) and `{{setting.NAME}}`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// `GET` by default.
    #[serde(default = "get")]
    pub method: String,
    /// The path.
    pub path: String,
    /// Fixed query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// Fixed headers (never a secret: a reference at most).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// How a body is encoded (out).
    #[serde(default)]
    pub body: BodyFormat,
}

/// A stream's cursor.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CursorSpec {
    /// `date_time` or `incrementing`.
    pub kind: CursorKind,
    /// The query parameter the value is sent in.
    pub param: String,
    /// Where a record's value is (its modification time, or its sequence number).
    pub field: String,
    /// How a time is written (date-time cursors; default `rfc3339`).
    #[serde(default)]
    pub format: TimeFormat,
    /// The provider's resolution in seconds: a time sent is floored to it (default 1).
    #[serde(default = "one_u64")]
    pub granularity_secs: u64,
    /// How far before the cursor a read starts: seconds (date-time) or values
    /// (incrementing). Default 0.
    #[serde(default)]
    pub lookback: u64,
    /// How many days back the provider keeps changes (date-time; none: no limit). An older
    /// cursor starts a full reconciliation.
    #[serde(default)]
    pub retention_days: Option<u32>,
}

fn one_u64() -> u64 {
    1
}

/// The cursor's kind.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum CursorKind {
    /// A modification time.
    DateTime,
    /// A number that grows with every change (a sequence, a change id).
    Incrementing,
}

/// How a date-time cursor is written.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum TimeFormat {
    /// `2026-11-22T10:00:00Z`.
    #[default]
    Rfc3339,
    /// Seconds since the epoch.
    Unix,
    /// Milliseconds since the epoch.
    UnixMs,
    /// `2026-11-22` (a day's granularity).
    Date,
}

/// How a stream's pages follow each other.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Pagination {
    /// One answer holds everything.
    #[default]
    None,
    /// `?page=1,2,…`; a short page is the last.
    PageNumber {
        /// The page parameter.
        param: String,
        /// The first page's number (default 1).
        #[serde(default = "one_u64")]
        start: u64,
        /// The page size parameter, if any.
        #[serde(default)]
        size_param: Option<String>,
        /// Records a full page holds.
        size: u64,
    },
    /// `?offset=0,100,…`; a short page is the last.
    Offset {
        /// The offset parameter.
        param: String,
        /// The page size parameter, if any.
        #[serde(default)]
        size_param: Option<String>,
        /// Records a full page holds.
        size: u64,
    },
    /// A token in the answer names the next page; none is the last.
    CursorToken {
        /// The parameter the token is sent in.
        param: String,
        /// Where the token is in the answer.
        token_path: String,
        /// The page size parameter, if any.
        #[serde(default)]
        size_param: Option<String>,
        /// The page size sent.
        #[serde(default)]
        size: Option<u64>,
    },
    /// RFC 8288 `Link: <…>; rel="next"`; none is the last.
    LinkHeader {
        /// The page size parameter, if any.
        #[serde(default)]
        size_param: Option<String>,
        /// The page size sent.
        #[serde(default)]
        size: Option<u64>,
    },
}

/// How answers are decoded.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Decode {
    /// `json` (default), `xml` or `csv`.
    #[serde(default)]
    pub format: Format,
    /// Where the records are in the decoded answer (the whole answer when absent).
    #[serde(default)]
    pub records_path: Option<String>,
}

/// A decoder.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Json,
    Xml,
    Csv,
}

/// Which records are kept: the value at `path`, as text, is one of `any_of`.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Select {
    /// The path in a record.
    pub path: String,
    /// The values kept.
    pub any_of: Vec<String>,
}
