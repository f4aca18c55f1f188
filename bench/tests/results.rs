//! `bench report`, `bench compare` and `bench reproduce` on real outputs:
//! a checked run of `bench local`, a `bench sweep`, and a tiny reproduction.
//!
//! The report page is checked by parsing it, not in a browser: it is static
//! (no scripts), so what a browser could add is rendering, while a strict
//! parse catches what breaks a page (a tag left open, an unescaped `<` in a
//! name, a figure missing) and the values can be compared with the JSON.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{assert_png, assert_svg, run};

/// Checks that `s` is well-formed XML (the page is written so): every tag
/// closed in order, attributes quoted, only known entities. Returns the
/// element names in document order.
fn well_formed(s: &str) -> Result<Vec<String>, String> {
    let mut stack: Vec<String> = Vec::new();
    let mut seen = Vec::new();
    let mut i = 0;
    while let Some(off) = s[i..].find('<') {
        let start = i + off;
        entities(&s[i..start]).map_err(|e| format!("at byte {i}: {e}"))?;
        let end = start
            + s[start..]
                .find('>')
                .ok_or_else(|| format!("tag at byte {start} never ends"))?;
        let tag = &s[start + 1..end];
        i = end + 1;
        if tag.starts_with('!') {
            continue; // the doctype
        }
        if let Some(name) = tag.strip_prefix('/') {
            match stack.pop() {
                Some(open) if open == name.trim() => continue,
                other => return Err(format!("</{name}> at byte {start} closes {other:?}")),
            }
        }
        let closed = tag.ends_with('/');
        let tag = tag.trim_end_matches('/');
        let name: String = tag.chars().take_while(|c| !c.is_whitespace()).collect();
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
            return Err(format!("bad tag name '{name}' at byte {start}"));
        }
        attributes(&tag[name.len()..]).map_err(|e| format!("<{name}> at byte {start}: {e}"))?;
        seen.push(name.clone());
        if !closed {
            stack.push(name);
        }
    }
    entities(&s[i..])?;
    match stack.is_empty() {
        true => Ok(seen),
        false => Err(format!("left open: {stack:?}")),
    }
}

fn attributes(mut a: &str) -> Result<(), String> {
    loop {
        a = a.trim_start();
        if a.is_empty() {
            return Ok(());
        }
        let eq = a
            .find('=')
            .ok_or_else(|| format!("attribute without value: {a}"))?;
        let rest = &a[eq + 1..];
        let q = rest.chars().next().filter(|c| *c == '"' || *c == '\'');
        let q = q.ok_or_else(|| format!("unquoted attribute: {a}"))?;
        let close = rest[1..]
            .find(q)
            .ok_or_else(|| format!("attribute never closed: {a}"))?;
        let v = &rest[1..1 + close];
        if v.contains('<') {
            return Err(format!("'<' in attribute: {v}"));
        }
        entities(v)?;
        a = &rest[close + 2..];
    }
}

fn entities(text: &str) -> Result<(), String> {
    let mut rest = text;
    while let Some(p) = rest.find('&') {
        let after = &rest[p + 1..];
        let semi = after.find(';').ok_or("'&' without ';'")?;
        let ent = &after[..semi];
        let known = matches!(ent, "amp" | "lt" | "gt" | "quot" | "apos")
            || ent
                .strip_prefix('#')
                .is_some_and(|n| n.parse::<u32>().is_ok());
        if !known {
            return Err(format!("unknown entity &{ent};"));
        }
        rest = &after[semi + 1..];
    }
    Ok(())
}

/// The (JSON pointer, shown text) of every table cell that names its field.
fn fields(page: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut rest = page;
    while let Some(p) = rest.find("data-field=\"") {
        rest = &rest[p + 12..];
        let q = rest.find('"').unwrap();
        let ptr = rest[..q].to_string();
        let gt = rest.find('>').unwrap();
        let lt = rest.find('<').unwrap();
        out.push((ptr, rest[gt + 1..lt].to_string()));
        rest = &rest[lt..];
    }
    out
}

