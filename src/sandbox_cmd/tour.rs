//! The guided tour `ikkuna sandbox` prints: the seeded citizens with their consent states, then
//! ready-to-paste calls through the gateway for the citizen whose inbox shows the most (unread
//! and read-elsewhere messages, a `Verifiable` one, attachments up to the big one), a citizen
//! without consent, `/metrics` and the audit line the calls produced. The messages are picked
//! from the sandbox's state directly, so printing the tour opens and records nothing.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use ikkuna_sandbox::{CitizenConsent, CitizenInfo, InboxEntry, RunningSandbox, SandboxInfo};

use super::DEMO_ASSERTION_TTL;

/// Everything the tour shows, gathered once.
pub struct Tour {
    info: SandboxInfo,
    data_dir: std::path::PathBuf,
    admin: SocketAddr,
    inbox: Option<SocketAddr>,
    star: CitizenInfo,
    star_inbox: Vec<InboxEntry>,
    star_token: String,
    refused: Option<(CitizenInfo, String)>,
}

/// How much of the product a citizen's inbox shows: one point per kind of message present.
fn score(inbox: &[InboxEntry]) -> (usize, u64) {
    let kinds = [
        inbox.iter().any(|m| !m.read),
        inbox.iter().any(|m| m.read),
        inbox.iter().any(|m| m.verifiable && !m.receipt_confirmed),
        inbox.iter().any(|m| !m.attachments.is_empty()),
        inbox
            .iter()
            .any(|m| !m.read && !m.verifiable && !m.attachments.is_empty()),
    ];
    let largest = inbox
        .iter()
        .flat_map(|m| m.attachments.iter().map(|a| a.2))
        .max()
        .unwrap_or(0);
    (kinds.iter().filter(|k| **k).count(), largest)
}

impl Tour {
    /// Picks the tour's citizens and mints their demo assertions.
    pub fn new(
        sandbox: &RunningSandbox,
        admin: SocketAddr,
        inbox: Option<SocketAddr>,
    ) -> anyhow::Result<Self> {
        let info = sandbox.info().clone();
        let (star, star_inbox) = info
            .citizens
            .iter()
            .filter(|c| c.consent == CitizenConsent::Active)
            .map(|c| (c.clone(), sandbox.inbox_of(&c.id)))
            .max_by_key(|(_, inbox)| score(inbox))
            .context("the sandbox seed has no citizen with an active consent")?;
        let mint = |id: &str| {
            ikkuna_sandbox::mint_citizen_assertion(
                sandbox.data_dir(),
                id,
                ikkuna_sandbox::DEFAULT_ACR,
                DEMO_ASSERTION_TTL,
            )
        };
        let star_token = mint(&star.id)?;
        let refused = match info
            .citizens
            .iter()
            .find(|c| c.consent == CitizenConsent::None)
        {
            Some(c) => Some((c.clone(), mint(&c.id)?)),
            None => None,
        };
        Ok(Self {
            data_dir: sandbox.data_dir().to_path_buf(),
            info,
            admin,
            inbox,
            star,
            star_inbox,
            star_token,
            refused,
        })
    }

