//! A throw-away PostgreSQL server for tests: `initdb` into a temporary directory, `pg_ctl start`
//! on a free loopback port (socket in the same directory), trust authentication for the test
//! user, stopped and removed on drop. Uses Debian's `postgresql` package binaries
//! (`/usr/lib/postgresql/<version>/bin`, or `IKKUNA_PG_BINDIR`). As root, the server runs as the
//! `postgres` user through `runuser` (PostgreSQL refuses to run as root).
//!
//! Shared by `tests/replicas.rs` and the store suite in `src/store/tests.rs` (included there by
//! path).
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// The test user (superuser of the throw-away cluster).
pub const USER: &str = "ikkuna";

/// A running throw-away server.
pub struct PgServer {
    dir: tempfile::TempDir,
    bin: PathBuf,
    as_postgres: bool,
    /// The loopback port it listens on.
    pub port: u16,
    /// Extra `-c` settings it runs with (TLS).
    extra: String,
}

/// TLS for a throw-away server: its certificate and key, the CA it trusts for client
/// certificates, and the `pg_hba.conf` lines that decide who must use TLS (and a certificate).
pub struct ServerTls {
    /// The server's certificate chain (PEM).
    pub cert_pem: String,
    /// Its private key (PEM).
    pub key_pem: String,
    /// The CA client certificates must chain to (PEM).
    pub client_ca_pem: String,
    /// The whole `pg_hba.conf`.
    pub hba: String,
}

/// The directory holding `initdb`, `pg_ctl`: `IKKUNA_PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`.
pub fn bin_dir() -> Option<PathBuf> {
    if let Ok(dir) = std::env::var("IKKUNA_PG_BINDIR") {
        let dir = PathBuf::from(dir);
        return dir.join("initdb").exists().then_some(dir);
    }
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let v: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// Starts a server for `test`, which fails when PostgreSQL is not installed: tests that need it
/// are `#[ignore]`d with the reason, so the summary shows them as not run and `--ignored` runs
/// them; none passes by skipping.
pub fn require(test: &str) -> PgServer {
    assert!(
        bin_dir().is_some(),
        "{test}: PostgreSQL binaries not found: apt-get install postgresql (or set IKKUNA_PG_BINDIR)"
    );
    PgServer::start()
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl PgServer {
    /// Initialises and starts a server; panics with the server log on failure.
    pub fn start() -> Self {
        let server = Self::init();
        server.launch();
        server
    }

    /// Initialises and starts a server with `ssl = on`, the given certificate and
    /// authentication rules.
    pub fn start_tls(tls: &ServerTls) -> Self {
        let mut server = Self::init();
        let data = server.data();
        for (name, text) in [
            ("server.crt", &tls.cert_pem),
            ("server.key", &tls.key_pem),
            ("client-ca.crt", &tls.client_ca_pem),
            ("pg_hba.conf", &tls.hba),
        ] {
            let path = data.join(name);
            std::fs::write(&path, text).unwrap();
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt as _;
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
            }
            if server.as_postgres {
                let status = Command::new("chown")
                    .args(["postgres:postgres"])
                    .arg(&path)
                    .status()
                    .unwrap();
                assert!(status.success(), "chown of {name}");
            }
        }
        server.extra = "-c ssl=on -c ssl_cert_file=server.crt -c ssl_key_file=server.key \
                        -c ssl_ca_file=client-ca.crt"
            .to_owned();
        server.launch();
        server
    }

    fn init() -> Self {
        let bin = bin_dir().expect("PostgreSQL binaries");
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        if as_postgres {
            let status = Command::new("chown")
                .args(["postgres:postgres"])
                .arg(dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown of the PostgreSQL test directory");
        }
        let server = Self {
            dir,
            bin,
            as_postgres,
            port: free_port(),
            extra: String::new(),
        };
        let data = server.data();
        server.run(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-U",
                USER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--no-sync",
            ],
        );
        server
    }

    /// Starts the (initialised, stopped) server on its port; waits until it accepts connections.
    pub fn launch(&self) {
        let data = self.data();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=300 {}",
            self.port,
            self.dir.path().display(),
            self.extra
        );
        self.run(
            "pg_ctl",
            &[
                "start",
                "-w",
                "-t",
                "60",
                "-D",
                data.to_str().unwrap(),
                "-l",
                self.log().to_str().unwrap(),
                "-o",
                &options,
            ],
        );
    }

    /// Stops the server at once (`-m immediate`: like a crash or a fail-over, no clean goodbye
    /// to clients).
    pub fn stop_now(&self) {
        let data = self.data();
        self.run(
            "pg_ctl",
            &[
                "stop",
                "-m",
                "immediate",
                "-w",
                "-D",
                data.to_str().unwrap(),
            ],
        );
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// The server's log file.
    pub fn log(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn run(&self, tool: &str, args: &[&str]) {
        let program = self.bin.join(tool);
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        if !output.status.success() {
            let log = std::fs::read_to_string(self.log()).unwrap_or_default();
            panic!(
                "{tool} failed: {}\n{}\nserver log:\n{log}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
    }

    /// A connection URL for `database` (which must exist; see [`Self::create_database`]),
    /// plain TCP on loopback (`sslmode=disable`, said explicitly: the gateway's default is
    /// verify-full).
    pub fn url(&self, database: &str) -> String {
        format!(
            "postgresql://{USER}@127.0.0.1:{}/{database}?sslmode=disable",
            self.port
        )
    }

    /// The superuser's way in, over the Unix socket (allowed whatever the TCP rules say).
    fn admin_url(&self, database: &str) -> String {
        format!(
            "host={} port={} user={USER} dbname={database}",
            self.dir.path().display(),
            self.port
        )
    }

    /// Runs SQL as the superuser in `database` (e.g. to end other sessions).
    pub async fn execute(&self, database: &str, sql: &str) {
        let (client, connection) =
            tokio_postgres::connect(&self.admin_url(database), tokio_postgres::NoTls)
                .await
                .unwrap();
        let driver = tokio::spawn(connection);
        client.batch_execute(sql).await.unwrap();
        drop(client);
        let _ = driver.await;
    }

    /// Creates an empty database and returns its URL.
    pub async fn create_database(&self, name: &str) -> String {
        let (client, connection) =
            tokio_postgres::connect(&self.admin_url("postgres"), tokio_postgres::NoTls)
                .await
                .unwrap();
        let driver = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await
            .unwrap();
        drop(client);
        let _ = driver.await;
        self.url(name)
    }

    /// The data directory's parent (socket and log live there).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        let data = self.data();
        let program = self.bin.join("pg_ctl");
        let mut command = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&program);
            c
        } else {
            Command::new(&program)
        };
        let _ = command
            .args(["stop", "-m", "immediate", "-w", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}
