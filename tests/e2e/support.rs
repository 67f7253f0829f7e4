//! Starting the real `kizuna` binary on a scratch database and data directory,
//! and a seeded world of facilities, staff, family and groups.

use kizuna_client::{Client, ClientConfig, Tokens};
use kizuna_domain::{GroupId, TimelineId, UserId};
use kizuna_store::testing::{ScratchDb, scratch_databases};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_kizuna");
pub const PASSWORD: &str = "correct horse battery";
pub const WAIT: Duration = Duration::from_secs(10);
/// A patient's name; tests check it never reaches the server's log.
pub const PATIENT_NAME: &str = "山田 花子 (Yamada Hanako)";

/// One scratch database per backend under test.
pub fn backends() -> Vec<ScratchDb> {
    scratch_databases()
}

/// A running `kizuna serve`.
pub struct TestServer {
    child: Option<Child>,
    pub addr: SocketAddr,
    pub data_dir: tempfile::TempDir,
    db_url: String,
    extra_env: Vec<(String, String)>,
    log_path: PathBuf,
}

impl TestServer {
    pub fn start_with(db: &ScratchDb, extra_env: &[(&str, &str)]) -> TestServer {
        let data_dir = tempfile::tempdir().expect("temp data dir");
        let log_path = data_dir.path().join("server.log");
        let mut s = TestServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            data_dir,
            db_url: db.url.clone(),
            extra_env: extra_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            log_path,
        };
        s.spawn();
        s
    }

    fn command(&self) -> Command {
        let mut c = Command::new(BIN);
        c.env("KIZUNA__DATABASE__URL", &self.db_url)
            .env("KIZUNA__DATABASE__SQLITE_SYNC", "normal")
            .env("KIZUNA__DATA_DIR", self.data_dir.path())
            .env(
                "KIZUNA_LOG",
                "info,kizuna_server=debug,kizuna_service=debug",
            )
            .env_remove("KIZUNA_CONFIG");
        for (k, v) in &self.extra_env {
            c.env(k, v);
        }
        c
    }

    fn spawn(&mut self) {
        let addr_file = self.data_dir.path().join("addr");
        let _ = std::fs::remove_file(&addr_file);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .expect("log file");
        let child = self
            .command()
            .args(["serve", "--bind", "127.0.0.1:0", "--addr-file"])
            .arg(&addr_file)
            .stdout(Stdio::from(log.try_clone().expect("log clone")))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start kizuna serve");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file)
                && let Ok(addr) = text.trim().parse()
            {
                self.addr = addr;
                return;
            }
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("server exited with {status}; log:\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "server did not start; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn root_pem(&self) -> String {
        std::fs::read_to_string(self.data_dir.path().join("ca").join("root.pem"))
            .expect("dev CA root.pem")
    }

    pub fn client(&self) -> Client {
        Client::new(ClientConfig {
            addr: self.addr,
            server_name: "localhost".into(),
            root_pem: self.root_pem(),
            client_identity: None,
        })
        .expect("client")
    }

    /// Runs `kizuna admin …` against the same database; returns its JSON.
    pub fn admin(&self, args: &[&str]) -> Value {
        let out = self
            .command()
            .env("KIZUNA_NEW_PASSWORD", PASSWORD)
            .arg("admin")
            .args(args)
            .output()
            .expect("run kizuna admin");
        assert!(
            out.status.success(),
            "kizuna admin {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).expect("admin prints JSON")
    }

    /// Runs the `kizuna` binary with any arguments (`ca …`, `admin …`,
    /// `serve` with a bad configuration) against the same database and data
    /// directory, with extra environment variables; returns its output
    /// whatever the exit status.
    pub fn cli(&self, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
        let mut c = self.command();
        for (k, v) in env {
            c.env(k, v);
        }
        c.args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("run kizuna {args:?}: {e}"))
    }

    /// The server process's id (it must be running).
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("server is running").id()
    }

    /// `kill -9`: no shutdown code runs.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().expect("SIGKILL");
            c.wait().expect("reap");
        }
    }

    /// SIGTERM, then wait for the exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let pid = c.id().to_string();
        Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill -TERM");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(st) = c.try_wait().expect("wait") {
                return st;
            }
            assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts the server again on the same database and data directory.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "stop it first");
        self.spawn();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// A seeded world: two facilities; a patient group owned by a nurse with a
/// physician of the same facility, a pharmacist of another facility and a
/// family member; an outsider; a free group; a community.
pub struct World {
    pub server: TestServer,
    pub client: Client,
    pub operator: Tokens,
    pub nurse: Tokens,
    pub doctor: Tokens,
    pub pharmacist: Tokens,
    pub family: Tokens,
    pub outsider: Tokens,
    pub group: GroupId,
    pub team: TimelineId,
    pub family_tl: TimelineId,
    pub free_main: TimelineId,
    pub community_main: TimelineId,
    /// The nursing station (owns the patient group).
    pub facility: i64,
    /// The pharmacy (the pharmacist's and the outsider's facility).
    pub pharmacy: i64,
}

fn id(v: &Value, key: &str) -> i64 {
    v[key].as_i64().unwrap_or_else(|| panic!("{key} in {v}"))
}

fn timeline(v: &Value, kind: &str) -> TimelineId {
    let t = v["timelines"]
        .as_array()
        .expect("timelines")
        .iter()
        .find(|t| t["kind"] == kind)
        .expect("timeline kind");
    TimelineId(id(t, "timeline_id"))
}

impl World {
    pub async fn new(db: &ScratchDb) -> World {
        World::with_env(db, &[]).await
    }

