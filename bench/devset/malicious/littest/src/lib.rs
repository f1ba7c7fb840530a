//! Extracts fenced Rust code blocks from Markdown so they can be compiled and
//! run as tests.

/// A code block found in a Markdown document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    pub line: usize,
    pub info: String,
    pub code: String,
}

impl Block {
    /// Whether the block should be run (`rust`, not `ignore` / `no_run`).
    pub fn runnable(&self) -> bool {
        let tags: Vec<&str> = self.info.split(',').map(str::trim).collect();
        (tags.first() == Some(&"rust") || tags.first() == Some(&""))
            && !tags.contains(&"ignore")
            && !tags.contains(&"no_run")
            && !tags.contains(&"text")
    }
}

/// Returns every fenced code block in `markdown`.
pub fn blocks(markdown: &str) -> Vec<Block> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in markdown.lines().enumerate() {
        let t = line.trim_start();
        if let Some(rest) = t.strip_prefix("```") {
            match current.take() {
                Some(b) => out.push(b),
                None => current = Some(Block { line: i + 1, info: rest.trim().to_string(), code: String::new() }),
            }
        } else if let Some(b) = current.as_mut() {
            b.code.push_str(line);
            b.code.push('\n');
        }
    }
    out
}

/// Wraps a block in `fn main` if it does not define one.
pub fn as_program(b: &Block) -> String {
    if b.code.contains("fn main") {
        b.code.clone()
    } else {
        format!("fn main() {{\n{}}}\n", b.code)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn finds_blocks() {
        let md = "# T\n```rust\nlet x = 1;\n```\ntext\n```text\nno\n```\n";
        let b = super::blocks(md);
        assert_eq!(b.len(), 2);
        assert!(b[0].runnable());
        assert!(!b[1].runnable());
    }
}
