//! A result table, written as CSV and as Markdown.

use std::fmt::Write as _;

use crate::compare::csv_field;

/// A table of an experiment.
#[derive(Debug, Clone, Default)]
pub struct Table {
    /// File stem of its CSV.
    pub id: String,
    /// Heading.
    pub title: String,
    /// Column names.
    pub header: Vec<String>,
    /// Rows of cells.
    pub rows: Vec<Vec<String>>,
    /// Paragraphs after the table: where and why ours differ from the published values.
    pub notes: Vec<String>,
}

impl Table {
    /// An empty table.
    pub fn new(id: &str, title: &str, header: &[&str]) -> Table {
        Table {
            id: id.into(),
            title: title.into(),
            header: header.iter().map(|s| s.to_string()).collect(),
            ..Default::default()
        }
    }

    /// The table as CSV.
    pub fn csv(&self) -> String {
        let mut s = String::new();
        for r in std::iter::once(&self.header).chain(&self.rows) {
            let _ = writeln!(
                s,
                "{}",
                r.iter().map(|c| csv_field(c)).collect::<Vec<_>>().join(",")
            );
        }
        s
    }

    /// The table as Markdown: heading, table, notes.
    pub fn markdown(&self) -> String {
        let mut s = format!("## {}\n\n", self.title);
        let _ = writeln!(s, "| {} |", self.header.join(" | "));
        let _ = writeln!(s, "|{}", "---|".repeat(self.header.len()));
        for r in &self.rows {
            let _ = writeln!(s, "| {} |", r.join(" | "));
        }
        for n in &self.notes {
            let _ = write!(s, "\n{n}\n");
        }
        s
    }
}

/// A value with `d` decimals, or "-" when missing.
pub fn fixed(v: Option<f64>, d: usize) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{v:.d$}"))
}

/// Operations per second in thousands ("243k"), or "-".
pub fn kilo(v: Option<f64>) -> String {
    v.map_or_else(|| "-".into(), |v| format!("{:.0}k", v / 1e3))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_and_markdown_hold_the_same_cells() {
        let mut t = Table::new("x", "X", &["a", "b"]);
        t.rows.push(vec!["1".into(), "two, three".into()]);
        t.notes.push("why".into());
        assert_eq!(t.csv(), "a,b\n1,\"two, three\"\n");
        assert_eq!(
            t.markdown(),
            "## X\n\n| a | b |\n|---|---|\n| 1 | two, three |\n\nwhy\n"
        );
        assert_eq!(fixed(None, 2), "-");
        assert_eq!(kilo(Some(243_400.0)), "243k");
    }
}
