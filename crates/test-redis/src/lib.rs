//! Real `redis-server` processes for agentd's tests: each in its own temporary
//! directory, listening on a unix socket there (and, when asked, on a free
//! loopback TCP port, plain or TLS with a CA generated for the test), with
//! `appendonly yes` and `appendfsync always`, as the README advises for
//! single-node durability.
//!
//! Readiness is Redis's own log line ("... ready to accept connections ..."), read from
//! its output, so no test polls or sleeps. `redis-server` must be on the PATH
//! (Debian's `redis-server` package, installed by `.ci/tools`).

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// What went wrong starting or talking to a redis-server.
#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Error {}

fn error(context: &str, err: impl std::fmt::Display) -> Error {
    Error(format!("{context}: {err}"))
}

/// How long a redis-server may take to say it is ready before the start is
/// reported as failed (a bound on a broken start, not a wait for readiness).
const START_LIMIT: Duration = Duration::from_secs(30);

/// A CA and a server certificate for 127.0.0.1 and localhost it signed, as PEM
/// files in the server's directory.
#[derive(Clone, Debug)]
pub struct TlsFiles {
    /// The CA's certificate: what a client trusts.
    pub ca_cert: PathBuf,
    /// The server's certificate.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
}

impl TlsFiles {
    /// Generates a fresh CA and server certificate into `dir`.
    pub fn generate(dir: &Path) -> Result<Self, Error> {
        let ca_key = KeyPair::generate().map_err(|e| error("CA key", e))?;
        let mut ca_params =
            CertificateParams::new(Vec::<String>::new()).map_err(|e| error("CA params", e))?;
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "agentd test CA");
        let ca = CertifiedIssuer::self_signed(ca_params, ca_key).map_err(|e| error("CA", e))?;
        let server_key = KeyPair::generate().map_err(|e| error("server key", e))?;
        let server_params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])
                .map_err(|e| error("server params", e))?;
        let server = server_params
            .signed_by(&server_key, &ca)
            .map_err(|e| error("server certificate", e))?;
        let files = Self {
            ca_cert: dir.join("ca.pem"),
            server_cert: dir.join("server.pem"),
            server_key: dir.join("server.key"),
        };
        let write = |path: &Path, text: String| {
            std::fs::write(path, text).map_err(|e| error(&path.display().to_string(), e))
        };
        write(&files.ca_cert, ca.pem())?;
        write(&files.server_cert, server.pem())?;
        write(&files.server_key, server_key.serialize_pem())?;
        Ok(files)
    }
}

/// How to start a server.
#[derive(Clone, Debug, Default)]
pub struct Builder {
    tcp: bool,
    tls: bool,
    args: Vec<(String, String)>,
}

impl Builder {
    /// Also listen on a free loopback TCP port.
    pub fn tcp(mut self) -> Self {
        self.tcp = true;
        self
    }

    /// Also listen with TLS on a free loopback port, with a generated CA.
    pub fn tls(mut self) -> Self {
        self.tls = true;
        self
    }

    /// One more `--name value` setting.
    pub fn arg(mut self, name: &str, value: &str) -> Self {
        self.args.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Starts the server and waits until it accepts connections.
    pub fn start(self) -> Result<RedisServer, Error> {
        let dir = tempfile::tempdir().map_err(|e| error("temporary directory", e))?;
        let tls = if self.tls {
            Some(TlsFiles::generate(dir.path())?)
        } else {
            None
        };
        let mut server = RedisServer {
            socket: dir.path().join("redis.sock"),
            port: self.tcp.then(free_port).transpose()?,
            tls_port: tls.as_ref().map(|_| free_port()).transpose()?,
            tls,
            args: self.args,
            child: None,
            dir,
        };
        server.launch()?;
        Ok(server)
    }
}

fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| error("free port", e))?;
    listener
        .local_addr()
        .map(|addr| addr.port())
        .map_err(|e| error("free port", e))
}

/// A running redis-server; stopped (killed) when dropped.
#[derive(Debug)]
pub struct RedisServer {
    dir: tempfile::TempDir,
    socket: PathBuf,
    port: Option<u16>,
    tls_port: Option<u16>,
    tls: Option<TlsFiles>,
    args: Vec<(String, String)>,
    child: Option<Child>,
}

