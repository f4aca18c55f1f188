//! Colours and line styles: one colour per protocol (or per run, when runs
//! are compared), and one line style per statistic (p50 solid, p99 dashed).

use plotters::style::RGBColor;

/// Colours that stay apart in print and for the common colour-vision
/// deficiencies (Okabe and Ito's palette, without its yellow).
pub const COLOURS: [RGBColor; 7] = [
    RGBColor(0, 114, 178),   // blue
    RGBColor(213, 94, 0),    // vermillion
    RGBColor(0, 158, 115),   // bluish green
    RGBColor(204, 121, 167), // reddish purple
    RGBColor(86, 180, 233),  // sky blue
    RGBColor(230, 159, 0),   // orange
    RGBColor(0, 0, 0),       // black
];

/// The colour of palette slot `i` (wrapping).
pub fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// The palette slot of a protocol: its place in the registry, so a protocol
/// has the same colour in every plot.
pub fn protocol_slot(name: &str) -> usize {
    protocols::NAMES
        .iter()
        .position(|n| *n == name)
        .unwrap_or(protocols::NAMES.len())
}

/// How a line is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dash {
    /// A solid line (p50, or the only statistic).
    Solid,
    /// Long dashes (p99).
    Dashed,
    /// Short dashes (a third statistic, e.g. p99.9 or a model).
    Dotted,
}

impl Dash {
    /// The style for a statistic's name: p50 solid, p99 dashed, others dotted.
    pub fn for_stat(stat: &str) -> Dash {
        match stat {
            "p99" => Dash::Dashed,
            "p50" | "" => Dash::Solid,
            _ => Dash::Dotted,
        }
    }
}
