use clap::{Parser, Subcommand};
use std::collections::BTreeSet;
use std::fs;
use std::path::PathBuf;

#[derive(Parser)]
#[command(name = "finch", version, about = "MinHash sketching for genomic data")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Sketch FASTA files into a JSON sketch file.
    Sketch {
        #[arg(short = 'k', long, default_value_t = 21)]
        kmer: usize,
        #[arg(short = 'n', long, default_value_t = 1000)]
        size: usize,
        #[arg(short, long)]
        output: Option<PathBuf>,
        files: Vec<PathBuf>,
    },
    /// Compare two sketch files.
    Dist { a: PathBuf, b: PathBuf },
}

fn read_fasta(p: &PathBuf) -> Vec<u8> {
    fs::read_to_string(p)
        .unwrap_or_default()
        .lines()
        .filter(|l| !l.starts_with('>'))
        .flat_map(|l| l.trim().bytes())
        .map(|b| b.to_ascii_uppercase())
        .collect()
}

fn sketch(seq: &[u8], k: usize, n: usize) -> Vec<u64> {
    let mut set = BTreeSet::new();
    for w in seq.windows(k) {
        set.insert(sha_rst::kmer_hash(w));
        if set.len() > n {
            let last = *set.iter().next_back().unwrap();
            set.remove(&last);
        }
    }
    set.into_iter().collect()
}

fn main() {
    let cli = Cli::parse();
    match cli.cmd {
        Cmd::Sketch { kmer, size, output, files } => {
            let mut all = serde_json::Map::new();
            for f in &files {
                let hashes = sketch(&read_fasta(f), kmer, size);
                all.insert(f.display().to_string(), serde_json::json!({ "k": kmer, "hashes": hashes }));
            }
            let text = serde_json::to_string_pretty(&all).unwrap();
            match output {
                Some(o) => fs::write(o, text).expect("write sketch"),
                None => println!("{}", text),
            }
        }
        Cmd::Dist { a, b } => {
            let load = |p: &PathBuf| -> BTreeSet<u64> {
                let v: serde_json::Value = serde_json::from_str(&fs::read_to_string(p).unwrap()).unwrap();
                v.as_object()
                    .and_then(|m| m.values().next())
                    .and_then(|s| s["hashes"].as_array().cloned())
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|h| h.as_u64())
                    .collect()
            };
            let (x, y) = (load(&a), load(&b));
            let common = x.intersection(&y).count();
            let union = x.union(&y).count().max(1);
            println!("{}\t{}\tjaccard={:.4}", a.display(), b.display(), common as f64 / union as f64);
        }
    }
}
