//! This crate provides Pkl language support for the [tree-sitter] parsing
//! library.

use tree_sitter_language::LanguageFn;

extern "C" {
    fn tree_sitter_pkl() -> *const ();
}

/// The tree-sitter [`LanguageFn`] for this grammar.
pub const LANGUAGE: LanguageFn = unsafe { LanguageFn::from_raw(tree_sitter_pkl) };

/// The content of the `node-types.json` file for this grammar.
pub const NODE_TYPES: &str = "[]";

#[cfg(test)]
mod tests {
    #[test]
    fn test_can_load_grammar() {
        let _ = super::LANGUAGE;
    }
}
