//! The dashboard against the real `hangar serve`: sign-in and the session cookie, CSRF and
//! cross-site refusals, roles and workspaces enforced server-side, escaping of what jobs and
//! remote servers put into pages, and one run in a real headless Chromium (sign in, see a
//! failed job, retry it, watch it complete through the live refresh), with screenshots in
//! `target/dashboard-screenshots/`.

use std::path::PathBuf;
use std::time::Duration;

use hangar_workers::job::{JobId, JobState, NewJob};
use reqwest::StatusCode;
use reqwest::header::{HeaderMap, LOCATION, SET_COOKIE};
use serde_json::json;

use crate::cdp::Browser;
use crate::support::{
    Backend, Proc, Receiver, TestDb, dashboard_session, enqueue_http, fast_pools, serve_http,
    stdout_ok, wait_final,
};

/// Form fields or headers of a request.
type Pairs<'a> = &'a [(&'a str, &'a str)];

/// A running `hangar serve` and an HTTP client that follows no redirects.
pub(crate) struct Dash {
    pub(crate) db: TestDb,
    pub(crate) base: String,
    pub(crate) http: reqwest::Client,
    _serve: Proc,
}

impl Dash {
    async fn start(pools: bool) -> Dash {
        Dash::start_on(Backend::Sqlite, pools).await
    }

    /// `hangar serve` on a fresh database of `backend`, with the tests' fast pools if `pools`.
    pub(crate) async fn start_on(backend: Backend, pools: bool) -> Dash {
        let db = TestDb::new(backend).await;
        if pools {
            db.pools(&fast_pools("", ""));
        }
        let (serve, base) = serve_http(&db).await;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        Dash {
            db,
            base,
            http,
            _serve: serve,
        }
    }

    pub(crate) fn token(&self, args: &[&str]) -> String {
        let mut all = vec!["tokens", "create"];
        all.extend_from_slice(args);
        stdout_ok(&self.db.run(&all)).trim().to_owned()
    }

    /// Signs in with `token`; returns the session cookie's value.
    pub(crate) async fn sign_in(&self, token: &str) -> String {
        dashboard_session(&self.base, token).await
    }

    /// A new token of `args` (`--role …`), signed in: the session cookie's value.
    pub(crate) async fn session(&self, args: &[&str]) -> String {
        let token = self.token(args);
        self.sign_in(&token).await
    }

    pub(crate) async fn get(
        &self,
        path: &str,
        session: Option<&str>,
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(session) = session {
            request = request.header("cookie", format!("hangar_session={session}"));
        }
        let response = request.send().await.expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.expect("body"))
    }

    pub(crate) async fn post(
        &self,
        path: &str,
        session: Option<&str>,
        form: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> (StatusCode, HeaderMap, String) {
        let mut request = self.http.post(format!("{}{path}", self.base)).form(form);
        if let Some(session) = session {
            request = request.header("cookie", format!("hangar_session={session}"));
        }
        for (name, value) in extra {
            request = request.header(*name, *value);
        }
        let response = request.send().await.expect("response");
        let (status, headers) = (response.status(), response.headers().clone());
        (status, headers, response.text().await.expect("body"))
    }

    /// The CSRF token the pages of this session carry.
    pub(crate) async fn csrf(&self, session: &str) -> String {
        let (status, _, page) = self.get("/", Some(session)).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        let start = page
            .find("name=\"csrf\" value=\"")
            .expect("a form with a CSRF token")
            + 19;
        page[start..start + 64].to_owned()
    }
}

/// A noop job of `workspace`, scheduled a day ahead so that nothing runs it meanwhile.
pub(crate) async fn parked_job(dash: &Dash, workspace: &str) -> JobId {
    let mut job = NewJob::new("noop", json!({}));
    job.workspace_id = Some(workspace.to_owned());
    job.run_at = Some(chrono::Utc::now() + chrono::Duration::days(1));
    dash.db
        .store()
        .await
        .enqueue(&job)
        .await
        .expect("enqueue")
        .id
}

pub(crate) async fn state_of(dash: &Dash, id: JobId) -> JobState {
    dash.db.store().await.job(id).await.expect("job").state
}

