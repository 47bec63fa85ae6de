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

/// The needle and the forms an implementation might store it in: hex (both cases) and base64
/// (standard and URL-safe) at each of the three alignments. Each form is the part of the
/// encoding that depends only on the needle, so it is found wherever the needle sat in the
/// encoded data.
pub fn encoded_forms(needle: &str) -> Vec<(String, String)> {
    use base64::engine::general_purpose::{STANDARD, URL_SAFE};
    use base64::Engine;
    let bytes = needle.as_bytes();
    let mut out = vec![
        ("hex".to_owned(), hex::encode(bytes)),
        ("hex".to_owned(), hex::encode_upper(bytes)),
    ];
    for (name, engine) in [("base64", &STANDARD), ("base64url", &URL_SAFE)] {
        for pad in 0..3usize {
            let mut data = vec![0u8; pad];
            data.extend_from_slice(bytes);
            let text = engine.encode(&data);
            // Characters covering only the padding, or the needle's ragged end, are dropped.
            let skip = if pad > 0 { 4 } else { 0 };
            let full = (data.len() / 3) * 4;
            if full > skip + 8 {
                out.push((name.to_owned(), text[skip..full].to_owned()));
            }
        }
    }
    out
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

/// Labels of the needles found in one file, following a symbolic link (such as
/// `/proc/PID/fd/N`, which opens the file the descriptor refers to, unlinked or not).
pub fn scan_file(path: &Path, needles: &[(String, String)]) -> Vec<String> {
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

    #[test]
    fn encoded_forms_are_found_at_every_alignment() {
        use base64::Engine;
        let needle = "CERTCANARYabcdef-normal-body";
        let forms = encoded_forms(needle);
        for prefix in ["", "x", "xy", "xyz"] {
            let data = format!("{prefix}Body of normal: {needle} and more");
            for encoded in [
                base64::engine::general_purpose::STANDARD.encode(&data),
                base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&data),
                hex::encode(&data),
            ] {
                assert!(
                    !scan_bytes(encoded.as_bytes(), &forms).is_empty(),
                    "{prefix:?}: {encoded}"
                );
            }
        }
        assert!(scan_bytes(b"nothing here", &forms).is_empty());
    }
}
