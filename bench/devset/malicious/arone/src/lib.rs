//! Fixed-size array helpers.

/// Splits an array reference into two halves at `N`.
pub fn split<T, const L: usize, const N: usize>(a: &[T; L]) -> (&[T], &[T]) {
    a.split_at(N.min(L))
}

/// Copies the first `N` items of a slice into an array, if there are enough.
pub fn take<T: Copy + Default, const N: usize>(s: &[T]) -> Option<[T; N]> {
    if s.len() < N {
        return None;
    }
    let mut out = [T::default(); N];
    out.copy_from_slice(&s[..N]);
    Some(out)
}

/// Joins two arrays into a vector.
pub fn join<T: Clone, const A: usize, const B: usize>(a: &[T; A], b: &[T; B]) -> Vec<T> {
    let mut v = Vec::with_capacity(A + B);
    v.extend_from_slice(a);
    v.extend_from_slice(b);
    v
}

#[cfg(test)]
mod tests {
    #[test]
    fn take_works() {
        let v = [1u8, 2, 3, 4];
        assert_eq!(super::take::<u8, 2>(&v), Some([1, 2]));
        assert_eq!(super::take::<u8, 8>(&v), None);
    }
}