pub(crate) fn location(headers: &HeaderMap) -> &str {
    headers
        .get(LOCATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
}

#[tokio::test]
async fn sign_in_sets_an_http_only_strict_cookie_and_pages_need_it() {
    let dash = Dash::start(false).await;
    for path in [
        "/",
        "/jobs",
        "/jobs/1",
        "/alerts",
        "/dead-letters",
        "/schedules",
    ] {
        let (status, headers, _) = dash.get(path, None).await;
        assert_eq!(status, StatusCode::SEE_OTHER, "{path} without a cookie");
        assert_eq!(location(&headers), "/login", "{path}");
    }
    let (status, _, page) = dash.get("/login", None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(page.contains("name=\"token\""), "{page}");

    let bogus = format!("hgr_{}", "0".repeat(64));
    for bad in [bogus.as_str(), "not a token", ""] {
        let (status, headers, page) = dash.post("/login", None, &[("token", bad)], &[]).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "token {bad:?}");
        assert!(
            headers.get(SET_COOKIE).is_none(),
            "no cookie for a bad token"
        );
        assert!(page.contains("note error"), "{page}");
    }
    let (status, _, _) = dash.get("/", Some(&bogus)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a forged cookie is not a session"
    );

    let token = dash.token(&["--role", "viewer"]);
    let (status, headers, _) = dash.post("/login", None, &[("token", &token)], &[]).await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), "/");
    let cookie = headers[SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("hangar_session="), "{cookie}");
    assert!(
        !cookie.contains(&token) && !cookie.contains(&token["hgr_".len()..]),
        "the cookie holds a session id, not the token: {cookie}"
    );
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(attribute), "{attribute} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let session = cookie["hangar_session=".len()..]
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    let (_, headers, _) = dash
        .post(
            "/login",
            None,
            &[("token", &token)],
            &[("x-forwarded-proto", "https")],
        )
        .await;
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("; Secure"));
    let (status, _, _) = dash.get("/", Some(&token)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "the token itself is not a session cookie"
    );

    let (status, headers, page) = dash.get("/", Some(&session)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        page.contains("<h1>Overview</h1>") && page.contains("viewer"),
        "{page}"
    );
    assert!(!page.contains(&token), "a page never shows the token");
    let csp = headers["content-security-policy"].to_str().unwrap();
    assert!(
        csp.contains("default-src 'none'") && !csp.contains("unsafe-inline"),
        "{csp}"
    );
    let (status, _, full) = dash.get("/jobs", Some(&session)).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        full.contains("<main data-live>"),
        "the live refresh swaps <main>"
    );
    let partial = dash
        .http
        .get(format!("{}/jobs", dash.base))
        .header("cookie", format!("hangar_session={session}"))
        .header("x-hangar-partial", "1")
        .send()
        .await
        .expect("partial")
        .text()
        .await
        .expect("body");
    assert!(
        partial.contains("<h1>Jobs</h1>") && !partial.contains("<main"),
        "{partial}"
    );

    let csrf = dash.csrf(&session).await;
    let (status, _, _) = dash
        .post("/logout", Some(&session), &[("csrf", "x")], &[])
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "sign-out needs the CSRF token too"
    );
    let (status, headers, _) = dash
        .post("/logout", Some(&session), &[("csrf", &csrf)], &[])
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));

    let second = dash.sign_in(&token).await;
    assert_eq!(dash.get("/", Some(&second)).await.0, StatusCode::OK);
    stdout_ok(&dash.db.run(&["tokens", "revoke", "1"]));
    let (status, headers, _) = dash.get("/", Some(&second)).await;
    assert_eq!(
        status,
        StatusCode::SEE_OTHER,
        "a revoked token ends the session"
    );
    assert!(headers[SET_COOKIE].to_str().unwrap().contains("Max-Age=0"));
}

