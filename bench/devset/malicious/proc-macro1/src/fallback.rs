use crate::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use std::fmt;

/// Error returned from `TokenStream::from_str`.
#[derive(Debug)]
pub struct LexError {
    pub(crate) span: Span,
}

impl fmt::Display for LexError {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("cannot parse string into token stream")
    }
}

pub(crate) fn tokenize(src: &str) -> Result<TokenStream, LexError> {
    let mut stack: Vec<(Delimiter, Vec<TokenTree>)> = vec![(Delimiter::None, Vec::new())];
    let mut chars = src.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {}
            '(' | '[' | '{' => {
                let d = match c {
                    '(' => Delimiter::Parenthesis,
                    '[' => Delimiter::Bracket,
                    _ => Delimiter::Brace,
                };
                stack.push((d, Vec::new()));
            }
            ')' | ']' | '}' => {
                let (d, inner) = stack.pop().ok_or(LexError { span: Span::call_site() })?;
                let group = Group::new(d, inner.into_iter().collect());
                match stack.last_mut() {
                    Some(top) => top.1.push(TokenTree::Group(group)),
                    None => return Err(LexError { span: Span::call_site() }),
                }
            }
            '"' => {
                let mut s = String::new();
                for n in chars.by_ref() {
                    if n == '"' {
                        break;
                    }
                    s.push(n);
                }
                push(&mut stack, TokenTree::Literal(Literal::string(&s)))?;
            }
            c if c.is_alphanumeric() || c == '_' => {
                let mut s = c.to_string();
                while let Some(&n) = chars.peek() {
                    if n.is_alphanumeric() || n == '_' {
                        s.push(n);
                        chars.next();
                    } else {
                        break;
                    }
                }
                push(&mut stack, TokenTree::Ident(Ident::new(&s, Span::call_site())))?;
            }
            c => {
                let spacing = match chars.peek() {
                    Some(n) if n.is_ascii_punctuation() => Spacing::Joint,
                    _ => Spacing::Alone,
                };
                push(&mut stack, TokenTree::Punct(Punct::new(c, spacing)))?;
            }
        }
    }
    match stack.pop() {
        Some((Delimiter::None, trees)) if stack.is_empty() => Ok(trees.into_iter().collect()),
        _ => Err(LexError { span: Span::call_site() }),
    }
}

fn push(stack: &mut [(Delimiter, Vec<TokenTree>)], tt: TokenTree) -> Result<(), LexError> {
    match stack.last_mut() {
        Some(top) => {
            top.1.push(tt);
            Ok(())
        }
        None => Err(LexError { span: Span::call_site() }),
    }
}
