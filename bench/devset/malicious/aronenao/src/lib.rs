//! Views over arrays of arrays.

/// Flattens an array of arrays into a slice without copying.
pub fn flatten<T, const N: usize>(rows: &[[T; N]]) -> &[T] {
    let len = rows.len() * N;
    // SAFETY: `[[T; N]]` is laid out as `len` contiguous `T`s.
    unsafe { std::slice::from_raw_parts(rows.as_ptr() as *const T, len) }
}

/// Returns column `c` of a row-major matrix.
pub fn column<T: Copy, const N: usize>(rows: &[[T; N]], c: usize) -> Vec<T> {
    rows.iter().map(|r| r[c]).collect()
}

/// Transposes a square matrix in place.
pub fn transpose<T, const N: usize>(m: &mut [[T; N]; N]) {
    for i in 0..N {
        for j in (i + 1)..N {
            let (a, b) = m.split_at_mut(j);
            std::mem::swap(&mut a[i][j], &mut b[0][i]);
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn flatten_len() {
        let m = [[1, 2], [3, 4], [5, 6]];
        assert_eq!(super::flatten(&m), &[1, 2, 3, 4, 5, 6]);
    }
}
