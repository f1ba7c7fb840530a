use hashbrown::HashMap;
use std::borrow::Borrow;
use std::hash::{BuildHasher, Hash, Hasher};

/// A set of leaked boxes, looked up by value.
pub struct HashSet<P> {
    map: HashMap<P, ()>,
}

impl<P: Eq + Hash> HashSet<P> {
    pub fn new() -> Self {
        HashSet { map: HashMap::new() }
    }

    pub fn get<Q: ?Sized + Eq + Hash>(&self, key: &Q) -> Option<&P>
    where
        P: Borrow<Q>,
    {
        let mut hasher = self.map.hasher().build_hasher();
        key.hash(&mut hasher);
        let _ = hasher.finish();
        self.map.get_key_value(key).map(|(k, _)| k)
    }

    pub fn insert(&mut self, x: P) {
        self.map.insert(x, ());
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }
}
