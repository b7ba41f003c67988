//! Cedar's errors as an operator reads them: `file:line:column: message
//! (help)`. Cedar reports byte offsets in miette labels; a bad policy file
//! must stop the start naming file, line and the validator's message.

use miette::Diagnostic;

/// 1-based line and column of a byte offset in `src`.
fn line_col(src: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(src.len());
    while !src.is_char_boundary(end) {
        end -= 1;
    }
    let before = &src[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// One line per diagnostic, located by its first label when it has one.
pub fn render(file: &str, src: &str, d: &dyn Diagnostic) -> String {
    let location = d
        .labels()
        .and_then(|mut labels| labels.next())
        .map(|l| {
            let (line, col) = line_col(src, l.offset());
            format!("{file}:{line}:{col}")
        })
        .unwrap_or_else(|| file.to_string());
    let mut out = format!("{location}: {d}");
    if let Some(help) = d.help() {
        out.push_str(&format!(" ({help})"));
    }
    // Errors that gather others (a schema's parse errors) list them here.
    for related in d.related().into_iter().flatten() {
        out.push('\n');
        out.push_str(&render(file, src, related));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_become_lines_and_columns() {
        let src = "ab\ncdé\nf";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 3), (2, 1));
        assert_eq!(line_col(src, 8), (3, 1));
        assert_eq!(line_col(src, 999), (3, 2));
    }
}
