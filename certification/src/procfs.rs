//! Looking at a running gateway from outside through Linux's `/proc`: which process listens on a
//! port, and which files it holds open — including files already unlinked, which `/proc/PID/fd`
//! still opens. Nothing here needs the gateway's cooperation.

use std::path::PathBuf;

/// One descriptor of the process that refers to a regular file.
#[derive(Clone, Debug)]
pub struct OpenFile {
    /// `/proc/PID/fd/N`: opening it reads the file even when it was unlinked.
    pub handle: PathBuf,
    /// Where the descriptor points (`… (deleted)` for an unlinked file).
    pub target: String,
}

/// The process listening on TCP `port` (IPv4 or IPv6), if `/proc` shows it to us.
pub fn listener_pid(port: u16) -> Option<u32> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local_address is HEX_IP:HEX_PORT, st 0A is LISTEN, inode is field 9.
            if f.len() > 9
                && f[3] == "0A"
                && f[1]
                    .rsplit(':')
                    .next()
                    .and_then(|p| u16::from_str_radix(p, 16).ok())
                    == Some(port)
            {
                inodes.push(format!("socket:[{}]", f[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    let procs = std::fs::read_dir("/proc").ok()?;
    for p in procs.flatten() {
        let Some(pid) = p.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else {
            continue;
        };
        let Ok(fds) = std::fs::read_dir(p.path().join("fd")) else {
            continue;
        };
        for fd in fds.flatten() {
            if let Ok(t) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| t.to_string_lossy() == i.as_str()) {
                    return Some(pid);
                }
            }
        }
    }
    None
}

/// The regular files process `pid` has open (sockets, pipes, anonymous inodes and devices left
/// out). `None` when `/proc/PID/fd` cannot be read.
pub fn open_files(pid: u32) -> Option<Vec<OpenFile>> {
    let dir = PathBuf::from(format!("/proc/{pid}/fd"));
    let entries = std::fs::read_dir(&dir).ok()?;
    let mut out = Vec::new();
    for e in entries.flatten() {
        let Ok(target) = std::fs::read_link(e.path()) else {
            continue;
        };
        let target = target.to_string_lossy().into_owned();
        if !target.starts_with('/') || target.starts_with("/dev/") || target.starts_with("/proc/") {
            continue;
        }
        // A regular file (the handle follows the descriptor, so unlinked files count too).
        if std::fs::metadata(e.path())
            .map(|m| m.is_file())
            .unwrap_or(false)
        {
            out.push(OpenFile {
                handle: e.path(),
                target,
            });
        }
    }
    Some(out)
}

/// The executable of process `pid`.
pub fn exe(pid: u32) -> Option<PathBuf> {
    std::fs::read_link(format!("/proc/{pid}/exe")).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_our_own_listener_and_an_unlinked_open_file() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(listener_pid(port), Some(std::process::id()));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spill");
        std::fs::write(&path, b"CANARY-spill").unwrap();
        let _held = std::fs::File::open(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        let files = open_files(std::process::id()).unwrap();
        let spill = files
            .iter()
            .find(|f| f.target.contains("spill"))
            .expect("the unlinked file is still listed");
        assert!(spill.target.ends_with("(deleted)"));
        assert_eq!(std::fs::read(&spill.handle).unwrap(), b"CANARY-spill");
    }
}
