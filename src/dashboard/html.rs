//! The dashboard's HTML: the one escape function every user-supplied value goes through, the
//! page frame (inline CSS, the few lines of live-refresh script, navigation) and small
//! formatting helpers (UTC times with "3 min ago", durations, state badges).
//!
//! The stylesheet and the script are constants; the Content-Security-Policy allows exactly
//! them by their SHA-256, so an injected `<script>` would not run even if escaping failed.

use std::fmt::Write;
use std::sync::OnceLock;

use chrono::{DateTime, Utc};
use hangar_workers::job::JobState;
use sha2::{Digest, Sha256};

/// Escapes text for HTML element content and quoted attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// Percent-encodes a query-string value.
pub fn url_enc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// An identifier (kind, queue, workspace, name) for a table cell: cut to the column's width
/// with `…` on screen, whole in its tooltip and in the page's text.
pub fn clip(text: &str) -> String {
    let text = esc(text);
    format!("<span class=clip title=\"{text}\">{text}</span>")
}

/// The first `max` characters of `text`, with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    crate::ingress::excerpt(text, max)
}

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
@media (max-width:600px){main{padding:10px 10px 24px}.asof{float:none;display:block;margin-bottom:4px}
.card{min-width:0;flex:1}}
"#;

const SCRIPT: &str = "(function(){var m=document.querySelector('main[data-live]');if(!m)return;\
setInterval(function(){if(document.hidden)return;var a=document.activeElement;\
if(a&&m.contains(a)&&/^(INPUT|SELECT|TEXTAREA|BUTTON)$/.test(a.tagName))return;\
fetch(location.href,{headers:{'X-Hangar-Partial':'1'},credentials:'same-origin',redirect:'manual'})\
.then(function(r){if(r.status===200)return r.text();if(r.type==='opaqueredirect'||r.status===401)location.reload();})\
.then(function(t){if(typeof t==='string')m.innerHTML=t;}).catch(function(){});},5000);})();";

fn base64(bytes: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | (u32::from(*b) << (16 - 8 * i)));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The Content-Security-Policy of every dashboard page: nothing from elsewhere, and only
/// this module's own stylesheet and script.
pub fn content_security_policy() -> &'static str {
    static CSP: OnceLock<String> = OnceLock::new();
    CSP.get_or_init(|| {
        let hash = |s: &str| format!("'sha256-{}'", base64(&Sha256::digest(s.as_bytes())));
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
    /// `/schedules`.
    Schedules,
    /// Sign-in and error pages.
    None,
}

/// Who is signed in, as the frame shows it (never the token).
pub struct Who<'a> {
    /// The role's name.
    pub role: &'a str,
    /// The token's workspace, if scoped.
    pub workspace: Option<&'a str>,
    /// The session's CSRF token, for the sign-out form.
    pub csrf: &'a str,
}

/// A whole page: the frame around `main`.
pub fn document(title: &str, nav: Nav, who: Option<&Who<'_>>, live: bool, main: &str) -> String {
    let mut out = String::with_capacity(main.len() + STYLE.len() + 2048);
    let _ = write!(
        out,
        "<!doctype html><html lang=en><head><meta charset=utf-8>\
         <meta name=viewport content=\"width=device-width,initial-scale=1\">\
         <title>{} · Hangar</title><style>{STYLE}</style></head><body><header>\
         <span class=brand>Hangar</span>",
        esc(title)
    );
    if let Some(who) = who {
        out.push_str("<nav>");
        for (entry, href, label) in [
            (Nav::Overview, "/", "Overview"),
            (Nav::Jobs, "/jobs", "Jobs"),
            (Nav::Alerts, "/alerts", "Alerts"),
            (Nav::DeadLetters, "/dead-letters", "Dead letters"),
            (Nav::Schedules, "/schedules", "Schedules"),
        ] {
            let on = if entry == nav { " class=on" } else { "" };
            let _ = write!(out, "<a href=\"{href}\"{on}>{label}</a>");
        }
        let scope = who.workspace.map_or_else(
            || "all workspaces".to_owned(),
            |ws| format!("workspace {}", esc(ws)),
        );
        let _ = write!(
            out,
            "</nav><span class=who><span>{} · {scope}</span>\
             <form class=inline method=post action=\"/logout\">\
             <input type=hidden name=csrf value=\"{}\"><button type=submit>Sign out</button>\
             </form></span>",
            esc(who.role),
            esc(who.csrf)
        );
    }
    let live_attr = if live { " data-live" } else { "" };
    let _ = write!(
        out,
        "</header><main{live_attr}>{main}</main><script>{SCRIPT}</script></body></html>"
    );
    out
}

