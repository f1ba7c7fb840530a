//! Token helpers that work both inside and outside procedural macros.

use std::fmt;

/// A position in the source text a token was produced from.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct LineColumn {
    pub line: usize,
    pub column: usize,
}

/// A lightweight token with the span it came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Token {
    Ident(String, LineColumn),
    Punct(char, LineColumn),
    Literal(String, LineColumn),
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Ident(s, _) | Token::Literal(s, _) => f.write_str(s),
            Token::Punct(c, _) => write!(f, "{}", c),
        }
    }
}

/// Splits `src` into tokens, tracking the line and column of each one.
pub fn tokens(src: &str) -> Vec<Token> {
    let mut out = Vec::new();
    let mut pos = LineColumn { line: 1, column: 0 };
    let mut word = String::new();
    let mut start = pos;
    for c in src.chars() {
        if unicode_ident::is_xid_continue(c) {
            if word.is_empty() {
                start = pos;
            }
            word.push(c);
        } else {
            if !word.is_empty() {
                let w = std::mem::take(&mut word);
                if w.chars().next().map_or(false, |f| f.is_ascii_digit()) {
                    out.push(Token::Literal(w, start));
                } else {
                    out.push(Token::Ident(w, start));
                }
            }
            if !c.is_whitespace() {
                out.push(Token::Punct(c, pos));
            }
        }
        if c == '\n' {
            pos.line += 1;
            pos.column = 0;
        } else {
            pos.column += 1;
        }
    }
    if !word.is_empty() {
        out.push(Token::Ident(word, start));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_idents_and_punct() {
        let t = tokens("fn main() {}");
        assert_eq!(t.len(), 6);
        assert_eq!(t[0], Token::Ident("fn".into(), LineColumn { line: 1, column: 0 }));
    }
}
