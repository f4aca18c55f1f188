//! A small builder for self-contained HTML pages: escaped text, tables whose
//! cells can name the JSON value they show, and inline SVG figures. The
//! output is also well-formed XML (void elements closed, attributes quoted),
//! so a test can parse it strictly.

use std::fmt::Write as _;

/// Text with `&`, `<`, `>` and quotes escaped.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
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

/// One table cell.
#[derive(Debug, Clone)]
pub struct Cell {
    /// What is shown.
    pub text: String,
    /// A JSON pointer (RFC 6901) to the value shown, in the page's source
    /// file (`report.json`, `sweep.json`), so the page can be checked against it.
    pub field: Option<String>,
}

impl Cell {
    /// A plain cell.
    pub fn text(t: impl Into<String>) -> Cell {
        Cell {
            text: t.into(),
            field: None,
        }
    }

    /// A number read from `pointer` in the source file, shown with `decimals`.
    pub fn number(v: f64, decimals: usize, pointer: impl Into<String>) -> Cell {
        Cell {
            text: format!("{v:.decimals$}"),
            field: Some(pointer.into()),
        }
    }
}

/// A page under construction.
pub struct Page {
    body: String,
    title: String,
}

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}\
table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:3px 8px}\
td{text-align:right;font-variant-numeric:tabular-nums}th{background:#f3f3f3;text-align:left}\
figure{margin:1.5em 0}figure svg{max-width:100%;height:auto}figcaption{color:#555;font-size:90%}.verdict{font-size:120%;padding:6px 10px;display:inline-block}\
.ok{background:#dff3df}.bad{background:#f8d7d7}.none{background:#eee}code{background:#f3f3f3;padding:0 3px}";

impl Page {
    /// A page with this title (also its first heading).
    pub fn new(title: &str) -> Page {
        let mut p = Page {
            body: String::new(),
            title: title.to_string(),
        };
        p.heading(1, title);
        p
    }

    /// A heading of level 1 to 3.
    pub fn heading(&mut self, level: u8, text: &str) {
        let l = level.clamp(1, 3);
        let _ = writeln!(self.body, "<h{l}>{}</h{l}>", escape(text));
    }

    /// A paragraph of text.
    pub fn para(&mut self, text: &str) {
        let _ = writeln!(self.body, "<p>{}</p>", escape(text));
    }

    /// A paragraph styled by `class` (e.g. a verdict), with an id.
    pub fn badge(&mut self, id: &str, class: &str, text: &str) {
        let _ = writeln!(
            self.body,
            "<p><span id=\"{}\" class=\"verdict {}\">{}</span></p>",
            escape(id),
            escape(class),
            escape(text)
        );
    }

    /// A table with an id, a header row and rows of cells.
    pub fn table(&mut self, id: &str, header: &[&str], rows: &[Vec<Cell>]) {
        let _ = writeln!(self.body, "<table id=\"{}\">", escape(id));
        self.body.push_str("<tr>");
        for h in header {
            let _ = write!(self.body, "<th>{}</th>", escape(h));
        }
        self.body.push_str("</tr>\n");
        for r in rows {
            self.body.push_str("<tr>");
            for c in r {
                match &c.field {
                    Some(f) => {
                        let _ = write!(
                            self.body,
                            "<td data-field=\"{}\">{}</td>",
                            escape(f),
                            escape(&c.text)
                        );
                    }
                    None => {
                        let _ = write!(self.body, "<td>{}</td>", escape(&c.text));
                    }
                }
            }
            self.body.push_str("</tr>\n");
        }
        self.body.push_str("</table>\n");
    }

    /// An SVG drawing inline, with a caption.
    pub fn figure(&mut self, id: &str, svg: &str, caption: &str) {
        // Drop an XML declaration, if any: it may not appear inside a page.
        let svg = match svg.find("<svg") {
            Some(i) => &svg[i..],
            None => svg,
        };
        let _ = writeln!(
            self.body,
            "<figure id=\"{}\">\n{}\n<figcaption>{}</figcaption>\n</figure>",
            escape(id),
            svg.trim(),
            escape(caption)
        );
    }

    /// The whole document.
    pub fn finish(self) -> String {
        format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\" />\n<title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{}</body>\n</html>\n",
            escape(&self.title),
            self.body
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_and_cells_name_their_fields() {
        assert_eq!(escape("a<b & \"c\""), "a&lt;b &amp; &quot;c&quot;");
        let mut p = Page::new("x < y");
        p.table(
            "t",
            &["name"],
            &[vec![Cell::number(1.25, 1, "/latency_us/p50")]],
        );
        let s = p.finish();
        assert!(s.contains("<title>x &lt; y</title>"));
        assert!(
            s.contains("<td data-field=\"/latency_us/p50\">1.2</td>") || s.contains(">1.3</td>")
        );
    }
}
