use crate::boxedset::HashSet;
use std::any::{Any, TypeId};
use std::fmt::{Debug, Display, Formatter, Pointer};
use std::hash::{Hash, Hasher};
use std::ops::Deref;
use std::sync::{Mutex, OnceLock};

/// A pointer to an interned object.
///
/// The interned object will be held in memory indefinitely. On the
/// plus side, this means that lifetime issues are simple when using
/// `Intern`.
pub struct Intern<T: 'static + ?Sized> {
    pointer: &'static T,
}

impl<T: ?Sized> Clone for Intern<T> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<T: ?Sized> Copy for Intern<T> {}

type Container = Mutex<Vec<(TypeId, Box<dyn Any + Send>)>>;

fn registry() -> &'static Container {
    static REG: OnceLock<Container> = OnceLock::new();
    REG.get_or_init(|| Mutex::new(Vec::new()))
}

fn with_set<T: Eq + Hash + Send + Sync + 'static, R>(f: impl FnOnce(&mut HashSet<&'static T>) -> R) -> R {
    let mut reg = registry().lock().unwrap();
    let id = TypeId::of::<T>();
    let pos = match reg.iter().position(|(t, _)| *t == id) {
        Some(p) => p,
        None => {
            reg.push((id, Box::new(HashSet::<&'static T>::new())));
            reg.len() - 1
        }
    };
    let set = reg[pos].1.downcast_mut::<HashSet<&'static T>>().unwrap();
    f(set)
}

impl<T: Eq + Hash + Send + Sync + 'static> Intern<T> {
    /// Intern a value. If this value has not previously been
    /// interned, then `new` will allocate a spot for the value on the
    /// heap. Otherwise, it will return a pointer to the object
    /// previously allocated.
    pub fn new(val: T) -> Intern<T> {
        with_set(|m: &mut HashSet<&'static T>| {
            if let Some(&b) = m.get(&val) {
                return Intern { pointer: b };
            }
            let p: &'static T = Box::leak(Box::new(val));
            m.insert(p);
            Intern { pointer: p }
        })
    }

    /// Get a long-lived reference to the data pointed to by an `Intern`.
    pub fn as_ref(self) -> &'static T {
        self.pointer
    }

    /// See how many objects have been interned.
    pub fn num_objects_interned() -> usize {
        with_set(|m: &mut HashSet<&'static T>| m.len())
    }
}

impl<T: ?Sized> Deref for Intern<T> {
    type Target = T;
    fn deref(&self) -> &T {
        self.pointer
    }
}

impl<T: ?Sized> PartialEq for Intern<T> {
    fn eq(&self, other: &Self) -> bool {
        std::ptr::eq(self.pointer as *const T as *const u8, other.pointer as *const T as *const u8)
    }
}

impl<T: ?Sized> Eq for Intern<T> {}

impl<T: ?Sized> Hash for Intern<T> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        (self.pointer as *const T as *const u8 as usize).hash(state);
    }
}

impl<T: Debug + ?Sized> Debug for Intern<T> {
    fn fmt(&self, f: &mut Formatter) -> std::fmt::Result {
        Debug::fmt(self.pointer, f)
    }
}

impl<T: Display + ?Sized> Display for Intern<T> {
    fn fmt(&self, f: &mut Formatter) -> std::fmt::Result {
        self.pointer.fmt(f)
    }
}

impl<T: ?Sized> Pointer for Intern<T> {
    fn fmt(&self, f: &mut Formatter) -> std::fmt::Result {
        Pointer::fmt(&self.pointer, f)
    }
}

#[test]
fn eq_string() {
    assert_eq!(Intern::new("hello"), Intern::new("hello"));
    assert_ne!(Intern::new("goodbye"), Intern::new("farewell"));
}
