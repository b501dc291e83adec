//! Line charts as inline SVG, drawn on the server: no chart library, no
//! external assets, and they refresh with the rest of the page fragment.

use std::fmt::Write;

use super::esc;

pub struct Series<'a> {
    pub label: &'a str,
    /// A CSS class (colour) from ui.css: presentation attributes would do,
    /// but classes keep the palette in one place.
    pub class: &'a str,
    /// (ms since the epoch, value)
    pub points: Vec<(i64, f64)>,
}

const W: f64 = 560.0;
const H: f64 = 180.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 24.0;

/// A chart of `series` over the same time axis, with a y axis from 0.
pub fn line_chart(id: &str, title: &str, series: &[Series]) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<figure class=chart id=\"{}\"><figcaption>{}",
        esc(id),
        esc(title)
    );
    for s in series {
        let _ = write!(
            o,
            " <span class=\"key {}\">■ {}</span>",
            esc(s.class),
            esc(s.label)
        );
    }
    o.push_str("</figcaption>");
    let all = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut ymax) = (i64::MAX, i64::MIN, 0f64);
    for &(x, y) in all {
        x0 = x0.min(x);
        x1 = x1.max(x);
        if y.is_finite() {
            ymax = ymax.max(y);
        }
    }
    let _ = write!(
        o,
        "<svg viewBox=\"0 0 {W} {H}\" role=img aria-label=\"{}\">",
        esc(title)
    );
    if x0 > x1 {
        let _ = write!(
            o,
            "<text x=\"{}\" y=\"{}\" class=empty text-anchor=middle>no batches yet</text></svg></figure>",
            W / 2.0,
            H / 2.0
        );
        return o;
    }
    let ymax = nice_ceiling(ymax);
    let span = (x1 - x0).max(1) as f64;
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    let px = |x: i64| LEFT + (x - x0) as f64 / span * pw;
    let py = |y: f64| TOP + ph - (y.max(0.0) / ymax).min(1.0) * ph;
    // Grid and y labels at 0, ½ and the top.
    for f in [0.0, 0.5, 1.0] {
        let y = py(ymax * f);
        let _ = write!(
            o,
            "<line class=grid x1=\"{LEFT}\" x2=\"{}\" y1=\"{y:.1}\" y2=\"{y:.1}\"/><text class=axis x=\"{}\" y=\"{:.1}\" text-anchor=end>{}</text>",
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            short_number(ymax * f)
        );
    }
    // x labels: how long ago the first and last points were, from the last.
    let _ = write!(
        o,
        "<text class=axis x=\"{LEFT}\" y=\"{}\">−{}</text><text class=axis x=\"{}\" y=\"{}\" text-anchor=end>last batch</text>",
        H - 6.0,
        duration((x1 - x0) / 1000),
        W - RIGHT,
        H - 6.0
    );
    // Backwards, so the first series is drawn on top (it is dashed in ui.css
    // and stays visible where the lines coincide).
    for s in series.iter().rev() {
        if s.points.is_empty() {
            continue;
        }
        let pts: Vec<String> = s
            .points
            .iter()
            .map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y)))
            .collect();
        if pts.len() == 1 {
            let _ = write!(
                o,
                "<circle class=\"{}\" r=3 cx=\"{:.1}\" cy=\"{:.1}\"/>",
                esc(s.class),
                px(s.points[0].0),
                py(s.points[0].1)
            );
        } else {
            let _ = write!(
                o,
                "<polyline class=\"line {}\" points=\"{}\"/>",
                esc(s.class),
                pts.join(" ")
            );
        }
    }
    o.push_str("</svg></figure>");
    o
}

/// The smallest 1, 2 or 5 × 10ⁿ at or above `v` (1 for an empty chart).
fn nice_ceiling(v: f64) -> f64 {
    if v.is_nan() || v <= 0.0 || !v.is_finite() {
        return 1.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * p)
        .find(|c| *c >= v)
        .unwrap_or(10.0 * p)
}

pub fn short_number(v: f64) -> String {
    let a = v.abs();
    if a >= 1e9 {
        format!("{:.1}G", v / 1e9)
    } else if a >= 1e6 {
        format!("{:.1}M", v / 1e6)
    } else if a >= 1e4 {
        format!("{:.0}k", v / 1e3)
    } else if a >= 1e3 {
        format!("{:.1}k", v / 1e3)
    } else if a == a.trunc() {
        format!("{v:.0}")
    } else {
        format!("{v:.1}")
    }
}

pub fn duration(secs: i64) -> String {
    match secs {
        s if s < 120 => format!("{s} s"),
        s if s < 7200 => format!("{} min", s / 60),
        s => format!("{} h", s / 3600),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceilings_are_round() {
        assert_eq!(nice_ceiling(0.0), 1.0);
        assert_eq!(nice_ceiling(3.0), 5.0);
        assert_eq!(nice_ceiling(1234.0), 2000.0);
        assert_eq!(nice_ceiling(f64::NAN), 1.0);
    }

    #[test]
    fn labels_and_titles_are_escaped() {
        let s = line_chart(
            "c",
            "<b>",
            &[Series {
                label: "<i>",
                class: "a",
                points: vec![(0, 1.0), (1000, 2.0)],
            }],
        );
        assert!(!s.contains("<b>") && !s.contains("<i>"));
        assert!(s.contains("<polyline"));
    }
}
