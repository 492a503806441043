//! The frame around every dashboard page: the document head with the inline stylesheet, the
//! header with the navigation and who is signed in, `<main>`, and the few lines of
//! live-refresh script. Rendered with maud, which escapes every spliced value by
//! construction; only the two constants below go in unescaped.
//!
//! The stylesheet and the script are constants; the Content-Security-Policy allows exactly
//! them by their SHA-256, so an injected `<script>` would not run even if escaping failed.

use std::sync::OnceLock;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use sha2::{Digest, Sha256};

const STYLE: &str = r#"
:root{--bg:#f6f7f9;--fg:#16191d;--mut:#5d6570;--line:#d9dde3;--card:#fff;--head:#1d232b;
--red:#b42318;--redbg:#fde7e5;--blue:#1d5fd1;--bluebg:#e3ecfc;--green:#1a7f37;--greenbg:#dcf3e2;
--amber:#a15c00;--amberbg:#fdf0d5;--grey:#59606a;--greybg:#eceef1}
@media (prefers-color-scheme:dark){:root{--bg:#111417;--fg:#e6e8eb;--mut:#9aa3ad;--line:#2c323a;
--card:#181c21;--head:#0b0d10;--red:#ff8a80;--redbg:#3d1412;--blue:#8ab4ff;--bluebg:#132544;
--green:#7ee2a0;--greenbg:#0f2e1a;--amber:#ffc562;--amberbg:#3a2a08;--grey:#b5bcc4;--greybg:#262b31}}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--fg);font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif}
header{background:var(--head);color:#fff;display:flex;flex-wrap:wrap;align-items:center;gap:4px 16px;padding:8px 16px}
header .brand{font-weight:700;letter-spacing:.02em;margin-right:8px}
header nav{display:flex;flex-wrap:wrap;gap:2px 4px;flex:1}
header nav a{color:#c9d1da;text-decoration:none;padding:4px 8px;border-radius:4px}
header nav a.on,header nav a:hover{background:#ffffff1f;color:#fff}
header .who{display:flex;align-items:center;gap:8px;color:#c9d1da;font-size:13px}
header .who button{background:transparent;color:#c9d1da;border:1px solid #ffffff40;border-radius:4px;padding:2px 8px;cursor:pointer}
main{padding:12px 16px 32px;max-width:1600px}
h1{font-size:18px;margin:4px 0 12px}h2{font-size:15px;margin:20px 0 8px}
a{color:var(--blue)}
.mono,code,pre,td.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12.5px}
.scroll{overflow-x:auto;background:var(--card);border:1px solid var(--line);border-radius:6px}
table{border-collapse:collapse;width:100%}
th,td{text-align:left;padding:5px 8px;border-bottom:1px solid var(--line);vertical-align:top;white-space:nowrap}
th{font-size:12px;color:var(--mut);font-weight:600;background:var(--bg);position:sticky;top:0}
td.wrap{white-space:normal;min-width:200px;max-width:560px;overflow-wrap:anywhere}
.clip{display:inline-block;max-width:20ch;overflow:hidden;text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}
td>time{display:block}
td.num,th.num{text-align:right;font-variant-numeric:tabular-nums}
tr:last-child td{border-bottom:0}
.badge{display:inline-block;padding:1px 7px;border-radius:10px;font-size:12px;font-weight:600}
.s-failed{color:var(--red);background:var(--redbg)}.s-running{color:var(--blue);background:var(--bluebg)}
.s-completed{color:var(--green);background:var(--greenbg)}.s-retryable{color:var(--amber);background:var(--amberbg)}
.s-available,.s-scheduled,.s-cancelled{color:var(--grey);background:var(--greybg)}
.bad{color:var(--red);font-weight:600}.warn{color:var(--amber);font-weight:600}.ok{color:var(--green)}
small,.mut{color:var(--mut)}small{font-size:12px}
.cards{display:flex;flex-wrap:wrap;gap:10px;margin-bottom:8px}
.card{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 14px;min-width:150px}
.card b{display:block;font-size:22px}.card a{text-decoration:none;color:inherit}
dl.fields{display:grid;grid-template-columns:max-content 1fr;gap:3px 14px;background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px 14px;margin:0}
dl.fields dt{color:var(--mut)}dl.fields dd{margin:0;overflow-wrap:anywhere}
pre{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:10px;overflow-x:auto;margin:0;white-space:pre-wrap;overflow-wrap:anywhere}
form.inline{display:inline}
.actions{display:flex;flex-wrap:wrap;gap:8px;margin:10px 0}
button,.btn{font:inherit;padding:5px 12px;border-radius:5px;border:1px solid var(--line);background:var(--card);color:var(--fg);cursor:pointer}
button.primary{background:var(--blue);border-color:var(--blue);color:#fff}
button.danger{color:var(--red);border-color:var(--red)}
.filters{display:flex;flex-wrap:wrap;gap:8px;align-items:end;margin-bottom:10px}
.filters label{display:flex;flex-direction:column;font-size:12px;color:var(--mut)}
input,select{font:inherit;padding:4px 6px;border:1px solid var(--line);border-radius:4px;background:var(--card);color:var(--fg)}
.note{background:var(--card);border:1px solid var(--line);border-left:4px solid var(--blue);border-radius:6px;padding:8px 12px;margin:8px 0}
.note.error{border-left-color:var(--red)}.note.done{border-left-color:var(--green)}
.login{max-width:420px;margin:10vh auto;background:var(--card);border:1px solid var(--line);border-radius:8px;padding:20px}
.login input{width:100%;margin:6px 0 12px}
.asof{float:right;font-size:12px;color:var(--mut)}
h1 .mono{font-size:inherit}
.charts{display:grid;grid-template-columns:repeat(auto-fill,minmax(340px,1fr));gap:10px}
.charts section{background:var(--card);border:1px solid var(--line);border-radius:6px;padding:8px 12px;min-width:0}
.charts h3{font-size:13px;margin:0 0 4px;display:flex;justify-content:space-between;gap:8px}
figure.chart{margin:0;display:grid;grid-template-columns:max-content 1fr;gap:0 6px}
figure.chart svg{width:100%;height:90px;display:block}
figure.chart .scale{display:flex;flex-direction:column;justify-content:space-between;text-align:right}
figure.chart figcaption{grid-column:2;display:flex;justify-content:space-between;gap:8px;flex-wrap:wrap}
.chart .grid{stroke:var(--line);stroke-width:1;vector-effect:non-scaling-stroke}
.chart .hit{fill:transparent}.chart rect.hit:hover{fill:var(--greybg)}
.c-ok{fill:var(--green);background:var(--green)}.c-bad{fill:var(--red);background:var(--red)}
.c-warn{fill:var(--amber);background:var(--amber)}
.c-run{fill:var(--blue);background:var(--blue)}
.lines polyline{fill:none;stroke-width:2;vector-effect:non-scaling-stroke}
polyline.l-a{stroke:var(--blue)}.l-a{background:var(--blue)}polyline.l-b{stroke:var(--amber)}.l-b{background:var(--amber)}
polyline.l-c{stroke:var(--red)}.l-c{background:var(--red)}
.charts h4{font-size:12px;margin:6px 0 2px;font-weight:normal;color:var(--grey)}
figure.timeline{margin:0 0 10px}figure.timeline svg{width:100%;height:28px;display:block}
.timeline .wait{stroke:var(--grey);stroke-width:2;stroke-dasharray:4 3;vector-effect:non-scaling-stroke}
.timeline figcaption{display:flex;justify-content:space-between;gap:8px;flex-wrap:wrap}
.timeline ol{margin:0;padding:0;list-style:none;font-size:12px}
.legend{display:flex;gap:10px;font-size:12px;color:var(--mut)}
.legend i{display:inline-block;width:9px;height:9px;border-radius:2px;margin-right:4px}
.filters fieldset{border:1px solid var(--line);border-radius:4px;padding:2px 8px 4px;margin:0;display:flex;flex-wrap:wrap;gap:2px 10px;font-size:12px;color:var(--mut)}
.filters fieldset legend{padding:0 4px}.filters label.check{flex-direction:row;align-items:center;gap:3px;color:var(--fg)}
nav.pages{display:flex;gap:16px;margin:10px 0}
.tabs{display:flex;gap:6px;font-size:13px}.tabs a.on{font-weight:600;color:var(--fg);text-decoration:none}
@media (max-width:600px){main{padding:10px 10px 24px}.asof{float:none;display:block;margin-bottom:4px}
.card{min-width:0;flex:1}}
"#;

const SCRIPT: &str = "(function(){var m=document.querySelector('main[data-live]');if(!m)return;\
setInterval(function(){if(document.hidden)return;var a=document.activeElement;\
if(a&&m.contains(a)&&/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(a.tagName))return;\
fetch(location.href,{headers:{'X-Hangar-Partial':'1'},credentials:'same-origin',redirect:'manual'})\
.then(function(r){if(r.status===200)return r.text();if(r.type==='opaqueredirect'||r.status===401)location.reload();})\
.then(function(t){if(typeof t==='string')m.innerHTML=t;}).catch(function(){});},5000);})();";

/// The Content-Security-Policy of every dashboard page: nothing from elsewhere, and only
/// this module's own stylesheet and script.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |s: &str| format!("'sha256-{}'", BASE64.encode(Sha256::digest(s.as_bytes())));
        format!(
            "default-src 'none'; style-src {}; script-src {}; connect-src 'self'; \
             img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
            hash(STYLE),
            hash(SCRIPT)
        )
    })
}

/// Which navigation entry a page belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    /// `/`.
    Overview,
    /// `/jobs` and a job.
    Jobs,
    /// `/alerts`.
    Alerts,
    /// `/dead-letters`.
    DeadLetters,
    /// `/events` and an event.
    Events,
    /// `/schedules`.
    Schedules,
    /// `/webhooks` and an endpoint.
    Webhooks,
    /// `/integrations`.
    Integrations,
    /// `/sync-runs`.
    SyncRuns,
    /// `/conflicts`.
    Conflicts,
    /// `/workers`.
    Workers,
    /// Sign-in and error pages.
    None,
}

/// The navigation's entries, in order.
const NAV: [(Nav, &str, &str); 11] = [
    (Nav::Overview, "/", "Overview"),
    (Nav::Jobs, "/jobs", "Jobs"),
    (Nav::Events, "/events", "Events"),
    (Nav::Alerts, "/alerts", "Alerts"),
    (Nav::DeadLetters, "/dead-letters", "Dead letters"),
    (Nav::Schedules, "/schedules", "Schedules"),
    (Nav::Workers, "/workers", "Workers"),
    (Nav::Webhooks, "/webhooks", "Webhooks"),
    (Nav::Integrations, "/integrations", "Integrations"),
    (Nav::SyncRuns, "/sync-runs", "Sync runs"),
    (Nav::Conflicts, "/conflicts", "Conflicts"),
];

/// Who is signed in, as the frame shows it (never the token).
pub struct Who<'a> {
    /// The role's name.
    pub role: &'a str,
    /// The token's workspace, if scoped.
    pub workspace: Option<&'a str>,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: &'a str,
}

/// A whole page: the frame around `main`; `live` marks `<main>` for the live refresh.
pub fn document(title: &str, nav: Nav, who: Option<&Who<'_>>, live: bool, main: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width,initial-scale=1";
                title { (title) " · Hangar" }
                // A constant, allowed by its hash in the CSP: it must go in byte for byte.
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    span.brand { "Hangar" }
                    @if let Some(who) = who {
                        nav {
                            @for (entry, href, label) in NAV {
                                a.on[entry == nav] href=(href) { (label) }
                            }
                        }
                        span.who {
                            span {
                                (who.role) " · "
                                @match who.workspace {
                                    Some(workspace) => { "workspace " (workspace) }
                                    None => "all workspaces",
                                }
                            }
                            form.inline method="post" action="/logout" {
                                input type="hidden" name="csrf" value=(who.csrf);
                                button type="submit" { "Sign out" }
                            }
                        }
                    }
                }
                main data-live[live] { (main) }
                // A constant, allowed by its hash in the CSP.
                script { (PreEscaped(SCRIPT)) }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_frame_escapes_the_title_and_workspace() {
        let who = Who {
            role: "viewer",
            workspace: Some("<script>ws</script>"),
            csrf: "\"><script>csrf</script>",
        };
        let page =
            document("<script>t</script>", Nav::Jobs, Some(&who), true, html! {}).into_string();
        assert!(
            page.contains("&lt;script&gt;t&lt;/script&gt; · Hangar"),
            "{page}"
        );
        assert!(
            page.contains("workspace &lt;script&gt;ws&lt;/script&gt;"),
            "{page}"
        );
        assert!(
            page.contains("value=\"&quot;&gt;&lt;script&gt;csrf"),
            "{page}"
        );
        assert_eq!(page.matches("<script>").count(), 1, "only the live script");
        assert!(
            page.contains("<a class=\"on\" href=\"/jobs\">Jobs</a>"),
            "{page}"
        );
        assert!(page.contains("<main data-live>"), "{page}");
    }

    /// The hashes in the CSP are of the style and script exactly as the page carries them
    /// (escaping either would change its bytes and the browser would refuse it).
    #[test]
    fn the_csp_allows_exactly_the_style_and_script_of_the_page() {
        let page = document("t", Nav::None, None, false, html! {}).into_string();
        let inner = |open: &str, close: &str| {
            let start = page.find(open).expect("open tag") + open.len();
            let end = start + page[start..].find(close).expect("close tag");
            page[start..end].to_owned()
        };
        let csp = content_security_policy();
        for text in [inner("<style>", "</style>"), inner("<script>", "</script>")] {
            let hash = BASE64.encode(Sha256::digest(text.as_bytes()));
            assert!(csp.contains(&format!("'sha256-{hash}'")), "{csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert!(page.contains("<main>"), "not live: {page}");
    }
}
