//! A PostgreSQL server of its own for a test or a benchmark, made from the
//! system's binaries (`initdb`, `pg_ctl`) in a temporary directory and
//! listening on a free loopback port. As root, the server runs as the
//! `postgres` user (PostgreSQL refuses to run as root).
//!
//! Nothing is skipped when PostgreSQL is missing: [`TestPostgres::start`]
//! fails and says which package to install.

use std::{
    net::TcpListener,
    path::{Path, PathBuf},
    process::{Command, Output},
};

/// What to install when the server binaries are missing.
pub const INSTALL: &str = "apt-get install -y postgresql (Debian; or run ./.ci/test, which installs it)";

/// One running PostgreSQL server, stopped and deleted on drop.
pub struct TestPostgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
    as_postgres: bool,
}

/// Where `initdb` and `pg_ctl` are: on `PATH`, or in Debian's versioned directory.
fn find_bin() -> Result<PathBuf, String> {
    let on_path = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .map(|d| d.filter_map(|e| e.ok()).map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    debian.sort();
    debian.reverse();
    on_path
        .into_iter()
        .chain(debian)
        .find(|dir| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file())
        .ok_or_else(|| format!("PostgreSQL server binaries (initdb, pg_ctl) not found; install them: {INSTALL}"))
}

/// Whether this process runs as root (uid 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|l| l.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

fn check(what: &str, output: std::io::Result<Output>) -> Result<(), String> {
    let output = output.map_err(|e| format!("{what}: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    Err(format!(
        "{what} failed ({}): {}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    ))
}

impl TestPostgres {
    /// Creates and starts a server with a superuser `civex` (trust
    /// authentication on loopback only) and fsync on, as in production.
    pub fn start() -> Result<TestPostgres, String> {
        TestPostgres::create(false)
    }

    /// As [`TestPostgres::start`], with TLS only: a certificate for
    /// 127.0.0.1 from a CA of its own ([`TestPostgres::tls_url`] names it),
    /// and every TCP connection without TLS refused (`hostssl` only).
    pub fn start_tls() -> Result<TestPostgres, String> {
        TestPostgres::create(true)
    }

    fn create(tls: bool) -> Result<TestPostgres, String> {
        let bin = find_bin()?;
        let dir = tempfile::Builder::new()
            .prefix("civex-pg-")
            .tempdir()
            .map_err(|e| e.to_string())?;
        let as_postgres = is_root();
        if as_postgres {
            check(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(dir.path())
                    .output(),
            )?;
        }
        let mut pg = TestPostgres {
            dir,
            bin,
            port: 0,
            as_postgres,
        };
        check(
            "initdb",
            pg.command("initdb")
                .arg("-D")
                .arg(pg.data())
                .args(["-U", "civex", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync"])
                .output(),
        )?;
        if tls {
            pg.serve_tls_only()?;
        }
        // A port can be taken between choosing it and binding it: try a few.
        let mut last = String::new();
        for _ in 0..5 {
            pg.port = free_port()?;
            match pg.start_again() {
                Ok(()) => return Ok(pg),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    /// Writes the CA, the server's certificate and key, and a
    /// configuration that takes TCP connections over TLS only.
    fn serve_tls_only(&self) -> Result<(), String> {
        let e = |e: rcgen::Error| format!("test certificates: {e}");
        let ca_key = rcgen::KeyPair::generate().map_err(e)?;
        let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).map_err(e)?;
        ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        ca.distinguished_name
            .push(rcgen::DnType::CommonName, "civex test database CA");
        let ca_cert = ca.self_signed(&ca_key).map_err(e)?;
        let issuer = rcgen::Issuer::new(ca, ca_key);
        let key = rcgen::KeyPair::generate().map_err(e)?;
        let cert = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .map_err(e)?
            .signed_by(&key, &issuer)
            .map_err(e)?;
        let write =
            |path: PathBuf, text: &str| std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()));
        write(self.ca_file(), &ca_cert.pem())?;
        let data = self.data();
        write(data.join("server.crt"), &cert.pem())?;
        write(data.join("server.key"), &key.serialize_pem())?;
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(data.join("server.key"), std::fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("server.key: {e}"))?;
        }
        let conf = data.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf).map_err(|e| format!("{}: {e}", conf.display()))?;
        text.push_str("\nssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n");
        write(conf, &text)?;
        write(
            data.join("pg_hba.conf"),
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\n",
        )?;
        if self.as_postgres {
            check(
                "chown",
                Command::new("chown")
                    .args(["-R", "postgres:postgres"])
                    .arg(&data)
                    .output(),
            )?;
        }
        Ok(())
    }

    fn ca_file(&self) -> PathBuf {
        self.dir.path().join("ca.pem")
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    /// Starts the server again after [`TestPostgres::stop`], on the same port.
    pub fn start_again(&self) -> Result<(), String> {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c max_connections=300",
            self.port,
            self.dir.path().display()
        );
        check(
            "pg_ctl start",
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .arg("-l")
                .arg(self.dir.path().join("server.log"))
                .args(["-o", &options, "-w", "-t", "60", "start"])
                .output(),
        )
    }

    /// Stops the server at once, as a crash or a lost machine would
    /// (`pg_ctl stop -m immediate`): what it committed survives.
    pub fn stop(&self) -> Result<(), String> {
        check(
            "pg_ctl stop",
            self.command("pg_ctl")
                .arg("-D")
                .arg(self.data())
                .args(["-m", "immediate", "-w", "stop"])
                .output(),
        )
    }

    /// The URL a gateway connects with (`[storage] url`).
    pub fn url(&self) -> String {
        format!("postgres://civex@127.0.0.1:{}/postgres", self.port)
    }

    /// The URL for a server started with [`TestPostgres::start_tls`]:
    /// TLS required, the server checked against its CA.
    pub fn tls_url(&self) -> String {
        format!(
            "{}?sslmode=require&sslrootcert={}",
            self.url(),
            self.ca_file().display()
        )
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The directory holding the cluster and its log.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The server's own log, for a failing test to print.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
