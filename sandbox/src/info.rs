//! What a running sandbox tells other tools: `DIR/sandbox.json` (URLs, paths of every key and
//! certificate, providers, citizens) and `DIR/ikkuna.toml` (a gateway configuration acting as
//! the first provider).

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil::{self, Mode};

/// Issuer of the sandbox operator's citizen assertions.
pub const OPERATOR_ISSUER: &str = "https://identity.sandbox.ikkuna.invalid";
/// Audience of citizen assertions: the gateway.
pub const GATEWAY_AUDIENCE: &str = "ikkuna";

/// The content of `sandbox.json`. All paths are absolute.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SandboxInfo {
    /// Base URL of the DVV API (mutual TLS), without a trailing slash.
    pub dvv_url: String,
    /// Base URL of the admin API (plain HTTP; HTTPS on the same port also works).
    pub admin_url: String,
    /// CA certificate of every sandbox certificate.
    pub ca_cert: PathBuf,
    /// The operator identity service's ES256 signing key (PKCS#8 PEM).
    pub operator_signing_key: PathBuf,
    /// Its public key as JWKS.
    pub operator_jwks: PathBuf,
    /// `iss` of citizen assertions.
    pub operator_issuer: String,
    /// `aud` of citizen assertions.
    pub gateway_audience: String,
    /// The stand-in for DVV's consent service.
    pub consent_service_url: String,
    /// Server certificate for the gateway's operator API.
    pub gateway_cert: PathBuf,
    /// Its key.
    pub gateway_key: PathBuf,
    /// Where the written `ikkuna.toml` makes the gateway listen.
    pub gateway_url: String,
    /// The written `ikkuna.toml`.
    pub gateway_config: PathBuf,
    /// The gateway's admin listener (`/metrics`, `/healthz`, `/readyz`) as `ikkuna.toml` sets it.
    #[serde(default)]
    pub gateway_admin_url: String,
    /// The gateway's active audit file as `ikkuna.toml` sets it.
    #[serde(default)]
    pub audit_log: PathBuf,
    /// Every provider with its credentials, first one acting as the gateway.
    pub providers: Vec<ProviderInfo>,
    /// Every citizen with their consent towards the first provider.
    pub citizens: Vec<CitizenInfo>,
}

/// A provider and the files to act as it.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    /// Provider id.
    pub id: String,
    /// Display name.
    pub name: String,
    /// TLS client certificate.
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// ES256 key for `private_key_jwt` client assertions.
    pub assertion_key: PathBuf,
}

/// A citizen.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CitizenInfo {
    /// Identity code (a test code).
    pub id: String,
    /// Fictional name (empty for citizens created through the admin API).
    pub name: String,
    /// Consent state towards the first provider (`provider-a` in the default seed).
    pub consent: CitizenConsent,
    /// Messages in the citizen's inbox when the sandbox started (demos pick a full inbox).
    #[serde(default)]
    pub messages: usize,
}

/// A citizen's consent state towards one provider.
#[derive(Clone, Copy, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum CitizenConsent {
    /// Granted and in force.
    Active,
    /// Granted, then revoked.
    Revoked,
    /// Never granted.
    None,
}

impl SandboxInfo {
    /// Writes `sandbox.json` atomically.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(self)?;
        fsutil::write_atomic(path, text.as_bytes(), Mode::Public)
    }

    /// Reads a `sandbox.json`.
    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let text = fsutil::read_string(path)?;
        serde_json::from_str(&text)
            .map_err(|e| anyhow::anyhow!("{} is not a sandbox.json: {e}", path.display()))
    }
}

/// Everything `ikkuna.toml` needs.
pub struct GatewayConfig<'a> {
    /// Operator API listen address.
    pub listen: String,
    /// Gateway admin listen address.
    pub admin_listen: String,
    /// Operator API certificate.
    pub tls_cert: &'a Path,
    /// Its key.
    pub tls_key: &'a Path,
    /// The sandbox CA.
    pub ca_cert: &'a Path,
    /// DVV base URL.
    pub dvv_url: &'a str,
    /// The provider the gateway acts as.
    pub provider: &'a ProviderInfo,
    /// Consent service URL for citizens.
    pub consent_service_url: &'a str,
    /// Operator JWKS file.
    pub jwks: &'a Path,
    /// The gateway's own data directory.
    pub store_dir: &'a Path,
    /// The gateway's audit file.
    pub audit_file: &'a Path,
    /// The key naming citizens by pseudonym in the audit file.
    pub audit_key: &'a Path,
}

impl GatewayConfig<'_> {
    /// The TOML text, in the shape the gateway reads (`config/ikkuna.example.toml`).
    pub fn render(&self) -> String {
        let s = |v: &str| toml::Value::String(v.to_owned()).to_string();
        let p = |v: &Path| s(&v.to_string_lossy());
        format!(
            "# Written by ikkuna-sandbox: a gateway acting as {provider} against this sandbox.\n\
             # Rewritten on every sandbox start; ports are kept in ports.json.\n\
             \n\
             [server]\n\
             listen = {listen}\n\
             tls_cert = {tls_cert}\n\
             tls_key_file = {tls_key}\n\
             # client_ca = {ca}    # optional: require mTLS from the operator backend\n\
             \n\
             [admin]\n\
             listen = {admin}\n\
             \n\
             [dvv]\n\
             base_url = {dvv}\n\
             provider_id = {provider_id}\n\
             ca_cert = {ca}\n\
             client_cert = {client_cert}\n\
             client_key_file = {client_key}\n\
             assertion_key_file = {assertion_key}\n\
             consent_service_url = {consent}\n\
             \n\
             [assertions]\n\
             issuer = {issuer}\n\
             audience = {audience}\n\
             jwks_file = {jwks}\n\
             # Ten minutes, the documented maximum (the certification suite measures against it).\n\
             max_lifetime_secs = 600\n\
             \n\
             [store]\n\
             data_dir = {store}\n\
             \n\
             [audit]\n\
             file = {audit_file}\n\
             pseudonym_key_file = {audit_key}\n\
             max_file_bytes = 10485760\n\
             \n\
             # On, with room for tests and demos; production defaults are in the template.\n\
             [limits]\n\
             citizen_per_minute = 6000\n\
             citizen_burst = 600\n\
             client_per_second = 2000\n\
             client_burst = 4000\n\
             dvv_per_second = 2000\n\
             dvv_burst = 4000\n\
             \n\
             [log]\n\
             format = \"text\"\n",
            provider = self.provider.id,
            listen = s(&self.listen),
            tls_cert = p(self.tls_cert),
            tls_key = p(self.tls_key),
            ca = p(self.ca_cert),
            admin = s(&self.admin_listen),
            dvv = s(self.dvv_url),
            provider_id = s(&self.provider.id),
            client_cert = p(&self.provider.client_cert),
            client_key = p(&self.provider.client_key),
            assertion_key = p(&self.provider.assertion_key),
            consent = s(self.consent_service_url),
            issuer = s(OPERATOR_ISSUER),
            audience = s(GATEWAY_AUDIENCE),
            jwks = p(self.jwks),
            store = p(self.store_dir),
            audit_file = p(self.audit_file),
            audit_key = p(self.audit_key),
        )
    }
}
