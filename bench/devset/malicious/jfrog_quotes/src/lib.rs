const QUOTES: &[&str] = &[
    "Release early, release often.",
    "Make it work, make it right, make it fast.",
    "Simplicity is prerequisite for reliability.",
    "Premature optimization is the root of all evil.",
];

/// A quote chosen by `seed`.
pub fn quote(seed: usize) -> &'static str {
    QUOTES[seed % QUOTES.len()]
}

pub fn all() -> &'static [&'static str] {
    QUOTES
}