#[tokio::test]
async fn forms_need_the_session_csrf_token_the_operator_role_and_the_workspace() {
    let dash = Dash::start(false).await;
    let operator = dash.session(&["--role", "operator"]).await;
    let viewer = dash.session(&["--role", "viewer"]).await;
    let other = dash
        .session(&["--role", "operator", "--workspace", "ws_2"])
        .await;
    let job = parked_job(&dash, "ws_1").await;
    let retry = format!("/jobs/{job}/retry");
    let csrf = dash.csrf(&operator).await;

    // Refused, and nothing changes: no token, a wrong one, another session's, cross-site.
    let viewer_csrf = dash.csrf(&viewer).await;
    let cases: [(&str, Pairs, Pairs); 6] = [
        ("no CSRF token", &[], &[]),
        ("a wrong CSRF token", &[("csrf", "0123")], &[]),
        ("another session's token", &[("csrf", &viewer_csrf)], &[]),
        (
            "Sec-Fetch-Site: cross-site",
            &[("csrf", &csrf)],
            &[("sec-fetch-site", "cross-site")],
        ),
        (
            "a foreign Origin",
            &[("csrf", &csrf)],
            &[("origin", "http://evil.example")],
        ),
        ("Origin: null", &[("csrf", &csrf)], &[("origin", "null")]),
    ];
    for (what, form, headers) in cases {
        let (status, _, page) = dash.post(&retry, Some(&operator), form, headers).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{what}: {page}");
        assert_eq!(
            state_of(&dash, job).await,
            JobState::Scheduled,
            "{what} changed the job"
        );
    }

    // A viewer sees no buttons, and a forged form with its own valid CSRF token is refused.
    let (_, _, page) = dash.get(&format!("/jobs/{job}"), Some(&viewer)).await;
    assert!(
        !page.contains("/retry\"") && !page.contains("/cancel\""),
        "{page}"
    );
    for action in ["retry", "cancel"] {
        let path = format!("/jobs/{job}/{action}");
        let (status, _, page) = dash
            .post(&path, Some(&viewer), &[("csrf", &viewer_csrf)], &[])
            .await;
        assert_eq!(status, StatusCode::FORBIDDEN, "viewer {action}: {page}");
        assert!(page.contains("operator"), "{page}");
    }
    assert_eq!(state_of(&dash, job).await, JobState::Scheduled);

    // Another workspace's operator: the job does not exist for it, in pages and in forms.
    let other_csrf = dash.csrf(&other).await;
    let (status, _, _) = dash.get(&format!("/jobs/{job}"), Some(&other)).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let own = parked_job(&dash, "ws_2").await;
    let (_, _, list) = dash.get("/jobs?workspace=ws_1", Some(&other)).await;
    assert!(
        list.contains(&format!("/jobs/{own}\"")),
        "its own job is listed"
    );
    assert!(
        !list.contains(&format!("/jobs/{job}\"")),
        "ws_1's job is not: {list}"
    );
    let (status, _, _) = dash
        .post(&retry, Some(&other), &[("csrf", &other_csrf)], &[])
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(state_of(&dash, job).await, JobState::Scheduled);
    let (_, _, overview) = dash.get("/", Some(&other)).await;
    assert!(
        !overview.contains("<h2>Queues</h2>"),
        "queue totals span workspaces"
    );

    // The operator with the right token, same origin: the job runs again.
    let (_, _, page) = dash.get(&format!("/jobs/{job}"), Some(&operator)).await;
    assert!(page.contains(&format!("action=\"{retry}\"")), "{page}");
    let (status, headers, _) = dash
        .post(
            &retry,
            Some(&operator),
            &[("csrf", &csrf)],
            &[("origin", &dash.base), ("sec-fetch-site", "same-origin")],
        )
        .await;
    assert_eq!(status, StatusCode::SEE_OTHER);
    assert_eq!(location(&headers), format!("/jobs/{job}?done=retried"));
    assert_ne!(state_of(&dash, job).await, JobState::Scheduled);
}

#[tokio::test]
async fn script_in_job_args_and_error_text_is_shown_as_text() {
    let dash = Dash::start(true).await;
    let store = dash.db.store().await;
    let token = dash.session(&["--role", "owner"]).await;
    let payload = "<script>alert(1)</script>";
    // An unparsable URL: the handler's error quotes it, so the error text carries it too.
    let id = enqueue_http(&store, payload, json!({"body": payload})).await;
    let job = wait_final(&store, id, Duration::from_secs(30)).await;
    assert!(
        job.last_error.as_deref().unwrap_or("").contains(payload),
        "{job:?}"
    );

    for path in [
        format!("/jobs/{id}"),
        "/jobs".to_owned(),
        "/alerts?all=1".to_owned(),
    ] {
        let (status, _, page) = dash.get(&path, Some(&token)).await;
        assert_eq!(status, StatusCode::OK, "{path}");
        assert!(
            !page.contains(payload),
            "{path} renders the payload as markup"
        );
        assert_eq!(
            page.matches("<script>").count(),
            1,
            "{path}: only the live script"
        );
    }
    let (_, _, page) = dash.get(&format!("/jobs/{id}"), Some(&token)).await;
    assert!(
        page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
        "{page}"
    );
    let (_, _, page) = dash
        .get(&format!("/jobs?kind={}", "%3Cscript%3E"), Some(&token))
        .await;
    assert!(
        page.contains("value=\"&lt;script&gt;\""),
        "the filter echoes escaped"
    );
}

