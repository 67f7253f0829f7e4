//! The server under test: the real `kizuna` binary started as a child process
//! on `127.0.0.1:0` with a fresh data directory, configured only through
//! `KIZUNA__SECTION__KEY` environment variables, and `kizuna admin …` run
//! against the same configuration.

use anyhow::{Context, Result, bail};
use kizuna_client::{Client, ClientConfig};
use serde_json::Value;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The password of every account the load generator creates (the load runs
/// on loopback against a throw-away data directory).
pub const PASSWORD: &str = "loadgen correct horse battery";

/// How to start the server.
#[derive(Debug, Clone)]
pub struct ServerOptions {
    /// The `kizuna` binary.
    pub bin: PathBuf,
    /// `None`: embedded SQLite in the data directory; otherwise a database URL.
    pub database: Option<String>,
    /// SQLite durability (`full` or `normal`).
    pub sqlite_sync: String,
    /// `KIZUNA_LOG` of the server.
    pub log_filter: String,
    /// Further `KIZUNA__…` settings (name, value).
    pub env: Vec<(String, String)>,
    /// Keep the data directory (and the server log) after the run.
    pub keep_data: bool,
}

/// Makes clients that trust the server's development CA.
#[derive(Debug, Clone)]
pub struct Connector {
    addr: SocketAddr,
    root_pem: String,
}

impl Connector {
    /// A client with an optional client identity (certificate chain PEM,
    /// private key PEM).
    pub fn client(&self, identity: Option<(String, String)>) -> Result<Client> {
        Client::new(ClientConfig {
            addr: self.addr,
            server_name: "localhost".into(),
            root_pem: self.root_pem.clone(),
            client_identity: identity,
        })
        .context("building a client")
    }
}

/// A running `kizuna serve`.
#[derive(Debug)]
pub struct Server {
    child: Option<Child>,
    /// The bound address.
    pub addr: SocketAddr,
    /// The process id (for /proc).
    pub pid: u32,
    data_dir: Option<tempfile::TempDir>,
    data_path: PathBuf,
    opts: ServerOptions,
    root_pem: String,
}

impl Server {
    /// The settings every run uses, as environment variables. Returned so the
    /// report can list them.
    pub fn environment(opts: &ServerOptions, data_dir: &Path) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "KIZUNA__DATA_DIR".to_owned(),
                data_dir.display().to_string(),
            ),
            (
                "KIZUNA__DATABASE__URL".to_owned(),
                opts.database.clone().unwrap_or_default(),
            ),
            (
                "KIZUNA__DATABASE__SQLITE_SYNC".to_owned(),
                opts.sqlite_sync.clone(),
            ),
            ("KIZUNA_LOG".to_owned(), opts.log_filter.clone()),
        ];
        env.extend(opts.env.iter().cloned());
        env
    }

    /// Starts the server and waits until it listens.
    pub fn start(opts: ServerOptions) -> Result<Server> {
        let dir = tempfile::Builder::new()
            .prefix("kizuna-loadgen-")
            .tempdir()
            .context("creating the data directory")?;
        let data_path = dir.path().to_path_buf();
        let mut server = Server {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            pid: 0,
            data_dir: Some(dir),
            data_path,
            opts,
            root_pem: String::new(),
        };
        server.spawn()?;
        server.root_pem = std::fs::read_to_string(server.data_path.join("ca").join("root.pem"))
            .context("reading the development CA's root.pem")?;
        Ok(server)
    }

    /// Stops the server and starts it again on the same address, data
    /// directory and database: a fresh process (nothing left in its heap from
    /// seeding) that still knows every account, certificate and session.
    pub fn restart(&mut self) -> Result<()> {
        self.stop_process()?;
        self.spawn()
    }

    fn spawn(&mut self) -> Result<()> {
        let addr_file = self.data_path.join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.data_path.join("server.log"))
            .context("opening the server log")?;
        let child = Command::new(&self.opts.bin)
            .envs(Server::environment(&self.opts, &self.data_path))
            .env_remove("KIZUNA_CONFIG")
            .args(["serve", "--bind", &self.addr.to_string(), "--addr-file"])
            .arg(&addr_file)
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone()?))
            .stderr(Stdio::from(log))
            .spawn()
            .with_context(|| format!("starting {}", self.opts.bin.display()))?;
        self.pid = child.id();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse()
            {
                self.addr = addr;
                return Ok(());
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                bail!(
                    "the server exited with {status} before listening; log:\n{}",
                    self.log_tail(4000)
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "the server did not listen within 120 s; log:\n{}",
                    self.log_tail(4000)
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data_path
    }

    /// The last `max` bytes of the server's log.
    pub fn log_tail(&self, max: usize) -> String {
        let log = std::fs::read_to_string(self.data_path.join("server.log")).unwrap_or_default();
        let start = log.len().saturating_sub(max);
        let start = (start..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        log[start..].to_owned()
    }

    /// Makes clients for this server.
    pub fn connector(&self) -> Connector {
        Connector {
            addr: self.addr,
            root_pem: self.root_pem.clone(),
        }
    }

    /// Runs `kizuna admin …` against the same configuration; returns its JSON.
    pub async fn admin(&self, args: &[&str]) -> Result<Value> {
        let out = tokio::process::Command::new(&self.opts.bin)
            .envs(Server::environment(&self.opts, &self.data_path))
            .env_remove("KIZUNA_CONFIG")
            .env("KIZUNA_NEW_PASSWORD", PASSWORD)
            .arg("admin")
            .args(args)
            .stdin(Stdio::null())
            .output()
            .await
            .context("running kizuna admin")?;
        if !out.status.success() {
            bail!(
                "kizuna admin {} failed: {}",
                args.first().copied().unwrap_or(""),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        serde_json::from_slice(&out.stdout).context("kizuna admin printed no JSON")
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGTERM, then wait up to 20 s (SIGKILL after that); the data
    /// directory is removed unless `keep_data`.
    pub fn stop(&mut self) -> Result<()> {
        self.stop_process()?;
        if self.opts.keep_data
            && let Some(dir) = self.data_dir.take()
        {
            let kept = dir.keep();
            eprintln!("kept the server's data directory: {}", kept.display());
        }
        Ok(())
    }

    fn stop_process(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                bail!("the server did not stop within 20 s of SIGTERM; killed");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