    /// The text to print; `exe` is this binary, for the fresh-assertion command.
    pub fn render(&self, exe: &Path) -> anyhow::Result<String> {
        let mut out = String::new();
        let info = &self.info;
        writeln!(
            out,
            "\nIkkuna is running against the sandbox DVV backend (a fictional DVV; citizens and mail are made up).\n\
             \n  operator API   {gw}\n  gateway admin  http://{admin}/readyz  /metrics\n  sandbox DVV    {dvv}\n  sandbox admin  {sadmin}\n  details        {json}",
            gw = info.gateway_url,
            admin = self.admin,
            dvv = info.dvv_url,
            sadmin = info.admin_url,
            json = self.data_dir.join("sandbox.json").display(),
        )?;

        writeln!(
            out,
            "\nCitizens and their consent towards this operator ({}):",
            info.providers
                .first()
                .map_or("provider-a", |p| p.id.as_str())
        )?;
        for c in &info.citizens {
            let state = match c.consent {
                CitizenConsent::Active => "Active",
                CitizenConsent::Revoked => "Revoked",
                CitizenConsent::None => "none",
            };
            let star = if c.id == self.star.id {
                "  <- the tour"
            } else {
                ""
            };
            writeln!(
                out,
                "  {:<12} {:<20} {:<8} {:>3} message{}{star}",
                c.id,
                c.name,
                state,
                c.messages,
                if c.messages == 1 { "" } else { "s" }
            )?;
        }

        self.steps(&mut out, exe)?;

        match self.inbox {
            Some(addr) => writeln!(
                out,
                "\nThe example operator inbox (examples/operator_backend.rs): http://{addr}/\n  \
                 a pretend sign-in, the inbox with unread markers, messages, receipts and downloads, \
                 and the webhooks it verified."
            )?,
            None => writeln!(
                out,
                "\nNext: the example operator inbox in a browser — stop with Ctrl-C and run \
                 `cargo run -- sandbox --open` (same build, nothing recompiles)."
            )?,
        }
        writeln!(out, "\nStop with Ctrl-C.")?;
        Ok(out)
    }

    fn steps(&self, out: &mut String, exe: &Path) -> anyhow::Result<()> {
        let info = &self.info;
        let inbox = &self.star_inbox;
        let unread = inbox.iter().filter(|m| !m.read).count();
        let read = inbox.len() - unread;
        let waiting = inbox
            .iter()
            .filter(|m| m.verifiable && !m.receipt_confirmed)
            .count();
        let files: Vec<&(i64, String, u64)> =
            inbox.iter().flat_map(|m| m.attachments.iter()).collect();
        let largest = files.iter().map(|a| a.2).max().unwrap_or(0);
        writeln!(
            out,
            "\nA guided tour with {name} ({id}): {n} messages, {unread} unread, {read} already read \
             in another window, {waiting} Verifiable awaiting receipt, {files} attachments (largest {size}).\n\
             Paste into a shell (the assertions are valid {mins} minutes):\n",
            name = self.star.name,
            id = self.star.id,
            n = inbox.len(),
            files = files.len(),
            size = human_size(largest),
            mins = DEMO_ASSERTION_TTL.as_secs() / 60,
        )?;
        writeln!(
            out,
            "  CA='{ca}' GW={gw}\n  TOKEN={token}",
            ca = info.ca_cert.display(),
            gw = info.gateway_url,
            token = self.star_token,
        )?;
        let call = r#"curl -s --cacert "$CA" -H "Authorization: Bearer $TOKEN""#;
        writeln!(
            out,
            "\n  # 1. The inbox, newest first (readAt, messageServiceType, attachmentCount):"
        )?;
        writeln!(out, "  {call} $GW/v1/messages")?;

        // An unread message with an attachment worth a Range request (1 KiB to 100 MiB).
        let fits = |size: u64| (1 << 10..=100 << 20).contains(&size);
        let unread_plain = |m: &&InboxEntry| !m.read && !m.verifiable;
        let plain = inbox
            .iter()
            .filter(unread_plain)
            .find(|m| m.attachments.iter().any(|a| fits(a.2)))
            .or_else(|| {
                inbox
                    .iter()
                    .filter(unread_plain)
                    .find(|m| !m.attachments.is_empty())
            })
            .or_else(|| inbox.iter().find(|m| !m.verifiable));
        if let Some(m) = plain {
            writeln!(
                out,
                "\n  # 2. Read \"{}\": the opening is recorded before the body leaves, and DVV marks\n  \
                 #    it read in every window (run step 1 again):",
                m.title
            )?;
            writeln!(out, "  {call} $GW/v1/messages/{}", m.message_id)?;
            let attachment = m
                .attachments
                .iter()
                .find(|a| fits(a.2))
                .or(m.attachments.first());
            if let Some((aid, name, size)) = attachment {
                writeln!(
                    out,
                    "\n  # 3. The first 100 bytes of its attachment {name} ({}): 206 with Content-Range:",
                    human_size(*size)
                )?;
                writeln!(
                    out,
                    "  {call} -H 'Range: bytes=0-99' -D - -o /dev/null $GW/v1/messages/{}/attachments/{aid}",
                    m.message_id
                )?;
            }
        }
        // The smallest attachment of at least 1 GiB: big enough to show streaming.
        let big = inbox
            .iter()
            .flat_map(|m| m.attachments.iter().map(move |a| (m, a)))
            .filter(|(m, a)| !m.verifiable && a.2 >= 1 << 30)
            .min_by_key(|(_, a)| a.2);
        if let Some((m, (aid, name, size))) = big {
            writeln!(
                out,
                "  #    {name} ({}) streams through the same way, never written anywhere:",
                human_size(*size)
            )?;
            writeln!(
                out,
                "  {call} -o /dev/null -w '%{{size_download}} bytes\\n' $GW/v1/messages/{}/attachments/{aid}",
                m.message_id
            )?;
        }
        if let Some(m) = inbox.iter().find(|m| m.verifiable && !m.receipt_confirmed) {
            writeln!(
                out,
                "\n  # 4. \"{}\" is Verifiable: 409 with its summary only, until receipt is confirmed:",
                m.title
            )?;
            writeln!(out, "  {call} $GW/v1/messages/{}", m.message_id)?;
            writeln!(
                out,
                "  {call} -X POST $GW/v1/messages/{}/receipt",
                m.message_id
            )?;
            writeln!(out, "  {call} $GW/v1/messages/{}", m.message_id)?;
        }
        if let Some((c, token)) = &self.refused {
            writeln!(
                out,
                "\n  # 5. {} has given no consent: 403, no call to DVV's messages, and the link to\n  \
                 #    DVV's consent service:",
                c.name
            )?;
            writeln!(
                out,
                "  curl -s --cacert \"$CA\" -H 'Authorization: Bearer {token}' $GW/v1/messages"
            )?;
        }
        writeln!(
            out,
            "\n  # 6. What monitoring sees: request counters, and the audit line of your last call\n  \
             #    (ids and a keyed pseudonym, never the identity code):"
        )?;
        writeln!(
            out,
            "  curl -s http://{}/metrics | grep '^ikkuna_http_requests_total'",
            self.admin
        )?;
        writeln!(out, "  tail -n 1 '{}'", info.audit_log.display())?;
        writeln!(
            out,
            "\n  # A fresh assertion for any citizen above (same binary, nothing to build):\n  \
             {} sandbox token --data-dir '{}' --citizen {}",
            exe.display(),
            self.data_dir.display(),
            self.star.id
        )?;
        Ok(())
    }
}

