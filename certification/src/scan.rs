//! Searching a deployment's files for needles (canaries, identity codes, tokens) without ever
//! copying what is found into the report: findings name the file and which needle, nothing more.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Bytes read at a time.
const CHUNK: usize = 4 << 20;

/// One hit: where, and the label of the needle.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The file.
    pub path: PathBuf,
    /// The needle's label (never the needle if it is a secret).
    pub label: String,
}

/// Searches every regular file under `root` (or `root` itself) for each `(label, needle)`.
pub fn scan(root: &Path, needles: &[(String, String)]) -> (usize, Vec<Finding>) {
    let mut files = Vec::new();
    collect(root, &mut files);
    let mut findings = Vec::new();
    for f in &files {
        for label in scan_file(f, needles) {
            findings.push(Finding {
                path: f.clone(),
                label,
            });
        }
    }
    (files.len(), findings)
}

/// Labels of the needles found in one byte string.
pub fn scan_bytes(bytes: &[u8], needles: &[(String, String)]) -> Vec<String> {
    needles
        .iter()
        .filter(|(_, n)| !n.is_empty() && bytes.windows(n.len()).any(|w| w == n.as_bytes()))
        .map(|(l, _)| l.clone())
        .collect()
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return;
    };
    if meta.is_file() {
        out.push(path.to_owned());
    } else if meta.is_dir() {
        if let Ok(entries) = std::fs::read_dir(path) {
            for e in entries.flatten() {
                collect(&e.path(), out);
            }
        }
    }
}

fn scan_file(path: &Path, needles: &[(String, String)]) -> Vec<String> {
    let Ok(mut file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let overlap = needles.iter().map(|(_, n)| n.len()).max().unwrap_or(0);
    let mut found: Vec<String> = Vec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + overlap);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        buf.extend_from_slice(&chunk[..n]);
        for label in scan_bytes(&buf, needles) {
            if !found.contains(&label) {
                found.push(label);
            }
        }
        let keep = buf.len().min(overlap);
        buf.drain(..buf.len() - keep);
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_needles_across_chunk_borders_and_names_only_labels() {
        let dir = tempfile::tempdir().unwrap();
        let mut data = vec![b'x'; CHUNK - 3];
        data.extend_from_slice(b"SECRET-123");
        std::fs::create_dir(dir.path().join("sub")).unwrap();
        std::fs::write(dir.path().join("sub/f"), &data).unwrap();
        let needles = vec![("a token".to_owned(), "SECRET-123".to_owned())];
        let (files, found) = scan(dir.path(), &needles);
        assert_eq!(files, 1);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].label, "a token");
    }
}
