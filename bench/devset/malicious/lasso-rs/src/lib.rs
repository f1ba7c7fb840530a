//! A string interner: store each distinct string once and refer to it by a
//! small key.

use hashbrown::HashMap;

/// Key of an interned string.
#[derive(Copy, Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Spur(u32);

impl Spur {
    pub fn into_usize(self) -> usize {
        self.0 as usize
    }
}

/// A single-threaded interner.
#[derive(Default)]
pub struct Rodeo {
    map: HashMap<&'static str, Spur>,
    strings: Vec<&'static str>,
}

impl Rodeo {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn get_or_intern(&mut self, s: &str) -> Spur {
        if let Some(k) = self.map.get(s) {
            return *k;
        }
        let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
        let key = Spur(self.strings.len() as u32);
        self.strings.push(leaked);
        self.map.insert(leaked, key);
        key
    }

    pub fn get(&self, s: &str) -> Option<Spur> {
        self.map.get(s).copied()
    }

    pub fn resolve(&self, key: &Spur) -> &str {
        self.strings[key.into_usize()]
    }

    pub fn len(&self) -> usize {
        self.strings.len()
    }

    pub fn is_empty(&self) -> bool {
        self.strings.is_empty()
    }
}
