//! The example inbox (`examples/operator_backend.rs`) in a real, headless Chromium driven through
//! chromedriver (WebDriver), against the sandbox and the gateway binary: sign in, open a
//! `Verifiable` message and confirm its receipt, download an attachment and compare its bytes,
//! watch a message read by the *second* provider lose its unread marker, check each page for
//! basic accessibility, and save screenshots that must not be blank.
//!
//! Needs `chromedriver` and `chromium` (Debian: `apt-get install chromium chromium-driver`);
//! without them the test prints a notice and passes, unless `CI` is set. Screenshots go to
//! `$CARGO_TARGET_TMPDIR/browser-screenshots/` (under `target/`, never committed).

mod common;
mod receiver;
mod support;

#[path = "../examples/operator_backend.rs"]
#[allow(dead_code)]
mod operator_backend;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::Harness;
use fantoccini::{Client, ClientBuilder, Locator};
use ikkuna::dvv::OpeningReport;
use serde_json::{json, Value};

/// Aino Testinen: a varied inbox, with consents towards both sandbox providers.
const CITIZEN: &str = "150385-9046";
/// Liisa Ilmanlupaa: no consent towards any provider.
const NO_CONSENT: &str = "210690Y923C";
/// The longest any single wait in the browser may take.
const WAIT: Duration = Duration::from_secs(20);

/// The first of `candidates` that exists as a file, or the name found on `PATH`.
fn find_tool(env: &str, candidates: &[&str]) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(env).map(PathBuf::from) {
        return path.is_file().then_some(path);
    }
    for c in candidates {
        let p = Path::new(c);
        if p.is_absolute() && p.is_file() {
            return Some(p.to_owned());
        }
        if !p.is_absolute() {
            for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
                if dir.join(p).is_file() {
                    return Some(dir.join(p));
                }
            }
        }
    }
    None
}

/// chromedriver in its own process group, killed with everything it started (Chromium) on drop,
/// whether the test passed or panicked.
struct Driver {
    child: tokio::process::Child,
    url: String,
}

impl Driver {
    async fn start(binary: &Path, log: &Path) -> Driver {
        let port = {
            let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("a free port");
            probe.local_addr().expect("port").port()
        };
        let log = std::fs::File::create(log).expect("driver log");
        let child = tokio::process::Command::new(binary)
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + WAIT;
        while tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_err()
        {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Driver { child, url }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .stderr(Stdio::null())
                .status();
        }
    }
}

