//! Charts drawn on the server as inline SVG: no script, no external image, nothing the
//! Content-Security-Policy has to allow beyond the stylesheet (the colours are its classes).
//! A chart is a row of stacked bars, one per bucket; the SVG scales to its container's width
//! (`preserveAspectRatio="none"`), so it holds no text: the scale and the time axis are HTML
//! around it, and each bar's figures are in its `<title>` (shown on hover and read by screen
//! readers). The drawn numbers are also on the `<svg>` as `data-` attributes, comma-separated,
//! oldest first, so a test (or a curious operator) can compare them with the API's.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

use crate::fleet::SeriesWindow;

/// The width of one bucket in the SVG's own units; the height of the drawing.
const BAR: i64 = 10;
const HEIGHT: i64 = 100;

/// One bucket: when it starts and its stacked values, bottom first.
pub struct Bar {
    /// The bucket's start.
    pub start: DateTime<Utc>,
    /// The values, in the order of the chart's series.
    pub values: Vec<i64>,
}

/// A series of a chart: its name (in titles and the legend) and its CSS class (its colour).
pub struct Series {
    /// What it counts, e.g. `completed`.
    pub name: &'static str,
    /// The class of its bars (`c-ok`, `c-bad`, `c-warn`).
    pub class: &'static str,
}

/// A stacked bar chart of `bars` (oldest first) with `series`, labelled `label` for
/// assistive technology; `step` is the buckets' length in seconds, for the time axis.
pub fn bars(label: &str, series: &[Series], bars: &[Bar], step: i64) -> Markup {
    let width = BAR * bars.len().max(1) as i64;
    let top = bars
        .iter()
        .map(|b| b.values.iter().sum::<i64>())
        .max()
        .unwrap_or(0);
    // A round scale: the top of the chart is the highest bar, at least 1.
    let scale = top.max(1);
    let column = |i: usize| -> String {
        bars.iter()
            .map(|b| b.values.get(i).copied().unwrap_or(0).to_string())
            .collect::<Vec<_>>()
            .join(",")
    };
    let first = bars.first().map(|b| b.start);
    let last = bars.last().map(|b| b.start);
    html! {
        figure.chart {
            div.scale { small { (top) } small { "0" } }
            svg viewBox={ "0 0 " (width) " " (HEIGHT) } preserveAspectRatio="none" role="img"
                aria-label=(label) data-step=(step)
                data-series=(series.iter().map(|s| s.name).collect::<Vec<_>>().join(","))
                data-values=(series.iter().enumerate().map(|(i, _)| column(i)).collect::<Vec<_>>().join(";"))
            {
                line.grid x1="0" y1="0.5" x2=(width) y2="0.5" {}
                line.grid x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) {}
                @for (i, bar) in bars.iter().enumerate() {
                    g {
                        title { (bar_title(bar, series, step)) }
                        // A transparent full-height bar, so the title shows anywhere in the column.
                        rect.hit x=(BAR * i as i64) y="0" width=(BAR) height=(HEIGHT) {}
                        @for (class, y, height) in stack(bar, series, scale) {
                            rect class=(class) x=(BAR * i as i64 + 1) y=(y) width=(BAR - 2)
                                height=(height) {}
                        }
                    }
                }
            }
            figcaption {
                @if let (Some(first), Some(last)) = (first, last) {
                    small { (clock(first, step)) }
                    span.legend {
                        @for s in series {
                            span { i class=(s.class) {} (s.name) }
                        }
                    }
                    small { (clock(last, step)) }
                }
            }
        }
    }
}

/// One bucket of a line chart: when it starts and each series' value (`None`: no data, a gap
/// in the line).
pub struct Point {
    /// The bucket's start.
    pub start: DateTime<Utc>,
    /// The values, in the order of the chart's series.
    pub values: Vec<Option<f64>>,
}

