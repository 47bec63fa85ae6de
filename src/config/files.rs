//! Stage three: the files the configuration names. Each is read once and checked for what it
//! must hold (certificates parse, keys are private keys, the assertion key can sign ES256, the JWKS
//! is a key set, the data directory is or can be made writable); secrets are loaded here. Nothing
//! is created or written: `check-config` runs exactly this.
//! Reasons name the file and the problem, never the file's content.

use std::path::Path;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::error::{ConfigError, ConfigErrors};
use super::secret::SecretFile;
use super::{Config, JwksSource};

/// Checks every file of `config` and loads its secrets, reporting every problem found.
pub(crate) fn check(config: &mut Config) -> Result<(), ConfigErrors> {
    let mut errors = Vec::new();
    let mut report = |field: &'static str, path: &Path, result: Result<(), String>| {
        if let Err(reason) = result {
            errors.push(ConfigError::File {
                field,
                path: path.to_path_buf(),
                reason,
            });
        }
    };

    let server = &mut config.server;
    report(
        "server.tls_cert",
        &server.tls_cert,
        certificates(&server.tls_cert),
    );
    let result = private_key(&mut server.tls_key);
    report("server.tls_key_file", server.tls_key.path(), result);
    if let Some(ca) = &server.client_ca {
        report("server.client_ca", ca, certificates(ca));
    }

    let dvv = &mut config.dvv;
    report("dvv.ca_cert", &dvv.ca_cert, certificates(&dvv.ca_cert));
    report(
        "dvv.client_cert",
        &dvv.client_cert,
        certificates(&dvv.client_cert),
    );
    let result = private_key(&mut dvv.client_key);
    report("dvv.client_key_file", dvv.client_key.path(), result);
    let result = assertion_key(&mut dvv.assertion_key);
    report("dvv.assertion_key_file", dvv.assertion_key.path(), result);

    match &config.assertions.jwks {
        JwksSource::File(path) => report("assertions.jwks_file", path, jwks(path)),
        JwksSource::Url { ca: Some(ca), .. } => report("assertions.jwks_ca", ca, certificates(ca)),
        JwksSource::Url { ca: None, .. } => {}
    }

    let data_dir = &config.store.data_dir;
    report("store.data_dir", data_dir, writable_dir(data_dir));

    errors.extend(super::validate::pipelines::check_files(config));
    errors.extend(super::validate::operations::check_files(config));
    errors.extend(super::validate::store::check_files(config));
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ConfigErrors(errors))
    }
}

fn read(path: &Path) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|error| format!("cannot read: {error}"))
}

/// A PEM file with at least one certificate, all of which parse.
fn certificates(path: &Path) -> Result<(), String> {
    let pem = read(path)?;
    let mut count = 0usize;
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        certificate.map_err(|_| "holds a malformed PEM certificate".to_owned())?;
        count += 1;
    }
    if count == 0 {
        return Err("holds no PEM certificate".to_owned());
    }
    Ok(())
}

/// A PEM private key (PKCS#8, PKCS#1 or SEC1), loaded into the secret.
fn private_key(secret: &mut SecretFile) -> Result<(), String> {
    let material = secret
        .load()
        .map_err(|error| format!("cannot read: {error}"))?;
    PrivateKeyDer::from_pem_slice(material.expose())
        .map(drop)
        .map_err(|_| "holds no PEM private key".to_owned())
}

/// The client-assertion key: it must sign ES256 (an EC P-256 key in PKCS#8 PEM). A trial
/// signature proves it, so a wrong curve is a start-up error rather than a failing token call.
fn assertion_key(secret: &mut SecretFile) -> Result<(), String> {
    let material = secret
        .load()
        .map_err(|error| format!("cannot read: {error}"))?;
    let key = jsonwebtoken::EncodingKey::from_ec_pem(material.expose())
        .map_err(|_| "must be an EC P-256 private key in PKCS#8 PEM".to_owned())?;
    let header = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::ES256);
    jsonwebtoken::encode(&header, &serde_json::json!({"probe": true}), &key)
        .map(drop)
        .map_err(|_| "cannot sign ES256: must be an EC P-256 private key in PKCS#8 PEM".to_owned())
}

/// A JSON Web Key Set with at least one key.
fn jwks(path: &Path) -> Result<(), String> {
    let text = read(path)?;
    let set: jsonwebtoken::jwk::JwkSet = serde_json::from_slice(&text)
        .map_err(|error| format!("is not a JWKS document: {error}"))?;
    if set.keys.is_empty() {
        return Err("holds no keys".to_owned());
    }
    Ok(())
}

/// The data directory, checked without changing anything (`check-config` is a pure check): an
/// existing one must be a directory this user may write to; a missing one must be creatable,
/// that is its nearest existing ancestor a directory this user may write to (the gateway creates
/// it at start).
fn writable_dir(path: &Path) -> Result<(), String> {
    use rustix::fs::{access, Access};
    let writable = |dir: &Path| access(dir, Access::WRITE_OK | Access::EXEC_OK).is_ok();
    match std::fs::metadata(path) {
        Ok(meta) if !meta.is_dir() => Err("is not a directory".to_owned()),
        Ok(_) if writable(path) => Ok(()),
        Ok(_) => Err("is not writable by this user".to_owned()),
        Err(error)
            if matches!(
                error.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
            ) =>
        {
            let ancestor = path
                .ancestors()
                .skip(1)
                .find(|dir| !dir.as_os_str().is_empty() && dir.exists())
                .unwrap_or(Path::new("."));
            if !ancestor.is_dir() {
                Err(format!(
                    "does not exist and cannot be created: {} is not a directory",
                    ancestor.display()
                ))
            } else if writable(ancestor) {
                Ok(())
            } else {
                Err(format!(
                    "does not exist and cannot be created: {} is not writable by this user",
                    ancestor.display()
                ))
            }
        }
        Err(error) => Err(format!("cannot be inspected: {error}")),
    }
}