/// The flags without which Chromium hangs on this offline machine, a throwaway profile, and
/// downloads into `downloads` without asking.
fn capabilities(
    chromium: &Path,
    profile: &Path,
    downloads: &Path,
) -> serde_json::Map<String, Value> {
    let caps = json!({
        "browserName": "chrome",
        "pageLoadStrategy": "normal",
        "timeouts": {"pageLoad": 20_000, "script": 10_000, "implicit": 0},
        "goog:chromeOptions": {
            "binary": chromium,
            "args": [
                "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync",
                "--disable-dev-shm-usage", "--window-size=1000,900",
                format!("--user-data-dir={}", profile.display()),
            ],
            "prefs": {
                "download.default_directory": downloads,
                "download.prompt_for_download": false,
                "download.directory_upgrade": true,
                "plugins.always_open_pdf_externally": true,
            },
        },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object"),
    }
}

/// Problems a person using a screen reader or keyboard would meet on the current page.
const A11Y_AUDIT: &str = r#"
const problems = [];
if (!document.documentElement.lang) problems.push('html has no lang');
if (!document.title.trim()) problems.push('page has no title');
if (!document.querySelector('main')) problems.push('no main landmark');
if (document.querySelectorAll('h1').length !== 1) problems.push('not exactly one h1');
let level = 0;
for (const h of document.querySelectorAll('h1, h2, h3, h4, h5, h6')) {
  const l = Number(h.tagName[1]);
  if (l > level + 1) problems.push('heading level skips to ' + h.tagName);
  level = l;
}
for (const el of document.querySelectorAll('a, button')) {
  const name = (el.getAttribute('aria-label') || el.innerText || el.textContent || '').trim();
  if (!name) problems.push('a ' + el.tagName.toLowerCase() + ' without an accessible name');
}
for (const el of document.querySelectorAll('input, select, textarea')) {
  if (el.type === 'hidden') continue;
  if (!(el.labels && el.labels.length) && !el.getAttribute('aria-label')) problems.push('unlabelled field ' + el.name);
}
for (const img of document.querySelectorAll('img')) if (!img.hasAttribute('alt')) problems.push('img without alt');
for (const li of document.querySelectorAll('li.message')) {
  const text = li.innerText;
  if (li.dataset.unread === 'true' && !/\bUnread\b/.test(text)) problems.push('unread shown by colour only');
  if (li.dataset.unread === 'false' && /\bUnread\b/.test(text)) problems.push('read message marked unread');
}
return problems;
"#;

async fn audit(c: &Client, page: &str) {
    let problems = tokio::time::timeout(WAIT, c.execute(A11Y_AUDIT, vec![]))
        .await
        .expect("audit in time")
        .expect("audit runs");
    assert_eq!(problems, json!([]), "accessibility problems on the {page}");
}

/// Saves a screenshot and checks it shows something: a PNG of the window's size with several
/// colours and a fair share of non-background pixels.
async fn screenshot(c: &Client, dir: &Path, name: &str) -> PathBuf {
    let png = tokio::time::timeout(WAIT, c.screenshot())
        .await
        .expect("screenshot in time")
        .expect("screenshot");
    let path = dir.join(format!("{name}.png"));
    std::fs::write(&path, &png).expect("save screenshot");
    let decoder = png::Decoder::new(std::io::Cursor::new(&png));
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("buffer size")];
    let frame = reader.next_frame(&mut pixels).expect("a frame");
    let channels = frame.color_type.samples();
    assert!(
        frame.width >= 300 && frame.height >= 300,
        "{name}: {}x{}",
        frame.width,
        frame.height
    );
    let pixels = &pixels[..frame.buffer_size()];
    let mut colours = std::collections::HashMap::<&[u8], usize>::new();
    for px in pixels.chunks_exact(channels) {
        *colours.entry(&px[..channels.min(3)]).or_default() += 1;
    }
    let total = pixels.len() / channels;
    let background = colours.values().copied().max().unwrap_or(0);
    assert!(
        colours.len() >= 16,
        "{name} looks blank: {} colours",
        colours.len()
    );
    assert!(
        (total - background) * 100 >= total,
        "{name} looks blank: {} of {total} pixels differ from the background",
        total - background
    );
    path
}

async fn find(c: &Client, css: &str) -> fantoccini::elements::Element {
    c.wait()
        .at_most(WAIT)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no {css} within {WAIT:?}: {e}"))
}

async fn text(c: &Client, css: &str) -> String {
    find(c, css).await.text().await.expect("text")
}