/// A number as the `data-values` of a line chart carry it: whole numbers without a fraction.
fn figure(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

/// A step line chart of `points` (oldest first) with `series` (their classes colour the
/// lines), labelled `label`; `unit` writes a value for the scale and the titles. Each value
/// is drawn across its bucket; a bucket without one breaks the line. The `data-values` hold
/// the numbers as drawn, an empty field where there is none.
pub fn lines(
    label: &str,
    series: &[Series],
    points: &[Point],
    step: i64,
    unit: fn(f64) -> String,
) -> Markup {
    let width = BAR * points.len().max(1) as i64;
    let top = points
        .iter()
        .flat_map(|p| p.values.iter().flatten().copied())
        .fold(0.0f64, f64::max);
    let scale = if top > 0.0 { top } else { 1.0 };
    let y = |v: f64| HEIGHT as f64 - HEIGHT as f64 * v / scale;
    let column = |i: usize| -> String {
        points
            .iter()
            .map(|p| {
                p.values
                    .get(i)
                    .copied()
                    .flatten()
                    .map(figure)
                    .unwrap_or_default()
            })
            .collect::<Vec<_>>()
            .join(",")
    };
    // Each series as runs of buckets with a value: one polyline per run.
    let runs = |i: usize| -> Vec<String> {
        let mut runs = Vec::new();
        let mut run: Vec<String> = Vec::new();
        for (b, p) in points.iter().enumerate() {
            match p.values.get(i).copied().flatten() {
                Some(v) => {
                    let (x0, x1, yv) = (BAR * b as i64, BAR * (b as i64 + 1), y(v));
                    run.push(format!("{x0},{yv:.2} {x1},{yv:.2}"));
                }
                None if !run.is_empty() => runs.push(std::mem::take(&mut run).join(" ")),
                None => {}
            }
        }
        if !run.is_empty() {
            runs.push(run.join(" "));
        }
        runs
    };
    let title = |p: &Point| -> String {
        let figures: Vec<String> = p
            .values
            .iter()
            .zip(series)
            .map(|(v, s)| format!("{} {}", s.name, v.map_or("–".to_owned(), unit)))
            .collect();
        format!("{} UTC: {}", clock(p.start, step), figures.join(", "))
    };
    let first = points.first().map(|p| p.start);
    let last = points.last().map(|p| p.start);
    html! {
        figure.chart.lines {
            div.scale { small { (unit(top)) } small { (unit(0.0)) } }
            svg viewBox={ "0 0 " (width) " " (HEIGHT) } preserveAspectRatio="none" role="img"
                aria-label=(label) data-step=(step)
                data-series=(series.iter().map(|s| s.name).collect::<Vec<_>>().join(","))
                data-values=(series.iter().enumerate().map(|(i, _)| column(i)).collect::<Vec<_>>().join(";"))
            {
                line.grid x1="0" y1="0.5" x2=(width) y2="0.5" {}
                line.grid x1="0" y1=(HEIGHT) x2=(width) y2=(HEIGHT) {}
                @for (i, p) in points.iter().enumerate() {
                    g {
                        title { (title(p)) }
                        rect.hit x=(BAR * i as i64) y="0" width=(BAR) height=(HEIGHT) {}
                    }
                }
                @for (i, s) in series.iter().enumerate() {
                    @for run in runs(i) {
                        polyline class=(s.class) points=(run) {}
                    }
                }
            }
            figcaption {
                @if let (Some(first), Some(last)) = (first, last) {
                    small { (clock(first, step)) }
                    span.legend {
                        @for s in series {
                            span { i class=(s.class) {} (s.name) }
                        }
                    }
                    small { (clock(last, step)) }
                }
            }
        }
    }
}

/// The window a page's `?window=` asks for: `day`, or the last hour.
pub fn window_of(asked: Option<&str>) -> SeriesWindow {
    match asked {
        Some("day") => SeriesWindow::Day,
        _ => SeriesWindow::Hour,
    }
}

/// A window in words, for a chart's heading.
pub fn window_title(window: SeriesWindow) -> &'static str {
    match window {
        SeriesWindow::Hour => "per minute, last hour",
        SeriesWindow::Day => "per 15 minutes, last day",
    }
}

