//! The plain-text tables of the CLI's lists (`jobs list`, `tokens list`, `schedules list`,
//! …): every column as wide as its widest cell, two spaces between columns, numbers aligned
//! right, nothing after the last cell. Our own few lines rather than a table crate: the lists
//! need no borders, colours or wrapping, and widths count characters (`–` is one), which is
//! all a terminal of monospaced text needs.

/// How a column's cells line up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Align {
    /// Text: padded on the right.
    Left,
    /// Numbers: padded on the left.
    Right,
}

/// A table being filled row by row, printed once complete.
#[derive(Debug)]
pub struct Table {
    columns: Vec<(&'static str, Align)>,
    rows: Vec<Vec<String>>,
}

impl Table {
    /// An empty table with these column headers.
    pub fn new(columns: &[(&'static str, Align)]) -> Table {
        Table {
            columns: columns.to_vec(),
            rows: Vec::new(),
        }
    }

    /// Adds a row; a line break in a cell becomes a space so that one row stays one line.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(
            cells
                .into_iter()
                .map(|c| c.replace(['\n', '\r', '\t'], " "))
                .collect(),
        );
    }

    /// The table as lines of text, the header first.
    pub fn render(&self) -> String {
        let header: Vec<String> = self.columns.iter().map(|(h, _)| (*h).to_owned()).collect();
        let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(widths.len()) {
                widths[i] = widths[i].max(cell.chars().count());
            }
        }
        let mut out = String::new();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, (_, align)) in self.columns.iter().enumerate() {
                let cell = row.get(i).map_or("", String::as_str);
                let pad = " ".repeat(widths[i].saturating_sub(cell.chars().count()));
                if i > 0 {
                    line.push_str("  ");
                }
                match align {
                    Align::Left => {
                        line.push_str(cell);
                        line.push_str(&pad);
                    }
                    Align::Right => {
                        line.push_str(&pad);
                        line.push_str(cell);
                    }
                }
            }
            out.push_str(line.trim_end());
            out.push('\n');
        }
        out
    }

    /// Prints the table on stdout.
    pub fn print(&self) {
        print!("{}", self.render());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_as_wide_as_their_widest_cell() {
        let mut table = Table::new(&[
            ("ID", Align::Right),
            ("STATE", Align::Left),
            ("LAST ERROR", Align::Left),
        ]);
        table.row(vec!["7".into(), "completed".into(), String::new()]);
        table.row(vec![
            "1234".into(),
            "failed".into(),
            "HTTP 500\nagain".into(),
        ]);
        assert_eq!(
            table.render(),
            "  ID  STATE      LAST ERROR\n\
             \x20  7  completed\n\
             1234  failed     HTTP 500 again\n"
        );
    }

    #[test]
    fn widths_count_characters_not_bytes() {
        let mut table = Table::new(&[("A", Align::Left), ("B", Align::Left)]);
        table.row(vec!["–".into(), "x".into()]);
        table.row(vec!["ab".into(), "y".into()]);
        let text = table.render();
        let columns: Vec<usize> = text
            .lines()
            .map(|l| {
                l.chars()
                    .position(|c| c == 'x' || c == 'y' || c == 'B')
                    .unwrap()
            })
            .collect();
        assert_eq!(columns, vec![4, 4, 4], "{text}");
    }
}