    pub async fn with_env(db: &ScratchDb, env: &[(&str, &str)]) -> World {
        let server = TestServer::start_with(db, env);
        server.admin(&[
            "create-user",
            "--login",
            "ops",
            "--name",
            "Operator",
            "--kind",
            "operator",
        ]);
        let client = server.client();
        let operator = client.login("ops", PASSWORD).await.expect("operator login");
        let op = Some(operator.access_token.as_str());
        let post = |path: &'static str, body: Value| {
            let client = client.clone();
            let op = op.map(str::to_owned);
            async move {
                client
                    .post(path, op.as_deref(), &body)
                    .await
                    .unwrap_or_else(|e| panic!("{path}: {e}"))
                    .1
            }
        };
        let f1 = id(
            &post(
                "/v1/admin/facilities",
                json!({"name": "Sakura Home Nursing", "require_client_cert": false}),
            )
            .await,
            "id",
        );
        let f2 = id(
            &post(
                "/v1/admin/facilities",
                json!({"name": "Momiji Pharmacy", "require_client_cert": false}),
            )
            .await,
            "id",
        );
        let staff = |login: &'static str, facility: i64, profession: &'static str| json!({"login": login, "display_name": login, "kind": "staff", "facility_id": facility, "profession": profession, "password": PASSWORD});
        let nurse_id = id(
            &post("/v1/admin/users", staff("nurse", f1, "nurse")).await,
            "id",
        );
        let doctor_id = id(
            &post("/v1/admin/users", staff("doctor", f1, "physician")).await,
            "id",
        );
        let pharm_id = id(
            &post("/v1/admin/users", staff("pharmacist", f2, "pharmacist")).await,
            "id",
        );
        post("/v1/admin/users", staff("outsider", f2, "care_manager")).await;
        let family_id = id(
            &post("/v1/admin/users", json!({"login": "family", "display_name": "Yamada Taro", "kind": "family", "password": PASSWORD})).await,
            "id",
        );
        let nurse = client.login("nurse", PASSWORD).await.expect("nurse login");
        let nurse_token = Some(nurse.access_token.as_str());
        // The nurse registers the patient: she owns the group.
        let (_, g) = client
            .post(
                "/v1/admin/patients",
                nurse_token,
                &json!({"facility_id": f1, "name": PATIENT_NAME}),
            )
            .await
            .expect("register patient");
        let group = GroupId(id(&g, "id"));
        for (user, role) in [
            (doctor_id, "member"),
            (pharm_id, "member"),
            (family_id, "member"),
        ] {
            client
                .post(
                    &format!("/v1/admin/groups/{}/members", group.get()),
                    nurse_token,
                    &json!({"user_id": user, "role": role}),
                )
                .await
                .expect("add member");
        }
        let (_, free) = client
            .post(
                "/v1/admin/groups",
                nurse_token,
                &json!({"kind": "free", "name": "Disaster contact network"}),
            )
            .await
            .expect("free group");
        let (_, community) = client
            .post(
                "/v1/admin/groups",
                nurse_token,
                &json!({"kind": "community", "name": "Wound care study"}),
            )
            .await
            .expect("community");
        let _ = nurse_id;
        World {
            operator,
            doctor: client
                .login("doctor", PASSWORD)
                .await
                .expect("doctor login"),
            pharmacist: client
                .login("pharmacist", PASSWORD)
                .await
                .expect("pharmacist login"),
            family: client
                .login("family", PASSWORD)
                .await
                .expect("family login"),
            outsider: client
                .login("outsider", PASSWORD)
                .await
                .expect("outsider login"),
            nurse,
            team: timeline(&g, "team"),
            family_tl: timeline(&g, "family"),
            free_main: timeline(&free, "main"),
            community_main: timeline(&community, "main"),
            group,
            facility: f1,
            pharmacy: f2,
            client,
            server,
        }
    }

    /// Creates (as the operator) an admin of `facility` and logs them in.
    pub async fn facility_admin(&self, login: &str, facility: i64) -> Tokens {
        self.client
            .post(
                "/v1/admin/users",
                Some(&self.operator.access_token),
                &json!({"login": login, "display_name": login, "kind": "staff",
                        "facility_id": facility, "facility_role": "admin",
                        "profession": "clerk", "password": PASSWORD}),
            )
            .await
            .expect("create facility admin");
        self.client
            .login(login, PASSWORD)
            .await
            .expect("facility admin login")
    }

    /// The patient group as its owner (the nurse) sees it, with members.
    pub async fn patient_group(&self) -> Value {
        self.client
            .get(
                &format!("/v1/admin/groups/{}", self.group.get()),
                Some(&self.nurse.access_token),
            )
            .await
            .expect("patient group")
            .1
    }

    pub async fn ws(&self, who: &Tokens) -> kizuna_client::WsConnection {
        self.client
            .connect_ws(&who.access_token)
            .await
            .expect("websocket")
    }
}

/// The user id in a token answer.
pub fn uid(t: &Tokens) -> UserId {
    t.user_id
}

/// Reads frames until the server closes the socket (within `within` in all)
/// and returns the close code; anything else is a test failure.
pub async fn close_code(ws: &mut kizuna_client::WsConnection, within: Duration) -> u16 {
    let deadline = Instant::now() + within;
    loop {
        match ws
            .next_frame(deadline.saturating_duration_since(Instant::now()))
            .await
        {
            Ok(_) => continue,
            Err(kizuna_client::ClientError::Closed { code, .. }) => return code,
            Err(e) => panic!("expected the socket to close, got {e}"),
        }
    }
}
