//! Seeding the server the way an operator would: the operator account and the
//! facility with `kizuna admin` (the CLI), everything else over REST as that
//! operator — staff accounts, one client certificate per account issued from
//! a CSR made here (the key never leaves this process, like a device), free
//! groups and their members. Every simulated user then logs in with its
//! certificate **and** its password, so its access token is bound to that
//! certificate (`cnf`), as on a real device.

use crate::server::{Connector, PASSWORD, Server};
use anyhow::{Context, Result, anyhow, bail};
use kizuna_client::{Client, ClientError, Tokens};
use kizuna_domain::TimelineId;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use std::time::Instant;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// What to create.
#[derive(Debug, Clone, Copy)]
pub struct SeedSpec {
    /// Number of free groups.
    pub groups: usize,
    /// Members per group (distinct users; each user is in one group).
    pub members: usize,
    /// REST calls in flight while seeding.
    pub concurrency: usize,
}

/// Refused login handshakes retried per user (100 ms apart) before giving up.
const HANDSHAKE_RETRIES: u32 = 50;

/// One simulated user: a staff account with its own device certificate.
#[derive(Debug, Clone)]
pub struct SimUser {
    /// Index in [`World::users`].
    pub index: usize,
    /// The group it belongs to (index in [`World::groups`]).
    pub group: usize,
    /// Its client: trusts the server's CA and presents the user's certificate.
    pub client: Client,
    /// Tokens from its certificate + password login (bound to the certificate).
    pub tokens: Tokens,
}

/// One free group with its `main` timeline.
#[derive(Debug, Clone)]
pub struct Group {
    /// Group id.
    pub id: i64,
    /// Its `main` timeline.
    pub timeline: TimelineId,
    /// Members (indices in [`World::users`]).
    pub members: Vec<usize>,
}

/// Everything seeded.
#[derive(Debug)]
pub struct World {
    /// Users, by index.
    pub users: Vec<SimUser>,
    /// Groups, by index.
    pub groups: Vec<Group>,
    /// Seconds seeding took.
    pub seed_seconds: f64,
    /// Login handshakes refused and retried (see [`seed`]'s note on CRLs).
    pub login_handshake_retries: u64,
}

fn id_of(v: &Value, what: &str) -> Result<i64> {
    v["id"]
        .as_i64()
        .ok_or_else(|| anyhow!("{what}: no id in the answer"))
}

/// A fresh P-256 device key and a CSR for it (PEM).
fn device_key_and_csr() -> Result<(String, String)> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .context("generating a device key")?;
    let csr = rcgen::CertificateParams::default()
        .serialize_request(&key)
        .context("making a CSR")?
        .pem()
        .context("encoding the CSR")?;
    Ok((key.serialize_pem(), csr))
}

/// What every user creation shares.
#[derive(Clone)]
struct Seeder {
    /// The operator's client (no certificate: operators have no facility).
    ops: Client,
    /// Makes the users' clients.
    connector: Connector,
    /// The operator's access token.
    op_token: Arc<str>,
    /// The facility every user belongs to.
    facility: i64,
    /// Counts refused login handshakes that were retried.
    handshake_retries: Arc<AtomicU64>,
}

