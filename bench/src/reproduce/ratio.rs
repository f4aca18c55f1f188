//! What the MDLin experiments share: MDLin's p50 request latency relative
//! to Multi-Paxos's at each fan-out, beside the published ratio and the
//! model, as table rows and as one chart.

use super::table::fixed;
use super::Results;
use crate::plot::{Axis, Chart, Dash, Series};

/// The protocol measured against, and the one measured.
pub const BASE: &str = "paxos";
/// The multi-dispatch protocol.
pub const MDL: &str = "mdlin";

/// One deployment of a ratio table or chart.
pub struct Deployment<'a> {
    /// Row and legend name ("3 shards", "edge clients").
    pub name: String,
    /// Sweep label in the results.
    pub label: &'a str,
    /// Published ratio at each fan-out.
    pub published: &'a [f64],
    /// The model's ratio at fan-out N.
    pub model: &'a dyn Fn(f64) -> f64,
}

fn step(f: f64) -> String {
    format!("fanout-{f}")
}

/// Ours: the median over repetitions of MDLin's p50 over Multi-Paxos's.
pub fn ours(r: &Results, label: &str, f: f64) -> Option<f64> {
    r.median_ratio(label, MDL, BASE, &step(f), |x| x.latency_us.p50)
}

/// A protocol's median p50 request latency in milliseconds.
pub fn p50_ms(r: &Results, label: &str, protocol: &str, f: f64) -> Option<f64> {
    r.median(label, protocol, &step(f), |x| x.latency_us.p50 / 1e3)
}

/// The header: `first`, "row", then one column per fan-out.
pub fn header(first: &str, fanouts: &[f64]) -> Vec<String> {
    let mut h = vec![first.to_string(), "row".to_string()];
    h.extend(fanouts.iter().map(|f| format!("fan-out {f}")));
    h
}

/// An empty table with that header.
pub fn table(id: &str, title: &str, first: &str, fanouts: &[f64]) -> super::Table {
    let h = header(first, fanouts);
    let h: Vec<&str> = h.iter().map(String::as_str).collect();
    super::Table::new(id, title, &h)
}

/// A row: the deployment's name, what the row is, then its cells.
pub fn row(name: &str, what: &str, cells: impl Iterator<Item = String>) -> Vec<String> {
    [name.to_string(), what.to_string()]
        .into_iter()
        .chain(cells)
        .collect()
}

/// The rows "ours", "published" and "model" of a deployment.
pub fn rows(r: &Results, d: &Deployment, fanouts: &[f64]) -> Vec<Vec<String>> {
    vec![
        row(
            &d.name,
            "ours",
            fanouts.iter().map(|f| fixed(ours(r, d.label, *f), 3)),
        ),
        row(
            &d.name,
            "published",
            d.published.iter().map(|v| format!("{v:.2}")),
        ),
        row(
            &d.name,
            "model",
            fanouts.iter().map(|f| format!("{:.3}", (d.model)(*f))),
        ),
    ]
}

/// The ratio against fan-out: one colour per deployment, ours solid,
/// published dashed, the model dotted.
pub fn chart(title: &str, r: &Results, ds: &[Deployment], fanouts: &[f64]) -> Chart {
    let mut c = Chart::new(
        title,
        Axis::log("fan-out (operations per request, log scale)").ticks_at(fanouts),
        Axis::linear("latency ratio (MDLin / Multi-Paxos)").from_zero(),
    );
    for (i, d) in ds.iter().enumerate() {
        let o = fanouts
            .iter()
            .filter_map(|f| Some((*f, ours(r, d.label, *f)?)))
            .collect();
        c.series
            .push(Series::new(format!("{}, ours", d.name), i, o).dots());
        let p = fanouts
            .iter()
            .zip(d.published)
            .map(|(f, v)| (*f, *v))
            .collect();
        c.series
            .push(Series::new(format!("{}, published", d.name), i, p).dash(Dash::Dashed));
        let m = fanouts.iter().map(|f| (*f, (d.model)(*f))).collect();
        c.series
            .push(Series::new(format!("{}, model", d.name), i, m).dash(Dash::Dotted));
    }
    c
}