/// Checks the page in `dir/report.html` against the JSON it was made from:
/// well-formed, every figure an inline SVG, every number equal to its field.
fn check_page(page: &Path, json: &Path, figures: &[&str]) -> String {
    let html = std::fs::read_to_string(page).unwrap();
    let elements = well_formed(&html).unwrap_or_else(|e| panic!("{}: {e}", page.display()));
    assert!(elements.starts_with(&["html".to_string(), "head".to_string()]));
    for f in figures {
        let at = html
            .find(&format!("<figure id=\"fig-{f}\">"))
            .unwrap_or_else(|| panic!("{}: no figure {f}", page.display()));
        let next = html[at..].find("</figure>").unwrap() + at;
        let fig = &html[at..next];
        assert!(
            fig.contains("<svg") && fig.contains("</svg>"),
            "{f} has no inline SVG"
        );
        assert!(
            fig.contains("<polyline") || fig.contains("<path"),
            "{f} draws nothing"
        );
    }
    assert_eq!(
        html.matches("<svg").count(),
        figures.len(),
        "one SVG per figure"
    );
    assert!(!html.contains("src=\"http"), "the page is self-contained");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap();
    let cells = fields(&html);
    assert!(cells.len() >= 9, "{cells:?}");
    for (ptr, text) in cells {
        let want = v
            .pointer(&ptr)
            .and_then(|x| x.as_f64())
            .unwrap_or_else(|| panic!("{ptr} is not a number in {}", json.display()));
        let got: f64 = text.parse().unwrap_or_else(|_| panic!("{ptr}: '{text}'"));
        let decimals = text.split_once('.').map_or(0, |(_, d)| d.len()) as i32;
        let tol = 0.5 * 10f64.powi(-decimals) + want.abs() * 1e-9;
        assert!((got - want).abs() <= tol, "{ptr}: page {got}, json {want}");
    }
    html
}

#[test]
fn the_page_checker_rejects_broken_pages() {
    assert!(well_formed("<html><body><p>a &amp; b</p></body></html>").is_ok());
    assert!(well_formed("<html><body><p>a</body></html>").is_err());
    assert!(well_formed("<html><p>a & b</p></html>").is_err());
    assert!(well_formed("<html><td data-x=1>a</td></html>").is_err());
    assert!(well_formed("<html><meta charset=\"utf-8\" /></html>").is_ok());
}

