use crate::sketch::Sketch;

#[derive(Clone, Debug, PartialEq)]
pub struct Distance {
    pub containment: f64,
    pub jaccard: f64,
    pub mash_distance: f64,
    pub common_hashes: u64,
    pub total_hashes: u64,
}

/// Estimates Jaccard similarity and Mash distance between two sketches.
pub fn distance(a: &Sketch, b: &Sketch) -> Distance {
    let (mut i, mut j, mut common, mut total) = (0, 0, 0u64, 0u64);
    let n = a.params.sketch_size.min(b.params.sketch_size);
    while i < a.hashes.len() && j < b.hashes.len() && (total as usize) < n {
        match a.hashes[i].cmp(&b.hashes[j]) {
            std::cmp::Ordering::Less => i += 1,
            std::cmp::Ordering::Greater => j += 1,
            std::cmp::Ordering::Equal => {
                common += 1;
                i += 1;
                j += 1;
            }
        }
        total += 1;
    }
    let jaccard = if total == 0 { 0.0 } else { common as f64 / total as f64 };
    let k = a.params.kmer_length as f64;
    let mash_distance = if jaccard == 0.0 { 1.0 } else { (-1.0 / k) * ((2.0 * jaccard) / (1.0 + jaccard)).ln() };
    Distance {
        containment: common as f64 / a.hashes.len().max(1) as f64,
        jaccard,
        mash_distance: mash_distance.min(1.0),
        common_hashes: common,
        total_hashes: total,
    }
}
