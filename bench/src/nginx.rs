//! nginx as the honest reference: a plain TLS reverse proxy to the same sandbox, holding a DVV
//! token and one consent path, with `proxy_buffering off` and `proxy_max_temp_file_size 0` (its
//! default would spill large answers to disk) and keep-alive connections upstream.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::Context as _;

/// Where Debian and source builds put the binary, besides `PATH`.
const KNOWN_PATHS: &[&str] = &[
    "/usr/sbin/nginx",
    "/usr/local/sbin/nginx",
    "/usr/local/nginx/sbin/nginx",
];

/// Finds nginx; when absent and `install` is set, installs Debian's `nginx-light` with apt-get.
pub fn find_or_install(install: bool) -> anyhow::Result<Option<PathBuf>> {
    if let Some(found) = find() {
        return Ok(Some(found));
    }
    if !install {
        return Ok(None);
    }
    eprintln!("nginx not found: installing Debian's nginx-light with apt-get");
    let root = unsafe { libc::geteuid() } == 0;
    let apt = |args: &[&str]| -> anyhow::Result<()> {
        let mut cmd = if root {
            std::process::Command::new("apt-get")
        } else {
            let mut c = std::process::Command::new("sudo");
            c.arg("apt-get");
            c
        };
        let status = cmd
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .stdin(Stdio::null())
            .status()
            .context("running apt-get")?;
        anyhow::ensure!(status.success(), "apt-get {args:?} failed: {status}");
        Ok(())
    };
    apt(&["update", "-qq"])?;
    apt(&[
        "install",
        "-y",
        "-qq",
        "--no-install-recommends",
        "nginx-light",
    ])?;
    Ok(find())
}

fn find() -> Option<PathBuf> {
    let in_path = std::env::var_os("PATH")
        .map(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    in_path
        .into_iter()
        .chain(KNOWN_PATHS.iter().map(PathBuf::from))
        .find(|p| p.is_file())
}

/// `nginx -v`'s answer, e.g. `nginx/1.22.1`.
pub fn version(bin: &Path) -> String {
    std::process::Command::new(bin)
        .arg("-v")
        .output()
        .ok()
        .map(|o| {
            String::from_utf8_lossy(&o.stderr)
                .trim()
                .replace("nginx version: ", "")
        })
        .unwrap_or_else(|| "unknown".to_owned())
}

/// What nginx needs to forward the same upstream calls as the gateway.
pub struct Settings<'a> {
    /// Where nginx listens (TLS).
    pub listen: SocketAddr,
    /// Its server certificate and key (the sandbox's gateway certificate).
    pub cert: &'a Path,
    /// Its key.
    pub key: &'a Path,
    /// The sandbox DVV listener.
    pub upstream: SocketAddr,
    /// The CA that signed the sandbox's certificate.
    pub ca: &'a Path,
    /// The provider's TLS client certificate and key.
    pub client_cert: &'a Path,
    /// Its key.
    pub client_key: &'a Path,
    /// The DVV bearer token nginx adds to every call.
    pub token: &'a str,
    /// The one consent all calls go under.
    pub consent_id: &'a str,
    /// Worker processes (the gateway gets as many threads).
    pub workers: usize,
    /// One process doing everything (`master_process off`), as the instruction count needs.
    pub single_process: bool,
}

