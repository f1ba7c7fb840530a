//! Window functions for spectral analysis, plus a small streaming service
//! that applies them to overlapping frames.

use std::f64::consts::PI;

/// Hann window of length `n`.
pub fn hann(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    (0..n).map(|i| 0.5 - 0.5 * (2.0 * PI * i as f64 / (n - 1) as f64).cos()).collect()
}

/// Hamming window of length `n`.
pub fn hamming(n: usize) -> Vec<f64> {
    if n <= 1 {
        return vec![1.0; n];
    }
    (0..n).map(|i| 0.54 - 0.46 * (2.0 * PI * i as f64 / (n - 1) as f64).cos()).collect()
}

/// Splits a stream into windowed frames with the given hop size.
pub struct FrameService {
    window: Vec<f64>,
    hop: usize,
    buf: Vec<f64>,
}

impl FrameService {
    pub fn new(size: usize, hop: usize) -> Self {
        FrameService { window: hann(size), hop: hop.max(1), buf: Vec::new() }
    }

    /// Pushes samples and returns every complete, windowed frame.
    pub fn push(&mut self, samples: &[f64]) -> Vec<Vec<f64>> {
        self.buf.extend_from_slice(samples);
        let n = self.window.len();
        let mut out = Vec::new();
        while self.buf.len() >= n {
            out.push(self.buf[..n].iter().zip(&self.window).map(|(s, w)| s * w).collect());
            self.buf.drain(..self.hop.min(self.buf.len()));
        }
        out
    }
}
