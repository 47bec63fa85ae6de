//! `ikkuna audit verify` and `ikkuna audit pseudonym`: the auditor's two tools.

use std::io::Read;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};

use super::verify::verify;
use super::writer::rotated_files;
use super::Pseudonymizer;

/// Verifies the chain through `files` (oldest first). A single active file brings its rotated
/// predecessors (`FILE.<seq>`) along. Prints every break as `FILE:LINE: what`, then a summary;
/// fails when the chain is broken.
pub fn verify_command(files: &[PathBuf]) -> anyhow::Result<()> {
    let files = match files {
        [one] => {
            let mut all = rotated_files(one);
            all.push(one.clone());
            all
        }
        many => many.to_vec(),
    };
    let report = verify(&files).context("cannot read the audit files")?;
    for problem in &report.problems {
        println!("{problem}");
    }
    let files_text = files
        .iter()
        .map(|f| f.display().to_string())
        .collect::<Vec<_>>()
        .join(", ");
    match (&report.head, report.problems.len()) {
        (Some((seq, hash)), 0) => {
            println!(
                "ok: {} records in {} file(s) ({files_text}), seq {}..={seq}, chain head {hash}",
                report.records,
                files.len(),
                report.first_seq.unwrap_or(0)
            );
            Ok(())
        }
        (None, 0) => {
            println!("ok: no records in {files_text}");
            Ok(())
        }
        (_, n) => bail!("the audit chain is broken in {n} place(s)"),
    }
}

/// Prints the pseudonym of identity code `id` (`-`: read from standard input, so the code stays
/// out of the shell history and the process list) under the key `config` names.
pub fn pseudonym_command(id: &str, config: &Path) -> anyhow::Result<()> {
    let config = crate::config::load_from_process(config)?;
    let key = config
        .audit
        .pseudonym_key
        .as_ref()
        .context("audit.pseudonym_key_file is not configured")?
        .read()
        .context("audit.pseudonym_key_file: cannot read")?;
    let pseudonyms = Pseudonymizer::new(key.expose())?;
    let mut text = id.to_owned();
    if id == "-" {
        text.clear();
        std::io::stdin()
            .read_to_string(&mut text)
            .context("cannot read the identity code from standard input")?;
    }
    let code = ikkuna_hetu::IdentityCode::parse(text.trim())
        .map_err(|_| anyhow::anyhow!("not a valid identity code"))?;
    println!("{}", pseudonyms.pseudonym(&code));
    Ok(())
}
