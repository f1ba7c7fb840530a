//! A wrapper around the procedural macro API of the compiler's [`proc_macro`]
//! crate. This library serves two purposes: it brings proc-macro-like
//! functionality to other contexts like build.rs and main.rs, and it makes
//! procedural macros unit testable.

#![allow(clippy::needless_doctest_main)]

#[cfg(feature = "proc-macro")]
extern crate proc_macro;

mod fallback;

use std::cmp::Ordering;
use std::fmt::{self, Debug, Display};
use std::iter::FromIterator;
use std::str::FromStr;

pub use crate::fallback::LexError;

/// An abstract stream of tokens, or more concretely a sequence of token trees.
#[derive(Clone, Default)]
pub struct TokenStream {
    inner: Vec<TokenTree>,
}

impl TokenStream {
    /// Returns an empty `TokenStream` containing no token trees.
    pub fn new() -> Self {
        TokenStream { inner: Vec::new() }
    }

    /// Checks if this `TokenStream` is empty.
    pub fn is_empty(&self) -> bool {
        self.inner.is_empty()
    }
}

impl FromStr for TokenStream {
    type Err = LexError;

    fn from_str(src: &str) -> Result<TokenStream, LexError> {
        fallback::tokenize(src)
    }
}

impl Extend<TokenTree> for TokenStream {
    fn extend<I: IntoIterator<Item = TokenTree>>(&mut self, streams: I) {
        self.inner.extend(streams);
    }
}

impl FromIterator<TokenTree> for TokenStream {
    fn from_iter<I: IntoIterator<Item = TokenTree>>(streams: I) -> Self {
        TokenStream { inner: streams.into_iter().collect() }
    }
}

impl IntoIterator for TokenStream {
    type Item = TokenTree;
    type IntoIter = std::vec::IntoIter<TokenTree>;

    fn into_iter(self) -> Self::IntoIter {
        self.inner.into_iter()
    }
}

impl Display for TokenStream {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        for (i, tt) in self.inner.iter().enumerate() {
            if i > 0 {
                f.write_str(" ")?;
            }
            Display::fmt(tt, f)?;
        }
        Ok(())
    }
}

impl Debug for TokenStream {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("TokenStream ")?;
        f.debug_list().entries(self.inner.iter()).finish()
    }
}

/// A region of source code, along with macro expansion information.
#[derive(Copy, Clone, Debug, Default, PartialEq, Eq)]
pub struct Span {
    lo: u32,
    hi: u32,
}

impl Span {
    pub fn call_site() -> Self {
        Span { lo: 0, hi: 0 }
    }

    pub fn mixed_site() -> Self {
        Span::call_site()
    }

    pub fn join(&self, other: Span) -> Option<Span> {
        Some(Span { lo: self.lo.min(other.lo), hi: self.hi.max(other.hi) })
    }
}

/// A single token or a delimited sequence of token trees (e.g. `[1, (), ..]`).
#[derive(Clone)]
pub enum TokenTree {
    Group(Group),
    Ident(Ident),
    Punct(Punct),
    Literal(Literal),
}

impl Display for TokenTree {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        match self {
            TokenTree::Group(t) => Display::fmt(t, f),
            TokenTree::Ident(t) => Display::fmt(t, f),
            TokenTree::Punct(t) => Display::fmt(t, f),
            TokenTree::Literal(t) => Display::fmt(t, f),
        }
    }
}

impl Debug for TokenTree {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        Display::fmt(self, f)
    }
}

#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub enum Delimiter {
    Parenthesis,
    Brace,
    Bracket,
    None,
}

#[derive(Clone)]
pub struct Group {
    delimiter: Delimiter,
    stream: TokenStream,
    span: Span,
}

impl Group {
    pub fn new(delimiter: Delimiter, stream: TokenStream) -> Self {
        Group { delimiter, stream, span: Span::call_site() }
    }

    pub fn delimiter(&self) -> Delimiter {
        self.delimiter
    }

    pub fn stream(&self) -> TokenStream {
        self.stream.clone()
    }

    pub fn span(&self) -> Span {
        self.span
    }
}

impl Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        let (open, close) = match self.delimiter {
            Delimiter::Parenthesis => ("(", ")"),
            Delimiter::Brace => ("{ ", "}"),
            Delimiter::Bracket => ("[", "]"),
            Delimiter::None => ("", ""),
        };
        f.write_str(open)?;
        Display::fmt(&self.stream, f)?;
        f.write_str(close)
    }
}

#[derive(Copy, Clone, Debug, Eq, PartialEq)]
pub enum Spacing {
    Alone,
    Joint,
}

#[derive(Clone)]
pub struct Punct {
    ch: char,
    spacing: Spacing,
    span: Span,
}

impl Punct {
    pub fn new(ch: char, spacing: Spacing) -> Self {
        Punct { ch, spacing, span: Span::call_site() }
    }

    pub fn as_char(&self) -> char {
        self.ch
    }

    pub fn spacing(&self) -> Spacing {
        self.spacing
    }
}

impl Display for Punct {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        Display::fmt(&self.ch, f)
    }
}

#[derive(Clone, Eq, PartialEq)]
pub struct Ident {
    sym: String,
    span: Span,
}

impl Ident {
    pub fn new(string: &str, span: Span) -> Self {
        Ident { sym: string.to_owned(), span }
    }

    pub fn span(&self) -> Span {
        self.span
    }
}

impl PartialOrd for Ident {
    fn partial_cmp(&self, other: &Ident) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ident {
    fn cmp(&self, other: &Ident) -> Ordering {
        self.sym.cmp(&other.sym)
    }
}

impl Display for Ident {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.sym)
    }
}

#[derive(Clone)]
pub struct Literal {
    repr: String,
    span: Span,
}

macro_rules! suffixed_int_literals {
    ($($name:ident => $kind:ident,)*) => ($(
        pub fn $name(n: $kind) -> Literal {
            Literal { repr: format!(concat!("{}", stringify!($kind)), n), span: Span::call_site() }
        }
    )*)
}

impl Literal {
    suffixed_int_literals! {
        u8_suffixed => u8,
        u16_suffixed => u16,
        u32_suffixed => u32,
        u64_suffixed => u64,
        usize_suffixed => usize,
        i32_suffixed => i32,
        i64_suffixed => i64,
    }

    pub fn string(t: &str) -> Literal {
        Literal { repr: format!("{:?}", t), span: Span::call_site() }
    }

    pub fn span(&self) -> Span {
        self.span
    }
}

impl Display for Literal {
    fn fmt(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.repr)
    }
}