async fn click(c: &Client, css: &str) {
    let el = find(c, css).await;
    tokio::time::timeout(WAIT, el.click())
        .await
        .expect("click in time")
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Whether the inbox row of `message` says unread (its data attribute; the audit ties it to text).
async fn row_unread(c: &Client, message: i64) -> bool {
    let row = find(c, &format!(r#"li.message[data-message-id="{message}"]"#)).await;
    row.attr("data-unread").await.expect("attr").as_deref() == Some("true")
}

/// The file Chromium finished downloading into `dir`, waiting for it.
async fn downloaded(dir: &Path, name: &str) -> Vec<u8> {
    let path = dir.join(name);
    let deadline = Instant::now() + WAIT;
    loop {
        let partial = std::fs::read_dir(dir)
            .map(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".crdownload"))
            })
            .unwrap_or(false);
        if !partial {
            if let Ok(bytes) = std::fs::read(&path) {
                return bytes;
            }
        }
        let listing: Vec<_> = std::fs::read_dir(dir)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(
            Instant::now() < deadline,
            "{name} was not downloaded; the download directory holds {listing:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium and chromedriver (apt-get install chromium chromium-driver); run: cargo test --test browser -- --ignored"]
async fn the_example_inbox_works_in_a_real_browser() {
    let driver_bin = find_tool(
        "CHROMEDRIVER",
        &["chromedriver", "/usr/lib/chromium/chromedriver"],
    );
    let chromium = find_tool(
        "CHROMIUM",
        &["chromium", "chromium-browser", "google-chrome"],
    );
    let (Some(driver_bin), Some(chromium)) = (driver_bin, chromium) else {
        panic!(
            "chromedriver or chromium not found: apt-get install chromium chromium-driver \
             (CHROMEDRIVER / CHROMIUM override the paths)"
        );
    };
    tokio::time::timeout(Duration::from_secs(240), run(&driver_bin, &chromium))
        .await
        .expect("the browser test finishes within 240 s");
}

async fn run(driver_bin: &Path, chromium: &Path) {
    let started = Instant::now();
    // The sandbox, the example operator backend (its webhook receiver too), then the gateway
    // delivering webhooks to it.
    // DVV's reply limits raised so that the reply step can carry a 100 MiB file (issue 19).
    let mut h = Harness::with_sandbox_options(|o| {
        o.reply_limits.max_file_bytes = 128 * 1024 * 1024;
        o.reply_limits.max_total_bytes = 128 * 1024 * 1024;
    })
    .await;
    let secret = h.dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{}\n", support::SECRET)).expect("secret");
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    let backend = operator_backend::start(operator_backend::Args {
        data_dir: h.dir.path().to_owned(),
        listen: "127.0.0.1:0".parse().expect("addr"),
        webhook_listen: "127.0.0.1:0".parse().expect("addr"),
        webhook_secret_file: Some(secret.clone()),
    })
    .await
    .expect("the example backend starts");
    let hooks = backend.webhooks.expect("a webhook receiver");
    let ca = h.info["caCert"].as_str().expect("caCert").to_owned();
    h.gateway_env = vec![
        (
            "IKKUNA_WEBHOOKS_ENDPOINTS".into(),
            format!("https://{hooks}/webhooks"),
        ),
        (
            "IKKUNA_WEBHOOKS_SECRET_FILE".into(),
            secret.display().to_string(),
        ),
        ("IKKUNA_WEBHOOKS_CA_CERT".into(), ca),
        ("IKKUNA_EVENTS_POLL_INTERVAL_MS".into(), "200".into()),
        ("IKKUNA_EVENTS_START".into(), "retention".into()),
    ];
    h.start_gateway().await;
    let inbox = format!("http://{}", backend.inbox);

    // What the test expects to see, from the operator API's message list (a list opens nothing).
    let list = h
        .call("GET", "/v1/messages?limit=20", Some(&h.token(CITIZEN)))
        .await;
    assert_eq!(list.status, 200);
    let messages = list.json()["messages"]
        .as_array()
        .cloned()
        .expect("messages");
    let id = |m: &Value| m["messageId"].as_i64().expect("messageId");
    let verifiable = messages
        .iter()
        .find(|m| {
            m["messageServiceType"] == "Verifiable"
                && m["receiptConfirmedAt"].is_null()
                && m["readAt"].is_null()
                && m["attachmentCount"].as_i64().unwrap_or(0) > 0
        })
        .map(id)
        .expect("an unconfirmed Verifiable message with attachments");
    let elsewhere = messages
        .iter()
        .find(|m| m["readAt"].is_null() && id(m) != verifiable)
        .map(id)
        .expect("a second unread message");

    let work = tempfile::tempdir().expect("tempdir");
    let downloads = work.path().join("downloads");
    let profile = work.path().join("profile");
    std::fs::create_dir_all(&downloads).expect("downloads dir");
    let shots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("browser-screenshots");
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let driver = Driver::start(driver_bin, &work.path().join("chromedriver.log")).await;
    let c = tokio::time::timeout(
        Duration::from_secs(60),
        ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
            .capabilities(capabilities(chromium, &profile, &downloads))
            .connect(&driver.url),
    )
    .await
    .expect("Chromium starts in time")
    .unwrap_or_else(|e| {
        panic!(
            "no WebDriver session: {e}; chromedriver log:\n{}",
            std::fs::read_to_string(work.path().join("chromedriver.log")).unwrap_or_default()
        )
    });

    // Sign in (the pretend identification) as Aino.
    tokio::time::timeout(WAIT, c.goto(&format!("{inbox}/")))
        .await
        .expect("page in time")
        .expect("sign-in page");
    assert!(text(&c, "main").await.contains("Pretend identification"));
    audit(&c, "sign-in page").await;
    screenshot(&c, &shots, "1-sign-in").await;
    click(&c, &format!(r#"button[name="citizen"][value="{CITIZEN}"]"#)).await;

    // The inbox: consent state, both messages unread, as words.
    find(&c, "#messages").await;
    let consent = find(&c, "#consent-state").await;
    assert_eq!(
        consent.attr("data-state").await.expect("attr").as_deref(),
        Some("Active")
    );
    assert!(
        find(&c, "#consent-state a")
            .await
            .attr("href")
            .await
            .expect("href")
            .is_some(),
        "the consent state links to DVV's consent service"
    );
    assert!(row_unread(&c, verifiable).await && row_unread(&c, elsewhere).await);
    let unread_before = text(&c, "#unread-count").await;
    audit(&c, "inbox").await;
    screenshot(&c, &shots, "2-inbox").await;

    // Open the Verifiable message: the receipt step first, then the content.
    click(&c, &format!(r#"a[href="/messages/{verifiable}"]"#)).await;
    assert!(text(&c, "#receipt-required")
        .await
        .contains("proof of receipt"));
    audit(&c, "receipt step").await;
    screenshot(&c, &shots, "3-receipt-step").await;
    click(&c, r#"form[action$="/receipt"] button"#).await;
    assert!(text(&c, "#receipt-confirmed")
        .await
        .starts_with("Receipt confirmed"));
    assert!(!text(&c, "#message-body").await.trim().is_empty());
    audit(&c, "message view").await;
    screenshot(&c, &shots, "4-message").await;
    let receipts = h.sandbox_admin("GET", "/admin/receipts", None).await.json();
    assert!(
        common::list_of(receipts, "receipts")
            .iter()
            .any(|r| r["messageId"] == verifiable && r["providerId"] == "provider-a"),
        "DVV recorded the receipt from this provider"
    );

    // Download the largest attachment under 1 MiB and compare it with what DVV serves.
    let mut best: Option<(u64, i64, String)> = None;
    for a in c
        .find_all(Locator::Css("a.attachment"))
        .await
        .expect("attachment links")
    {
        let size: u64 = a
            .attr("data-size")
            .await
            .expect("attr")
            .expect("data-size")
            .parse()
            .expect("size");
        let aid: i64 = a
            .attr("data-attachment-id")
            .await
            .expect("attr")
            .expect("data-attachment-id")
            .parse()
            .expect("id");
        let name = a.text().await.expect("name");
        if size < 1 << 20 && best.as_ref().is_none_or(|b| size > b.0) {
            best = Some((size, aid, name));
        }
    }
    let (size, aid, name) = best.expect("a small attachment");
    click(&c, &format!(r#"a.attachment[data-attachment-id="{aid}"]"#)).await;
    let bytes = downloaded(&downloads, &name).await;
    assert_eq!(bytes.len() as u64, size, "downloaded size of {name}");
    assert!(
        bytes == ikkuna_sandbox::content::bytes_at(verifiable, aid, 0, size as usize),
        "the downloaded {name} has the bytes DVV serves"
    );

    // Back in the inbox the message read here has lost its marker; the other one has not.
    click(&c, r#"a[href="/inbox"]"#).await;
    find(&c, "#messages").await;
    assert!(!row_unread(&c, verifiable).await, "read here");
    assert!(row_unread(&c, elsewhere).await);

    // The citizen reads the other message with the second provider: provider-b reports the
    // opening to DVV on its own connection; a refresh shows it read.
    let b = support::dvv_client(&h, "provider-b");
    let consent_b = b
        .lookup_consent(&ikkuna_hetu::IdentityCode::parse(CITIZEN).expect("code"))
        .await
        .expect("lookup as provider-b")
        .value
        .expect("Aino has a consent with provider-b")
        .consent_id;
    b.get_message(&consent_b, elsewhere)
        .await
        .expect("provider-b reads the message");
    let report = OpeningReport {
        opening_id: uuid::Uuid::new_v4().to_string(),
        opened_at: chrono::Utc::now(),
    };
    let opened = b
        .report_opening(&consent_b, elsewhere, &report)
        .await
        .expect("provider-b reports the opening");
    assert!(opened.value.first_open, "provider-b opened it first");
    let deadline = Instant::now() + WAIT;
    loop {
        click(&c, r#"main a[href="/inbox"]"#).await;
        find(&c, "#messages").await;
        if !row_unread(&c, elsewhere).await {
            break;
        }
        assert!(Instant::now() < deadline, "the unread marker never cleared");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The gateway's webhook about it reached the example's receiver, which verified it.
    let deadline = Instant::now() + WAIT;
    while !text(&c, "#events")
        .await
        .contains(&format!("message.read (message {elsewhere})"))
    {
        assert!(
            Instant::now() < deadline,
            "no verified message.read webhook shown"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        click(&c, r#"main a[href="/inbox"]"#).await;
    }
    let row = text(&c, &format!(r#"li.message[data-message-id="{elsewhere}"]"#)).await;
    assert!(!row.contains("Unread"), "read in another provider: {row}");

    let unread_after = text(&c, "#unread-count").await;
    let count = |s: &str| -> i64 {
        s.split_whitespace()
            .next()
            .and_then(|n| n.parse().ok())
            .expect("a count")
    };
    assert_eq!(count(&unread_after), count(&unread_before) - 2);
    audit(&c, "inbox after reading").await;
    screenshot(&c, &shots, "5-inbox-after").await;

    // A new message whose sender must not be named: the notification feed shows the sender's
    // own hint text from the webhook, never the sender.
    let hidden = h
        .sandbox_admin(
            "POST",
            "/admin/messages",
            Some(serde_json::json!({
                "endUserId": CITIZEN, "title": "Hoitoaika", "body": "b", "senderName": "Klinikka X",
                "notifications": {
                    "senderDetailsInNotifications": "None",
                    "customisedNewMessageNotification": {
                        "title": {"fi": "Asiasi eteni", "sv": "Ditt ärende framskred", "en": "Your case moved on"},
                        "content": {"fi": "Lue viesti.", "sv": "Läs meddelandet.", "en": "Read the message."}
                    }
                }
            })),
        )
        .await;
    assert_eq!(hidden.status, 201, "{:?}", hidden.json());
    let deadline = Instant::now() + WAIT;
    while !text(&c, "#notifications").await.contains("Asiasi eteni") {
        assert!(
            Instant::now() < deadline,
            "no notification from the hint shown"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        click(&c, r#"main a[href="/inbox"]"#).await;
    }
    let feed = text(&c, "#notifications").await;
    assert!(
        !feed.contains("Klinikka"),
        "a hidden sender in the feed: {feed}"
    );
    assert!(!feed.contains("Hoitoaika"), "a title in the feed: {feed}");
    audit(&c, "inbox with notifications").await;
    reply_with_a_file(&c, &h, &inbox, &messages, work.path(), &shots).await;

    // Sign out; a citizen who never consented sees why there is no mail, and where to consent.
    click(&c, r#"form[action="/signout"] button"#).await;
    click(
        &c,
        &format!(r#"button[name="citizen"][value="{NO_CONSENT}"]"#),
    )
    .await;
    let consent = find(&c, "#consent-state").await;
    assert_eq!(
        consent.attr("data-state").await.expect("attr").as_deref(),
        Some("None")
    );
    assert!(c
        .find_all(Locator::Css("#messages"))
        .await
        .expect("find")
        .is_empty());
    find(&c, "#consent-state a").await;
    audit(&c, "inbox without consent").await;
    screenshot(&c, &shots, "6-no-consent").await;

    tokio::time::timeout(WAIT, c.close())
        .await
        .expect("session closes in time")
        .expect("close");
    drop(driver);
    backend.served.abort();
    eprintln!(
        "browser test: {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        shots.display()
    );
}

/// Issue 19: the citizen replies from the example inbox with a text and a 100 MiB file; the reply
/// streams through the example backend and the gateway to DVV, shows in the thread, and the
/// sender's answer arrives in it. The gateway's peak RSS may grow by less than 16 MiB.
async fn reply_with_a_file(
    c: &Client,
    h: &Harness,
    inbox: &str,
    messages: &[Value],
    work: &Path,
    shots: &Path,
) {
    let replyable = messages
        .iter()
        .find(|m| m["replyAllowedBy"] == "Anyone")
        .and_then(|m| m["messageId"].as_i64())
        .expect("a seeded message that accepts replies");
    tokio::time::timeout(WAIT, c.goto(&format!("{inbox}/messages/{replyable}")))
        .await
        .expect("page in time")
        .expect("message page");
    find(c, "#reply-form").await;
    audit(c, "reply form").await;
    screenshot(c, shots, "7-reply-form").await;

    let size: u64 = 100 * 1024 * 1024;
    let file = work.join("selvitys.pdf");
    {
        use std::io::Write as _;
        let chunk: Vec<u8> = (0..1024 * 1024).map(|i| (i % 251) as u8).collect();
        let mut out = std::io::BufWriter::new(std::fs::File::create(&file).expect("file"));
        for _ in 0..size / (1024 * 1024) {
            out.write_all(&chunk).expect("write");
        }
    }
    let text = "Hei, pyytämänne selvitys on liitteenä.";
    find(c, "#reply-body")
        .await
        .send_keys(text)
        .await
        .expect("type the reply");
    find(c, "#reply-file")
        .await
        .send_keys(&file.display().to_string())
        .await
        .expect("choose the file");
    let pid = h.gateway_pid();
    let (_, peak_before) = common::rss_kib(pid);
    let started = Instant::now();
    click(c, "#reply-form button").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    let thread = loop {
        if let Ok(el) = c.find(Locator::Css("#thread")).await {
            break el.text().await.expect("thread text");
        }
        assert!(
            Instant::now() < deadline,
            "the reply never showed in the thread"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let elapsed = started.elapsed();
    let (_, peak_after) = common::rss_kib(pid);
    let growth = peak_after.saturating_sub(peak_before);
    eprintln!(
        "browser reply with a 100 MiB file: {:.1} s from the click to the thread; gateway peak RSS {peak_before} KiB -> {peak_after} KiB (+{growth} KiB)",
        elapsed.as_secs_f64()
    );
    assert!(growth < 16 * 1024, "gateway peak RSS grew by {growth} KiB");
    assert!(thread.contains(text), "{thread}");
    assert!(thread.contains("selvitys.pdf"), "{thread}");
    std::fs::remove_file(&file).expect("remove the file");
    let recorded = common::list_of(
        h.sandbox_admin("GET", "/admin/replies", None).await.json(),
        "replies",
    );
    assert_eq!(recorded.len(), 1, "exactly one reply at DVV");
    assert_eq!(recorded[0]["files"][0]["size"], size);
    assert_eq!(recorded[0]["files"][0]["mediaType"], "application/pdf");
    audit(c, "thread").await;
    screenshot(c, shots, "8-thread").await;

    // The sender answers (the sandbox does, two seconds later): the answer shows in the thread
    // and opens as a message that says what it answers.
    let deadline = Instant::now() + WAIT;
    loop {
        tokio::time::timeout(WAIT, c.goto(&format!("{inbox}/messages/{replyable}")))
            .await
            .expect("page in time")
            .expect("message page");
        if !c
            .find_all(Locator::Css("#thread .answer a"))
            .await
            .expect("find")
            .is_empty()
        {
            break;
        }
        assert!(Instant::now() < deadline, "no answer arrived in the thread");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    click(c, "#thread .answer a").await;
    find(c, "#answer-note").await;
    audit(c, "answer").await;
    screenshot(c, shots, "9-answer").await;
    click(c, r#"main a[href="/inbox"]"#).await;
    find(c, "#messages").await;
}