/// A size as people read it: bytes, KiB, MiB or GiB with at most one decimal.
fn human_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["bytes", "KiB", "MiB", "GiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} bytes")
    } else if value.fract() == 0.0 || value >= 100.0 {
        format!("{value:.0} {}", UNITS[unit])
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(read: bool, verifiable: bool, sizes: &[u64]) -> InboxEntry {
        InboxEntry {
            message_id: 1,
            title: String::new(),
            verifiable,
            read,
            receipt_confirmed: false,
            attachments: sizes
                .iter()
                .enumerate()
                .map(|(i, s)| (i as i64, String::new(), *s))
                .collect(),
        }
    }

    #[test]
    fn a_varied_inbox_beats_a_long_uniform_one() {
        let uniform: Vec<InboxEntry> = (0..45).map(|_| entry(false, false, &[])).collect();
        let varied = vec![
            entry(false, false, &[150_000]),
            entry(true, false, &[]),
            entry(false, true, &[1024]),
            entry(false, false, &[1 << 30]),
        ];
        assert!(score(&varied) > score(&uniform));
        assert_eq!(score(&varied), (5, 1 << 30));
    }

    #[test]
    fn sizes_read_as_people_read_them() {
        assert_eq!(human_size(12), "12 bytes");
        assert_eq!(human_size(151_552), "148 KiB");
        assert_eq!(human_size(1 << 30), "1 GiB");
        assert_eq!(human_size(2_684_354_560), "2.5 GiB");
    }
}
