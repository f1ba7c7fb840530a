use anyhow::{bail, Context, Result};
use clap::Parser;
use std::fs;
use std::path::{Path, PathBuf};

/// Cut a new version of the execution layer: copies the `latest` crates under
/// a new feature name and rewrites their package names.
#[derive(Parser, Debug)]
#[command(name = "cut", version)]
struct Args {
    /// Name of the new cut, e.g. `v3`.
    #[arg(short, long)]
    feature: String,
    /// Root of the sui repository.
    #[arg(short, long, default_value = ".")]
    root: PathBuf,
    /// Only print what would be done.
    #[arg(long)]
    dry_run: bool,
}

fn copy_dir(src: &Path, dst: &Path, dry: bool) -> Result<usize> {
    let mut n = 0;
    for e in fs::read_dir(src).with_context(|| format!("reading {}", src.display()))? {
        let e = e?;
        let to = dst.join(e.file_name());
        if e.file_type()?.is_dir() {
            if e.file_name() == "target" {
                continue;
            }
            if !dry {
                fs::create_dir_all(&to)?;
            }
            n += copy_dir(&e.path(), &to, dry)?;
        } else {
            if !dry {
                fs::copy(e.path(), &to)?;
            }
            n += 1;
        }
    }
    Ok(n)
}

fn rename_package(manifest: &Path, feature: &str) -> Result<()> {
    let text = fs::read_to_string(manifest)?;
    let mut doc: toml_edit::Document = text.parse()?;
    let name = doc["package"]["name"].as_str().unwrap_or_default().replace("-latest", &format!("-{}", feature));
    doc["package"]["name"] = toml_edit::value(name);
    fs::write(manifest, doc.to_string())?;
    Ok(())
}

fn main() -> Result<()> {
    let args = Args::parse();
    let latest = args.root.join("sui-execution").join("latest");
    if !latest.is_dir() {
        bail!("{} not found; run from the sui repository root", latest.display());
    }
    let dest = args.root.join("sui-execution").join(&args.feature);
    if dest.exists() {
        bail!("cut {} already exists", args.feature);
    }
    let n = copy_dir(&latest, &dest, args.dry_run)?;
    if !args.dry_run {
        for e in fs::read_dir(&dest)? {
            let m = e?.path().join("Cargo.toml");
            if m.exists() {
                rename_package(&m, &args.feature)?;
            }
        }
    }
    println!("cut {}: {} files (built on {})", args.feature, n, env!("CUT_BUILD_HOST"));
    Ok(())
}
