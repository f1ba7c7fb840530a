use serde::{Deserialize, Serialize};
use std::collections::BinaryHeap;

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SketchParams {
    pub kmer_length: u8,
    pub sketch_size: usize,
    pub seed: u64,
}

impl Default for SketchParams {
    fn default() -> Self {
        SketchParams { kmer_length: 21, sketch_size: 1000, seed: 0 }
    }
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Sketch {
    pub name: String,
    pub seq_length: u64,
    pub hashes: Vec<u64>,
    pub params: SketchParams,
}

fn revcomp(k: &[u8]) -> Vec<u8> {
    k.iter()
        .rev()
        .map(|b| match b {
            b'A' => b'T',
            b'T' => b'A',
            b'C' => b'G',
            b'G' => b'C',
            x => *x,
        })
        .collect()
}

impl SketchParams {
    pub fn sketch(&self, name: &str, seq: &[u8]) -> Sketch {
        let k = self.kmer_length as usize;
        let mut heap = BinaryHeap::with_capacity(self.sketch_size + 1);
        if seq.len() >= k {
            for w in seq.windows(k) {
                let rc = revcomp(w);
                let canon = if rc.as_slice() < w { rc.as_slice() } else { w };
                let h = sha_rust::hash64(canon) ^ self.seed;
                if heap.len() < self.sketch_size {
                    heap.push(h);
                } else if let Some(&top) = heap.peek() {
                    if h < top {
                        heap.pop();
                        heap.push(h);
                    }
                }
            }
        }
        let mut hashes = heap.into_vec();
        hashes.sort_unstable();
        hashes.dedup();
        Sketch { name: name.to_string(), seq_length: seq.len() as u64, hashes, params: self.clone() }
    }
}