/// Creates one staff account with a certificate and logs it in.
async fn make_user(s: Seeder, login: String, index: usize, group: usize) -> Result<SimUser> {
    let (server_client, connector, facility) = (&s.ops, &s.connector, s.facility);
    let handshake_retries = &s.handshake_retries;
    let op = Some(&*s.op_token);
    let (_, user) = server_client
        .post(
            "/v1/admin/users",
            op,
            &json!({"login": login, "display_name": format!("Loadgen user {index}"),
                    "kind": "staff", "profession": "nurse", "facility_id": facility,
                    "password": PASSWORD}),
        )
        .await
        .with_context(|| format!("creating user {index}"))?;
    let user_id = id_of(&user, "create user")?;
    let (key_pem, csr_pem) = device_key_and_csr()?;
    let (_, issued) = server_client
        .post(
            &format!("/v1/admin/users/{user_id}/certificates"),
            op,
            &json!({"device_label": format!("loadgen device {index}"), "csr_pem": csr_pem}),
        )
        .await
        .with_context(|| format!("issuing a certificate to user {index}"))?;
    let chain = issued["chain_pem"]
        .as_str()
        .ok_or_else(|| anyhow!("certificate answer has no chain_pem"))?
        .to_owned();
    let identity = Some((chain, key_pem));
    // Log in on a client of its own, then drop it: its pooled HTTP connection
    // must not stay open and count as server memory in the socket scenarios.
    //
    // The server learns a new facility CA's CRL only when its revocation
    // watcher next polls (`ca.revocation_poll_ms`, 1 s), so handshakes with the
    // first certificates of a facility are refused for up to that long
    // (`UnknownRevocationStatus`, alert `UnknownCA`). Retry those handshakes,
    // and count them: the report shows how often it happened.
    let mut attempt = 0;
    let tokens = loop {
        let login_client = connector.client(identity.clone())?;
        match login_client.login(&login, PASSWORD).await {
            Ok(t) => break t,
            Err(ClientError::Http(e)) if attempt < HANDSHAKE_RETRIES => {
                let _ = e;
                attempt += 1;
                handshake_retries.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => {
                return Err(anyhow::Error::new(e)
                    .context(format!("user {index}: certificate + password login")));
            }
        }
    };
    Ok(SimUser {
        index,
        group,
        client: connector.client(identity)?,
        tokens,
    })
}

/// Seeds `spec.groups` groups of `spec.members` users each.
pub async fn seed(server: &Server, spec: SeedSpec) -> Result<World> {
    let started = Instant::now();
    // Unique per run, so a reused (PostgreSQL) database never sees a login twice.
    let run = format!(
        "{:x}",
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as u64 & 0xff_ffff_ffff)
            .unwrap_or(0)
    );
    let ops_login = format!("lg{run}-ops");
    server
        .admin(&[
            "create-user",
            "--login",
            &ops_login,
            "--name",
            "Loadgen operator",
            "--kind",
            "operator",
        ])
        .await?;
    let f = server
        .admin(&["create-facility", "--name", "Loadgen facility"])
        .await?;
    if f["require_client_cert"] != json!(true) {
        bail!("the facility does not require client certificates: {f}");
    }
    let facility = id_of(&f, "create facility")?;
    let connector = server.connector();
    let ops = connector.client(None)?;
    let op_token: Arc<str> = ops
        .login(&ops_login, PASSWORD)
        .await
        .context("operator login")?
        .access_token
        .into();

    // Users, with certificates, logged in.
    let limit = Arc::new(Semaphore::new(spec.concurrency.max(1)));
    let retries = Arc::new(AtomicU64::new(0));
    let seeder = Seeder {
        ops: ops.clone(),
        connector,
        op_token: op_token.clone(),
        facility,
        handshake_retries: retries.clone(),
    };
    let mut tasks = JoinSet::new();
    for index in 0..spec.groups * spec.members {
        let permit = limit.clone().acquire_owned().await?;
        let seeder = seeder.clone();
        let login = format!("lg{run}-u{index}");
        tasks.spawn(async move {
            let _permit = permit;
            make_user(seeder, login, index, index / spec.members.max(1)).await
        });
    }
    let mut users = Vec::with_capacity(spec.groups * spec.members);
    while let Some(r) = tasks.join_next().await {
        users.push(r??);
    }
    users.sort_by_key(|u| u.index);

    // Groups and memberships.
    let mut groups = Vec::with_capacity(spec.groups);
    for g in 0..spec.groups {
        let (_, group) = ops
            .post(
                "/v1/admin/groups",
                Some(&op_token),
                &json!({"kind": "free", "name": format!("Loadgen group {g}")}),
            )
            .await
            .context("creating a group")?;
        let id = id_of(&group, "create group")?;
        let timeline = group["timelines"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["kind"] == "main"))
            .and_then(|t| t["timeline_id"].as_i64())
            .map(TimelineId)
            .ok_or_else(|| anyhow!("group {g} has no main timeline"))?;
        let members: Vec<usize> = (g * spec.members..(g + 1) * spec.members).collect();
        let mut adds = JoinSet::new();
        for &m in &members {
            let permit = limit.clone().acquire_owned().await?;
            let (ops, op_token) = (ops.clone(), op_token.clone());
            let user_id = users[m].tokens.user_id.get();
            adds.spawn(async move {
                let _permit = permit;
                ops.post(
                    &format!("/v1/admin/groups/{id}/members"),
                    Some(&op_token),
                    &json!({"user_id": user_id}),
                )
                .await
                .context("adding a member")
            });
        }
        while let Some(r) = adds.join_next().await {
            r??;
        }
        groups.push(Group {
            id,
            timeline,
            members,
        });
    }
    Ok(World {
        users,
        groups,
        seed_seconds: started.elapsed().as_secs_f64(),
        login_handshake_retries: retries.load(Ordering::Relaxed),
    })
}