impl Settings<'_> {
    fn render(&self, dir: &Path) -> String {
        let d = dir.display();
        let user = if unsafe { libc::geteuid() } == 0 {
            "user root root;\n"
        } else {
            ""
        };
        format!(
            "# Written by ikkuna-bench: a plain TLS reverse proxy to the sandbox DVV.\n\
             {user}worker_processes {workers};\n\
             daemon off;\n\
             master_process {master};\n\
             pid {d}/nginx.pid;\n\
             error_log {d}/error.log warn;\n\
             events {{ worker_connections 8192; }}\n\
             http {{\n\
             \x20   access_log {d}/access.log;\n\
             \x20   client_body_temp_path {d}/tmp/body;\n\
             \x20   proxy_temp_path {d}/tmp/proxy;\n\
             \x20   fastcgi_temp_path {d}/tmp/fastcgi;\n\
             \x20   uwsgi_temp_path {d}/tmp/uwsgi;\n\
             \x20   scgi_temp_path {d}/tmp/scgi;\n\
             \x20   keepalive_requests 10000000;\n\
             \x20   keepalive_timeout 300s;\n\
             \x20   upstream dvv {{\n\
             \x20       server {upstream};\n\
             \x20       keepalive 256;\n\
             \x20       keepalive_requests 10000000;\n\
             \x20       keepalive_timeout 300s;\n\
             \x20   }}\n\
             \x20   server {{\n\
             \x20       listen {listen} ssl;\n\
             \x20       ssl_certificate {cert};\n\
             \x20       ssl_certificate_key {key};\n\
             \x20       ssl_protocols TLSv1.2 TLSv1.3;\n\
             \x20       location /v1/messages {{\n\
             \x20           rewrite ^/v1/messages(.*)$ /v1/consents/{consent}/messages$1 break;\n\
             \x20           proxy_pass https://dvv;\n\
             \x20           proxy_http_version 1.1;\n\
             \x20           proxy_set_header Connection \"\";\n\
             \x20           proxy_set_header Host {upstream};\n\
             \x20           proxy_set_header Authorization \"Bearer {token}\";\n\
             \x20           proxy_ssl_certificate {client_cert};\n\
             \x20           proxy_ssl_certificate_key {client_key};\n\
             \x20           proxy_ssl_trusted_certificate {ca};\n\
             \x20           proxy_ssl_verify on;\n\
             \x20           proxy_ssl_name localhost;\n\
             \x20           proxy_ssl_session_reuse on;\n\
             \x20           proxy_buffering off;\n\
             \x20           proxy_request_buffering off;\n\
             \x20           proxy_max_temp_file_size 0;\n\
             \x20           proxy_read_timeout 120s;\n\
             \x20       }}\n\
             \x20   }}\n\
             }}\n",
            workers = self.workers.max(1),
            master = if self.single_process { "off" } else { "on" },
            upstream = self.upstream,
            listen = self.listen,
            cert = self.cert.display(),
            key = self.key.display(),
            consent = self.consent_id,
            token = self.token,
            client_cert = self.client_cert.display(),
            client_key = self.client_key.display(),
            ca = self.ca.display(),
        )
    }
}

/// A running nginx (master and workers).
pub struct Nginx {
    child: tokio::process::Child,
    /// The master's process id.
    pub pid: u32,
}

impl Nginx {
    /// Writes the configuration (owner-only: it holds a sandbox token) into `dir` and starts
    /// nginx, waiting until it accepts connections.
    pub async fn start(bin: &Path, dir: &Path, settings: &Settings<'_>) -> anyhow::Result<Self> {
        Self::start_under(&[], bin, dir, settings, Duration::from_secs(20)).await
    }

    /// As [`Self::start`], with nginx run under `wrapper` (e.g. `valgrind --tool=callgrind`),
    /// waiting at most `listen_timeout` for it to accept connections.
    pub async fn start_under(
        wrapper: &[std::ffi::OsString],
        bin: &Path,
        dir: &Path,
        settings: &Settings<'_>,
        listen_timeout: Duration,
    ) -> anyhow::Result<Self> {
        std::fs::create_dir_all(dir.join("tmp"))?;
        let conf = dir.join("nginx.conf");
        write_private(&conf, &settings.render(dir))?;
        let check = std::process::Command::new(bin)
            .args(["-t", "-q", "-p"])
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .output()?;
        anyhow::ensure!(
            check.status.success(),
            "nginx -t refused the configuration: {}",
            String::from_utf8_lossy(&check.stderr)
        );
        let mut cmd = match wrapper.split_first() {
            Some((program, args)) => {
                let mut cmd = tokio::process::Command::new(program);
                cmd.args(args).arg(bin);
                cmd
            }
            None => tokio::process::Command::new(bin),
        };
        let child = cmd
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting nginx")?;
        let pid = child.id().context("nginx pid")?;
        let deadline = Instant::now() + listen_timeout;
        while tokio::net::TcpStream::connect(settings.listen)
            .await
            .is_err()
        {
            anyhow::ensure!(Instant::now() < deadline, "nginx did not start listening");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Self { child, pid })
    }

    /// The master and its workers.
    pub fn pids(&self) -> Vec<u32> {
        let mut pids = vec![self.pid];
        pids.extend(crate::procs::children(self.pid));
        pids
    }

    /// Stops nginx quickly (SIGTERM to the master, which stops its workers).
    pub async fn stop(mut self) {
        // SAFETY: kill only sends a signal to our own child.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        if tokio::time::timeout(Duration::from_secs(10), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }
}

fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(text.as_bytes())?;
    Ok(())
}