#[test]
fn report_and_compare_work_on_local_and_sweep_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let (local, sweep) = (dir.path().join("local"), dir.path().join("sweep"));
    let l = local.to_str().unwrap();
    let s = sweep.to_str().unwrap();
    run(
        &[
            "local",
            "--duration",
            "2s",
            "--warmup",
            "0.5s",
            "--cooldown",
            "0.2s",
            "--clients",
            "4",
            "--keys",
            "20",
            "--out",
            l,
        ],
        Duration::from_secs(90),
    );
    run(
        &[
            "sweep",
            "--protocol",
            "paxos,epaxos",
            "--conflicts-steps",
            "0,100",
            "--spread",
            "--clients",
            "4",
            "--duration",
            "1s",
            "--warmup",
            "0.2s",
            "--cooldown",
            "0.1s",
            "--out",
            s,
        ],
        Duration::from_secs(120),
    );
    // The standard plots of both.
    for stem in [
        "latency_percentiles",
        "latency_cdf",
        "throughput",
        "latency_over_time",
    ] {
        assert_png(&local.join(format!("{stem}.png")));
        assert_svg(&local.join(format!("{stem}.svg")));
    }
    for stem in ["throughput_latency", "steps_throughput", "steps_latency"] {
        assert_png(&sweep.join(format!("{stem}.png")));
        assert_svg(&sweep.join(format!("{stem}.svg")));
    }

    let out = run(&["report", l], Duration::from_secs(30));
    assert!(out.contains("report.html"), "{out}");
    let html = check_page(
        &local.join("report.html"),
        &local.join("report.json"),
        &[
            "latency_percentiles",
            "latency_cdf",
            "throughput",
            "latency_over_time",
        ],
    );
    // The verdict of the check the run made.
    let rep: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(local.join("report.json")).unwrap()).unwrap();
    let verdict = rep["checker"]["verdict"].as_str().unwrap();
    assert!(
        html.contains(&format!("history check: {verdict}")),
        "no verdict"
    );
    // The percentile axis reaches 99.99%, as the HdrHistogram plots do.
    assert!(html.contains("99.99%"));

    run(
        &[
            "report",
            s,
            "--out",
            dir.path().join("sweep.html").to_str().unwrap(),
        ],
        Duration::from_secs(30),
    );
    let html = check_page(
        &dir.path().join("sweep.html"),
        &sweep.join("sweep.json"),
        &["throughput_latency", "steps_throughput", "steps_latency"],
    );
    assert!(html.contains("not checked"), "a sweep records no history");

    let cmp = dir.path().join("cmp");
    let out = run(
        &["compare", l, s, "--out", cmp.to_str().unwrap()],
        Duration::from_secs(30),
    );
    assert!(out.contains("| local | paxos |"), "{out}");
    for stem in [
        "latency_percentiles",
        "throughput",
        "throughput_latency",
        "steps_latency",
    ] {
        assert_png(&cmp.join(format!("{stem}.png")));
        assert_svg(&cmp.join(format!("{stem}.svg")));
    }
    let csv = std::fs::read_to_string(cmp.join("compare.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + 1 + 4, "{csv}");
    let page = std::fs::read_to_string(cmp.join("compare.html")).unwrap();
    well_formed(&page).unwrap();

    // Not an output of bench: a clear error.
    let empty = dir.path().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let o = std::process::Command::new(common::bench_bin())
        .args(["report", empty.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!o.status.success());
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("neither report.json"), "{err}");
}

#[test]
fn a_tiny_reproduction_writes_its_tables_and_plots() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("ms");
    let o = out.to_str().unwrap();
    let text = run(
        &[
            "reproduce",
            "mdlin-singledc",
            "--quick",
            "--only",
            "shards-3",
            "--step-duration",
            "1s",
            "--out",
            o,
        ],
        Duration::from_secs(240),
    );
    assert!(text.contains("| 3 shards | published | 1.19 |"), "{text}");
    // The CSV: a header, then ours, published and model for each shard count.
    let csv = std::fs::read_to_string(out.join("mdlin-singledc.csv")).unwrap();
    let rows: Vec<Vec<&str>> = csv.lines().map(|l| l.split(',').collect()).collect();
    assert_eq!(
        rows[0],
        [
            "shards",
            "row",
            "fan-out 1",
            "fan-out 2",
            "fan-out 4",
            "fan-out 8",
            "fan-out 16",
            "fan-out 32"
        ]
    );
    assert_eq!(rows.len(), 1 + 3 * 3, "{csv}");
    let ours = rows
        .iter()
        .find(|r| r[0] == "3 shards" && r[1] == "ours")
        .unwrap();
    let ratios: Vec<f64> = ours[2..]
        .iter()
        .map(|c| c.parse().unwrap_or_else(|_| panic!("{csv}")))
        .collect();
    // MDLin's chain beats one operation at a time by far at fan-out 32.
    assert!(ratios[5] < 0.6 && ratios[5] > 0.05, "{ratios:?}");
    // Sweeps not run are marked, not invented.
    let one = rows
        .iter()
        .find(|r| r[0] == "1 shard" && r[1] == "ours")
        .unwrap();
    assert!(one[2..].iter().all(|c| *c == "-"), "{one:?}");
    let md = std::fs::read_to_string(out.join("mdlin-singledc.md")).unwrap();
    assert!(
        md.contains(
            "Made by `bench reproduce mdlin-singledc --quick --only shards-3 --step-duration 1s`"
        ),
        "{md}"
    );
    assert!(md.contains("Where they differ, and why"));
    for stem in ["mdlin-singledc-ratio", "mdlin-singledc-latency-3"] {
        assert_png(&out.join(format!("{stem}.png")));
        assert_svg(&out.join(format!("{stem}.svg")));
    }
    let meta: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("reproduce.json")).unwrap())
            .unwrap();
    assert!(meta["elapsed_s"].as_f64().unwrap() > 0.0);
    assert_eq!(meta["runs"], 12);
    // Its raw sweep is an ordinary sweep: report and compare take it.
    let raw = out.join("runs/shards-3/rep-1");
    run(&["report", raw.to_str().unwrap()], Duration::from_secs(30));
    check_page(
        &raw.join("report.html"),
        &raw.join("sweep.json"),
        &["throughput_latency", "steps_throughput", "steps_latency"],
    );

    // The tables and plots again from the same runs, nothing run.
    std::fs::remove_file(out.join("mdlin-singledc-ratio.png")).unwrap();
    run(
        &[
            "reproduce",
            "mdlin-singledc",
            "--quick",
            "--only",
            "shards-3",
            "--replot",
            "--out",
            o,
        ],
        Duration::from_secs(30),
    );
    assert_png(&out.join("mdlin-singledc-ratio.png"));
    assert_eq!(
        std::fs::read_to_string(out.join("mdlin-singledc.csv")).unwrap(),
        csv,
        "the same numbers"
    );
    let md = std::fs::read_to_string(out.join("mdlin-singledc.md")).unwrap();
    assert!(md.contains("tables and plots redrawn by"), "{md}");

    // An unknown experiment or sweep is a clear error.
    for args in [
        vec!["reproduce", "no-such"],
        vec!["reproduce", "mdlin-singledc", "--only", "shards-4"],
    ] {
        let o = std::process::Command::new(common::bench_bin())
            .args(&args)
            .output()
            .unwrap();
        assert!(!o.status.success());
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(
            err.contains("mdlin-singledc") || err.contains("shards-3"),
            "{err}"
        );
    }
}
