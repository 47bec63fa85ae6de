//! The ports a data directory uses, chosen once and kept in `DIR/ports.json`, so that the
//! `ikkuna.toml` written there keeps pointing at the right places after a restart.

use std::net::{Ipv4Addr, SocketAddr, TcpListener as StdTcpListener};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, Mode};

/// The persisted ports (0 = not chosen yet).
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase", default)]
pub struct Ports {
    /// DVV listener.
    pub dvv: u16,
    /// Admin listener.
    pub admin: u16,
    /// The gateway's operator API (written into `ikkuna.toml`).
    pub gateway: u16,
    /// The gateway's admin listener (written into `ikkuna.toml`).
    pub gateway_admin: u16,
}

impl Ports {
    /// Reads `path`, or all zeros when it does not exist.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.exists() {
            return Ok(Self::default());
        }
        let text = fsutil::read_string(path)?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not valid: {e}", path.display()))
    }

    /// Writes `path`.
    pub fn save(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        fsutil::write_atomic(path, text.as_bytes(), Mode::Public)
    }
}

/// The address to bind: the explicit one, else the remembered loopback port, else any free
/// loopback port.
pub fn choose(explicit: Option<SocketAddr>, remembered: u16) -> SocketAddr {
    explicit.unwrap_or(SocketAddr::from((Ipv4Addr::LOCALHOST, remembered)))
}

/// A free loopback port for a listener this process does not open itself (the gateway's).
/// Ports in `avoid` are never returned.
pub fn free_loopback_port(avoid: &[u16]) -> anyhow::Result<u16> {
    for _ in 0..16 {
        let probe = StdTcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
        let port = probe.local_addr()?.port();
        if !avoid.contains(&port) {
            return Ok(port);
        }
    }
    anyhow::bail!("no free loopback port found")
}