/// The links between the hour and the day of a page at `path` (which may hold a query).
pub fn window_tabs(window: SeriesWindow, path: &str) -> Markup {
    let join = if path.contains('?') { '&' } else { '?' };
    html! {
        p.tabs {
            @for (w, label) in [(SeriesWindow::Hour, "Last hour"), (SeriesWindow::Day, "Last day")] {
                a class=(if w == window { "on" } else { "" }) href={ (path) (join) "window=" (w.as_str()) } { (label) }
            }
        }
    }
}

/// The rectangles of one bar, bottom first: `(class, y, height)` of each non-zero value,
/// scaled so that `scale` fills the height; a value too small to see is one unit high.
fn stack(bar: &Bar, series: &[Series], scale: i64) -> Vec<(&'static str, i64, i64)> {
    let mut below = 0;
    let mut rects = Vec::new();
    for (value, s) in bar.values.iter().zip(series) {
        if *value <= 0 {
            continue;
        }
        let y0 = HEIGHT - HEIGHT * below / scale;
        let y1 = HEIGHT - HEIGHT * (below + value) / scale;
        rects.push((s.class, y1, (y0 - y1).max(1)));
        below += value;
    }
    rects
}

/// A bar's tooltip: its time and each series' value.
fn bar_title(bar: &Bar, series: &[Series], step: i64) -> String {
    let figures: Vec<String> = bar
        .values
        .iter()
        .zip(series)
        .map(|(v, s)| format!("{v} {}", s.name))
        .collect();
    format!("{} UTC: {}", clock(bar.start, step), figures.join(", "))
}

/// A bucket's start as the axis shows it: the time of day, with the date for buckets
/// longer than a minute (a day's chart crosses midnight).
fn clock(at: DateTime<Utc>, step: i64) -> String {
    if step > 60 {
        at.format("%b %-d %H:%M").to_string()
    } else {
        at.format("%H:%M").to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A line chart carries its numbers (empty where a bucket has none) and breaks its line
    /// there.
    #[test]
    fn a_line_chart_carries_its_numbers_and_breaks_at_gaps() {
        let start = DateTime::from_timestamp(1_700_000_040, 0).unwrap();
        let at = |m| start + chrono::Duration::minutes(m);
        let points = vec![
            Point {
                start: at(0),
                values: vec![Some(4.0)],
            },
            Point {
                start: at(1),
                values: vec![None],
            },
            Point {
                start: at(2),
                values: vec![Some(1.5)],
            },
        ];
        let series = [Series {
            name: "waiting",
            class: "l-a",
        }];
        let html = lines("depth", &series, &points, 60, |v| format!("{v} jobs")).into_string();
        assert!(html.contains(r#"data-values="4,,1.5""#), "{html}");
        assert_eq!(html.matches("<polyline").count(), 2, "{html}");
        assert!(html.contains(r#"points="0,0.00 10,0.00""#), "{html}");
        assert!(html.contains("waiting –"), "{html}");
    }

    fn series() -> [Series; 2] {
        [
            Series {
                name: "completed",
                class: "c-ok",
            },
            Series {
                name: "failed",
                class: "c-bad",
            },
        ]
    }

    /// The data attributes carry the drawn numbers, and the tallest bar fills the height.
    #[test]
    fn a_chart_carries_its_numbers_and_scales_to_the_tallest_bar() {
        let start = DateTime::from_timestamp(1_700_000_040, 0).unwrap();
        let bars = vec![
            Bar {
                start,
                values: vec![3, 1],
            },
            Bar {
                start: start + chrono::Duration::minutes(1),
                values: vec![0, 0],
            },
        ];
        let html = super::bars("queue <q>", &series(), &bars, 60).into_string();
        assert!(html.contains(r#"data-values="3,0;1,0""#), "{html}");
        assert!(html.contains(r#"aria-label="queue &lt;q&gt;""#), "{html}");
        // 3 completed from 100 to 25, 1 failed from 25 to 0.
        assert!(
            html.contains(r#"class="c-ok" x="1" y="25" width="8" height="75""#),
            "{html}"
        );
        assert!(
            html.contains(r#"class="c-bad" x="1" y="0" width="8" height="25""#),
            "{html}"
        );
        assert!(html.contains("22:14 UTC: 3 completed, 1 failed"), "{html}");
    }
}
