//! The overview's chart: calls and refusals per hour, as SVG drawn on the
//! server. Refusals are hatched as well as coloured and every bar has its
//! numbers as a tooltip, so the chart reads without colour; the table
//! beside it holds the same numbers.

use std::time::SystemTime;

use maud::{Markup, html};

use crate::{format, i18n::Text};

/// One hour's counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Hour {
    pub(crate) start: SystemTime,
    pub(crate) calls: u64,
    pub(crate) refusals: u64,
}

const WIDTH: u32 = 720;
const HEIGHT: u32 = 240;
const LEFT: u32 = 40;
const BOTTOM: u32 = 24;
const TOP: u32 = 12;

pub(crate) fn hours(t: &Text, hours: &[Hour]) -> Markup {
    let most = hours.iter().map(|h| h.calls).max().unwrap_or(0).max(1);
    let plot = HEIGHT - BOTTOM - TOP;
    let slot = (WIDTH - LEFT) / (hours.len().max(1) as u32);
    let bar = (slot / 2).saturating_sub(1).max(1);
    let y = |n: u64| HEIGHT - BOTTOM - (n * u64::from(plot) / most) as u32;
    html! {
        svg.chart viewBox={ "0 0 " (WIDTH) " " (HEIGHT) } role="img" aria-labelledby="chart-title" {
            title #chart-title { (t.chart_title) }
            defs {
                pattern #hatch patternUnits="userSpaceOnUse" width="6" height="6" patternTransform="rotate(45)" {
                    rect.refusal-fill width="6" height="6" {}
                    line x1="0" y1="0" x2="0" y2="6" stroke-width="3" .hatch-line {}
                }
            }
            line.axis x1=(LEFT) y1=(HEIGHT - BOTTOM) x2=(WIDTH) y2=(HEIGHT - BOTTOM) {}
            line.axis x1=(LEFT) y1=(TOP) x2=(LEFT) y2=(HEIGHT - BOTTOM) {}
            text.tick x=(LEFT - 4) y=(TOP + 4) text-anchor="end" { (most) }
            text.tick x=(LEFT - 4) y=(HEIGHT - BOTTOM) text-anchor="end" { "0" }
            @for (i, h) in hours.iter().enumerate() {
                @let x = LEFT + i as u32 * slot + 1;
                g {
                    title { (format::hour(h.start)) " — " (t.calls) " " (h.calls) ", " (t.refusals) " " (h.refusals) }
                    rect.calls x=(x) y=(y(h.calls)) width=(bar) height=(HEIGHT - BOTTOM - y(h.calls)) {}
                    rect.refusals x=(x + bar) y=(y(h.refusals)) width=(bar) height=(HEIGHT - BOTTOM - y(h.refusals)) fill="url(#hatch)" {}
                }
                @if i % 3 == 0 {
                    text.tick x=(x) y=(HEIGHT - 6) { (format::hour(h.start)) }
                }
            }
        }
        ul.legend {
            li { span.swatch.calls aria-hidden="true" {} (t.calls) }
            li { span.swatch.refusals aria-hidden="true" {} (t.refusals) " " (t.hatched) }
        }
    }
}
