//! The small pieces every dashboard page is built from: UTC times with "3 min ago",
//! durations, job-state badges, clipped identifiers, tables in a scroll box, the "as of"
//! line and the note an action leaves. Each is a maud fragment, so what it shows is escaped
//! by construction.

use chrono::{DateTime, Utc};
use hangar_workers::job::JobState;
use maud::{Markup, html};

/// A link to the jobs list filtered by `filters` (query values encoded by serde_urlencoded).
pub fn jobs_link(filters: &[(&str, &str)]) -> String {
    match serde_urlencoded::to_string(filters) {
        Ok(query) if !query.is_empty() => format!("/jobs?{query}"),
        _ => "/jobs".to_owned(),
    }
}

/// An identifier (kind, queue, workspace, name) for a table cell: cut to the column's width
/// with `…` on screen, whole in its tooltip and in the page's text.
pub fn clip(text: &str) -> Markup {
    html! { span.clip title=(text) { (text) } }
}

/// The first `max` characters of `text`, with `…` when cut.
pub fn excerpt(text: &str, max: usize) -> String {
    crate::redis_ingress::excerpt(text, max)
}

/// A table with a horizontal scroll box around it (phones), or the `empty` note.
pub fn table(head: Markup, rows: Vec<Markup>, empty: &str) -> Markup {
    html! {
        @if rows.is_empty() {
            p.note { (empty) }
        } @else {
            div.scroll {
                table {
                    thead { tr { (head) } }
                    tbody { @for row in rows { (row) } }
                }
            }
        }
    }
}

/// When the page was rendered, and that it refreshes itself.
pub fn as_of() -> Markup {
    html! {
        span.asof { "as of " (Utc::now().format("%H:%M:%S")) " UTC · refreshes every 5 s" }
    }
}

/// The note an action's redirect asks for with `?done=`.
pub fn done_note(done: Option<&str>) -> Markup {
    let text = match done {
        Some("retried") => "Retried: the job runs again now.",
        Some("cancelled") => "Cancelled.",
        Some("run_again") => "Queued to run again, with a fresh retry budget.",
        Some("acknowledged") => "Acknowledged.",
        Some("paused") => "Paused: the queue accepts jobs and no pool claims from it.",
        Some("resumed") => "Resumed: the queue's pools claim again.",
        _ => return html! {},
    };
    html! { p class="note done" { (text) } }
}

/// A dash for a value that is not there.
pub fn none() -> Markup {
    html! { span.mut { "–" } }
}

/// A UTC time with how long ago (or ahead) it is.
pub fn time(at: DateTime<Utc>, now: DateTime<Utc>) -> Markup {
    html! {
        time datetime=(at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)) {
            (at.format("%Y-%m-%d %H:%M:%SZ"))
        }
        " "
        small { (relative(at, now)) }
    }
}

/// `time` for an optional moment; a dash when absent.
pub fn opt_time(at: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Markup {
    at.map_or_else(none, |t| time(t, now))
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
pub fn state_badge(state: JobState) -> Markup {
    html! { span class={ "badge s-" (state.as_str()) } { (state.as_str()) } }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_read_as_utc_with_how_long_ago() {
        let now = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        assert_eq!(
            relative(now - chrono::Duration::seconds(190), now),
            "3 min ago"
        );
        assert_eq!(relative(now + chrono::Duration::hours(2), now), "in 2 h");
        assert_eq!(relative(now, now), "just now");
        assert!(
            time(now, now)
                .into_string()
                .contains("2027-01-15 08:00:00Z")
        );
        assert_eq!(millis(1500), "1.5 s");
    }

    #[test]
    fn fragments_escape_what_they_show() {
        let payload = r#"<script>alert("x")</script>"#;
        assert_eq!(
            clip(payload).into_string(),
            "<span class=\"clip\" title=\"&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;\">\
             &lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;</span>"
        );
        let empty = table(html! { th { "h" } }, Vec::new(), payload).into_string();
        assert!(
            empty.starts_with("<p class=\"note\">&lt;script&gt;"),
            "{empty}"
        );
        assert_eq!(
            state_badge(JobState::Failed).into_string(),
            "<span class=\"badge s-failed\">failed</span>"
        );
    }

    #[test]
    fn jobs_links_encode_their_filters() {
        assert_eq!(
            jobs_link(&[("state", "scheduled"), ("queue", "q_beta")]),
            "/jobs?state=scheduled&queue=q_beta"
        );
        assert_eq!(jobs_link(&[("kind", "a b&c")]), "/jobs?kind=a+b%26c");
        assert_eq!(jobs_link(&[]), "/jobs");
    }
}