/// A UTC time with how long ago (or ahead) it is.
pub fn time(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    format!(
        "<time datetime=\"{}\">{}</time> <small>{}</small>",
        at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        at.format("%Y-%m-%d %H:%M:%SZ"),
        relative(at, now)
    )
}

/// `time` for an optional moment; a dash when absent.
pub fn opt_time(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> String {
    at.map_or_else(|| "<span class=mut>–</span>".to_owned(), |t| time(t, now))
}

/// "3 min ago", "in 2 h", "just now".
pub fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let secs = (now - at).num_seconds();
    if secs.abs() < 5 {
        return "just now".to_owned();
    }
    let span = duration_words(secs.unsigned_abs());
    if secs > 0 {
        format!("{span} ago")
    } else {
        format!("in {span}")
    }
}

/// A length of time in the largest sensible unit: "42 s", "3 min", "5 h", "2 d".
pub fn duration_words(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min", secs / 60),
        3600..86400 => format!("{} h", secs / 3600),
        _ => format!("{} d", secs / 86400),
    }
}

/// Milliseconds as "850 ms", "1.2 s", "3 min".
pub fn millis(ms: i64) -> String {
    match ms {
        ..1000 => format!("{ms} ms"),
        1000..60_000 => format!("{:.1} s", ms as f64 / 1000.0),
        _ => duration_words((ms / 1000) as u64),
    }
}

/// A job state as a coloured badge.
pub fn state_badge(state: JobState) -> String {
    format!(
        "<span class=\"badge s-{0}\">{0}</span>",
        esc(state.as_str())
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_neutralises_script_payloads() {
        let payload = r#"<script>alert("x")</script><img src=x onerror='alert(1)'>&amp;"#;
        let out = esc(payload);
        assert!(!out.contains('<') && !out.contains('>') && !out.contains('"'));
        assert!(!out.contains('\''));
        assert_eq!(
            out,
            "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x \
             onerror=&#39;alert(1)&#39;&gt;&amp;amp;"
        );
        assert_eq!(esc("plain ünïcode"), "plain ünïcode");
    }

    #[test]
    fn the_frame_escapes_the_title_and_workspace() {
        let who = Who {
            role: "viewer",
            workspace: Some("<script>ws</script>"),
            csrf: "abc",
        };
        let page = document("<script>t</script>", Nav::Jobs, Some(&who), true, "");
        assert!(!page.contains("<script>t"));
        assert!(!page.contains("<script>ws"));
        assert_eq!(page.matches("<script>").count(), 1, "only the live script");
    }

    #[test]
    fn base64_matches_the_standard_alphabet() {
        assert_eq!(base64(b""), "");
        assert_eq!(base64(b"f"), "Zg==");
        assert_eq!(base64(b"fo"), "Zm8=");
        assert_eq!(base64(b"foobar"), "Zm9vYmFy");
        assert!(content_security_policy().contains("'sha256-"));
    }

    #[test]
    fn times_read_as_utc_with_how_long_ago() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(
            relative(now - chrono::Duration::seconds(190), now),
            "3 min ago"
        );
        assert_eq!(relative(now + chrono::Duration::hours(2), now), "in 2 h");
        assert_eq!(relative(now, now), "just now");
        assert!(time(now, now).contains("2027-01-15 08:00:00Z"));
        assert_eq!(url_enc("a b&c"), "a%20b%26c");
        assert_eq!(millis(1500), "1.5 s");
    }
}