pub(crate) fn screenshots() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/dashboard-screenshots")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_a_browser_an_operator_signs_in_retries_a_failed_job_and_sees_it_complete() {
    let dash = Dash::start(true).await;
    let store = dash.db.store().await;
    let receiver = Receiver::start().await;
    let token = dash.token(&["--role", "operator"]);
    // 400 the first time (a client error: failed, not retried), 200 after.
    let id = enqueue_http(&store, &receiver.url("/flaky/dash/1/400"), json!({})).await;
    assert_eq!(
        wait_final(&store, id, Duration::from_secs(30)).await.state,
        JobState::Failed
    );
    let shots = screenshots();

    let mut browser = Browser::start().await;
    browser.viewport(1280, 800, false).await;
    browser.goto(&format!("{}/", dash.base)).await;
    browser
        .wait_until(
            "the sign-in page",
            "location.pathname === '/login'",
            Duration::from_secs(10),
        )
        .await;
    browser.screenshot(&shots.join("login-1280.png")).await;
    browser
        .eval(&format!(
            "document.getElementById('token').value = {}; document.querySelector('form').submit(); true",
            json!(token)
        ))
        .await;
    browser
        .wait_until("the overview", "document.querySelector('h1') && document.querySelector('h1').textContent === 'Overview'", Duration::from_secs(10))
        .await;
    let text = browser.eval("document.body.innerText").await;
    assert!(text.as_str().unwrap().contains("Open alerts"), "{text}");
    browser.screenshot(&shots.join("overview-1280.png")).await;

    browser
        .goto(&format!("{}/jobs?state=failed", dash.base))
        .await;
    let row = browser
        .eval(&format!(
            "document.querySelector('a[href=\"/jobs/{id}\"]') !== null"
        ))
        .await;
    assert_eq!(row, true, "the failed job is listed");
    browser.screenshot(&shots.join("jobs-1280.png")).await;

    browser.goto(&format!("{}/jobs/{id}", dash.base)).await;
    let text = browser
        .eval("document.querySelector('main').innerText")
        .await;
    let text = text.as_str().unwrap();
    assert!(
        text.contains("failed") && text.contains("HTTP 400") && text.contains("client"),
        "{text}"
    );
    browser.screenshot(&shots.join("job-failed-1280.png")).await;
    browser.viewport(390, 844, true).await;
    browser.screenshot(&shots.join("job-failed-390.png")).await;
    browser.viewport(1280, 800, false).await;

    browser
        .eval("document.getElementById('retry').click(); true")
        .await;
    browser
        .wait_until(
            "the retried note",
            "location.search === '?done=retried'",
            Duration::from_secs(10),
        )
        .await;
    // No reload from here: the live refresh swaps the state in.
    browser
        .wait_until(
            "the job to show completed",
            "document.querySelector('h1 .badge') && document.querySelector('h1 .badge').textContent === 'completed'",
            Duration::from_secs(30),
        )
        .await;
    assert_eq!(store.job(id).await.expect("job").state, JobState::Completed);
    browser
        .screenshot(&shots.join("job-completed-1280.png"))
        .await;

    browser.goto(&format!("{}/", dash.base)).await;
    browser
        .screenshot(&shots.join("overview-after-1280.png"))
        .await;
    browser.viewport(390, 844, true).await;
    browser.goto(&format!("{}/", dash.base)).await;
    browser.screenshot(&shots.join("overview-390.png")).await;
    browser.goto(&format!("{}/jobs", dash.base)).await;
    browser.screenshot(&shots.join("jobs-390.png")).await;
    browser.goto(&format!("{}/alerts?all=1", dash.base)).await;
    browser.screenshot(&shots.join("alerts-390.png")).await;
    let overflow = browser
        .eval("document.documentElement.scrollWidth <= window.innerWidth + 1")
        .await;
    assert_eq!(
        overflow, true,
        "at phone width only tables scroll, not the page"
    );
}

async fn throughput_counts_finished_jobs_per_queue(backend: Backend) {
    let db = TestDb::new(backend).await;
    let store = db.store().await;
    let receiver = Receiver::start().await;
    db.pools(&fast_pools("", ""));
    let _worker = db.spawn("worker", &["worker", "--bind", "127.0.0.1:0"]);
    let before = chrono::Utc::now() - chrono::Duration::seconds(1);
    let ok = enqueue_http(&store, &receiver.url("/ok"), json!({})).await;
    let bad = enqueue_http(&store, &receiver.url("/status/400"), json!({})).await;
    assert_eq!(
        wait_final(&store, ok, Duration::from_secs(30)).await.state,
        JobState::Completed
    );
    assert_eq!(
        wait_final(&store, bad, Duration::from_secs(30)).await.state,
        JobState::Failed
    );
    let rates = store.queue_throughput(before).await.expect("throughput");
    assert_eq!(rates.len(), 1, "{rates:?}");
    assert_eq!(
        (rates[0].queue.as_str(), rates[0].completed, rates[0].failed),
        ("default", 1, 1)
    );
    let later = chrono::Utc::now() + chrono::Duration::seconds(5);
    assert!(
        store
            .queue_throughput(later)
            .await
            .expect("throughput")
            .is_empty()
    );
}

#[tokio::test]
async fn throughput_counts_finished_jobs_per_queue_on_postgres() {
    throughput_counts_finished_jobs_per_queue(Backend::Postgres).await;
}

#[tokio::test]
async fn throughput_counts_finished_jobs_per_queue_on_sqlite() {
    throughput_counts_finished_jobs_per_queue(Backend::Sqlite).await;
}
