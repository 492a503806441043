//! Charts drawn on the server as inline SVG: no script, no external image, nothing the
//! Content-Security-Policy has to allow beyond the stylesheet (the colours are its classes).
//! A chart is a row of stacked bars, one per bucket; the SVG scales to its container's width
//! (`preserveAspectRatio="none"`), so it holds no text: the scale and the time axis are HTML
//! around it, and each bar's figures are in its `<title>` (shown on hover and read by screen
//! readers). The drawn numbers are also on the `<svg>` as `data-` attributes, comma-separated,
//! oldest first, so a test (or a curious operator) can compare them with the API's.

use chrono::{DateTime, Utc};
use maud::{Markup, html};

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