impl RedisServer {
    /// A server on a unix socket only.
    pub fn start() -> Result<Self, Error> {
        Builder::default().start()
    }

    /// A builder for other set-ups.
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// `redis+unix://` URL of its socket.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket.display())
    }

    /// `redis://127.0.0.1:PORT`, when started with [`Builder::tcp`].
    pub fn tcp_url(&self) -> Option<String> {
        self.port.map(|port| format!("redis://127.0.0.1:{port}"))
    }

    /// `rediss://127.0.0.1:PORT` and the CA to trust, when started with
    /// [`Builder::tls`].
    pub fn tls_url(&self) -> Option<(String, &TlsFiles)> {
        let port = self.tls_port?;
        Some((format!("rediss://127.0.0.1:{port}"), self.tls.as_ref()?))
    }

    /// The server's directory (its data and append-only files).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    fn launch(&mut self) -> Result<(), Error> {
        let mut command = Command::new("redis-server");
        command
            .current_dir(self.dir.path())
            .args(["--port", &self.port.unwrap_or(0).to_string()])
            .args(["--bind", "127.0.0.1"])
            .arg("--unixsocket")
            .arg(&self.socket)
            .args(["--unixsocketperm", "700"])
            .arg("--dir")
            .arg(self.dir.path())
            .args(["--appendonly", "yes", "--appendfsync", "always"])
            .args(["--save", ""])
            .args(["--logfile", ""])
            .args(["--daemonize", "no"]);
        if let (Some(port), Some(tls)) = (self.tls_port, &self.tls) {
            command
                .args(["--tls-port", &port.to_string()])
                .arg("--tls-cert-file")
                .arg(&tls.server_cert)
                .arg("--tls-key-file")
                .arg(&tls.server_key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca_cert)
                .args(["--tls-auth-clients", "no"]);
        }
        for (name, value) in &self.args {
            command.arg(format!("--{name}")).arg(value);
        }
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| {
                error(
                    "cannot run redis-server (install Debian's redis-server package: .ci/tools)",
                    e,
                )
            })?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| Error("redis-server has no stdout".into()))?;
        let (ready, is_ready) = mpsc::channel();
        // Reads the log until the server is ready, then drains it so the server
        // never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut log = Vec::new();
            let mut told = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !told {
                    if line
                        .to_ascii_lowercase()
                        .contains("ready to accept connections")
                    {
                        let _ = ready.send(Ok(()));
                        told = true;
                    } else {
                        log.push(line);
                    }
                }
            }
            if !told {
                let _ = ready.send(Err(log.join("\n")));
            }
        });
        self.child = Some(child);
        match is_ready.recv_timeout(START_LIMIT) {
            Ok(Ok(())) => Ok(()),
            Ok(Err(log)) => Err(Error(format!("redis-server exited before ready:\n{log}"))),
            Err(_) => Err(Error("redis-server did not become ready".into())),
        }
    }

    /// Kills the server (SIGKILL: nothing gets a chance to finish).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again with the same directory, socket, ports and settings.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.stop();
        self.launch()
    }

    /// Runs one command over the unix socket and returns the reply.
    pub fn command(&self, args: &[&str]) -> Result<redis::Value, Error> {
        let client = redis::Client::open(self.url()).map_err(|e| error("client", e))?;
        let mut connection = client
            .get_connection()
            .map_err(|e| error("connection", e))?;
        let (name, rest) = args
            .split_first()
            .ok_or_else(|| Error("empty command".into()))?;
        let mut command = redis::cmd(name);
        for arg in rest {
            command.arg(*arg);
        }
        command
            .query(&mut connection)
            .map_err(|e| error(&args.join(" "), e))
    }

    /// Every key, sorted.
    pub fn keys(&self) -> Result<Vec<String>, Error> {
        let client = redis::Client::open(self.url()).map_err(|e| error("client", e))?;
        let mut connection = client
            .get_connection()
            .map_err(|e| error("connection", e))?;
        let mut keys: Vec<String> = redis::cmd("KEYS")
            .arg("*")
            .query(&mut connection)
            .map_err(|e| error("KEYS", e))?;
        keys.sort();
        Ok(keys)
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}
