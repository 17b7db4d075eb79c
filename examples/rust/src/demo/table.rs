// SPDX-License-Identifier: MIT OR Apache-2.0
//! The summaries' tables, in Markdown (readable as text, pasteable into an issue).

/// A table: a header, rows, and which columns are numbers (right-aligned).
pub struct Table {
    header: Vec<String>,
    numeric: Vec<bool>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// Columns named `header`; a name starting with `>` is a numeric column (the `>` is not
    /// shown).
    pub fn new(header: &[&str]) -> Table {
        Table {
            header: header
                .iter()
                .map(|h| h.trim_start_matches('>').to_string())
                .collect(),
            numeric: header.iter().map(|h| h.starts_with('>')).collect(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) -> &mut Table {
        self.rows.push(cells);
        self
    }

    pub fn render(&self) -> String {
        let line = |cells: &[String]| format!("| {} |\n", cells.join(" | "));
        let mut out = line(&self.header);
        let rule: Vec<String> = self
            .numeric
            .iter()
            .map(|&n| if n { "---:" } else { "---" }.to_string())
            .collect();
        out += &format!("|{}|\n", rule.join("|"));
        for row in &self.rows {
            out += &line(row);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::Table;

    #[test]
    fn renders_markdown_with_numeric_columns_right_aligned() {
        let mut t = Table::new(&["who", ">count"]);
        t.row(vec!["rust".into(), "3".into()]);
        assert_eq!(t.render(), "| who | count |\n|---|---:|\n| rust | 3 |\n");
    }
}
