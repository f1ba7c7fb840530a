//! Membership sets for values below 256, stored in four machine words.

/// A set of `u8` values.
#[derive(Clone, Copy, Default, PartialEq, Eq, Hash, Debug)]
pub struct TinySet {
    words: [u64; 4],
}

impl TinySet {
    /// An empty set.
    pub const fn new() -> Self {
        TinySet { words: [0; 4] }
    }

    /// Adds `v`; returns whether it was newly inserted.
    pub fn insert(&mut self, v: u8) -> bool {
        let (w, b) = (v as usize / 64, v % 64);
        let had = self.words[w] & (1 << b) != 0;
        self.words[w] |= 1 << b;
        !had
    }

    /// Removes `v`; returns whether it was present.
    pub fn remove(&mut self, v: u8) -> bool {
        let (w, b) = (v as usize / 64, v % 64);
        let had = self.words[w] & (1 << b) != 0;
        self.words[w] &= !(1 << b);
        had
    }

    /// Whether `v` is in the set.
    pub fn contains(&self, v: u8) -> bool {
        self.words[v as usize / 64] & (1 << (v % 64)) != 0
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        self.words.iter().map(|w| w.count_ones() as usize).sum()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.words.iter().all(|w| *w == 0)
    }

    /// Members in increasing order.
    pub fn iter(&self) -> impl Iterator<Item = u8> + '_ {
        (0u16..256).map(|v| v as u8).filter(move |v| self.contains(*v))
    }
}

impl FromIterator<u8> for TinySet {
    fn from_iter<I: IntoIterator<Item = u8>>(iter: I) -> Self {
        let mut s = TinySet::new();
        for v in iter {
            s.insert(v);
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::TinySet;

    #[test]
    fn insert_remove() {
        let mut s = TinySet::new();
        assert!(s.insert(200));
        assert!(!s.insert(200));
        assert!(s.contains(200));
        assert_eq!(s.len(), 1);
        assert!(s.remove(200));
        assert!(s.is_empty());
    }
}
