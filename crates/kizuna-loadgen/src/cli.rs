//! Command-line flags. Every figure a run depends on is a flag, and the
//! report repeats them all.

use clap::{Args, Parser, Subcommand};
use serde::Serialize;
use std::path::PathBuf;

/// Starts a Kizuna server on loopback, seeds it, drives one scenario over
/// mutual TLS + WebSocket and writes a report (JSON, Markdown, PNG).
#[derive(Debug, Parser)]
#[command(name = "kizuna-loadgen", version)]
pub struct Cli {
    /// Settings shared by every scenario.
    #[command(flatten)]
    pub common: Common,
    /// The scenario.
    #[command(subcommand)]
    pub scenario: Scenario,
}

/// Settings shared by every scenario.
#[derive(Debug, Clone, Args, Serialize)]
pub struct Common {
    /// The `kizuna` binary. Default: `target/release/kizuna`, else
    /// `target/debug/kizuna`, under the workspace this was built from.
    #[arg(long, global = true)]
    pub server_bin: Option<PathBuf>,
    /// Database URL (`postgres://…`); default: embedded SQLite in a fresh data directory.
    #[arg(long, global = true)]
    pub database: Option<String>,
    /// SQLite durability: `full` (the server's default) or `normal`.
    #[arg(long, global = true, default_value = "full")]
    pub sqlite_sync: String,
    /// Directory for report.json, report.md and latency.png.
    #[arg(long, global = true, default_value = "loadgen-report")]
    pub out: PathBuf,
    /// Stop (and fail) if the whole run takes longer than this.
    #[arg(long, global = true, default_value_t = 1800)]
    pub max_seconds: u64,
    /// The server's log filter (`KIZUNA_LOG`).
    #[arg(long, global = true, default_value = "warn")]
    pub server_log: String,
    /// Keep the server's data directory (database, log) after the run.
    #[arg(long, global = true)]
    pub keep_data: bool,
    /// REST calls (and socket openings) in flight while seeding and connecting.
    #[arg(long, global = true, default_value_t = 16)]
    pub setup_concurrency: usize,
    /// Body length of each post, bytes (the `lg:` tag, then padding).
    #[arg(long, global = true, default_value_t = 120)]
    pub body_bytes: usize,
    /// Extra server settings, `KIZUNA__SECTION__KEY=value` (repeatable).
    #[arg(long = "server-env", global = true)]
    pub server_env: Vec<String>,
}

/// The scenarios.
#[derive(Debug, Clone, Subcommand, Serialize)]
#[serde(tag = "scenario", rename_all = "snake_case")]
pub enum Scenario {
    /// G groups × N members, each member on its own socket; S senders post.
    Fanout(FanoutArgs),
    /// A member offline while K posts arrive reconnects and catches up.
    Resume(ResumeArgs),
    /// C authenticated, subscribed sockets held open with heartbeats.
    Idle(SocketArgs),
    /// C subscribed clients drop and reconnect at once.
    Storm(StormArgs),
}

impl Scenario {
    /// The scenario's name.
    pub fn name(&self) -> &'static str {
        match self {
            Scenario::Fanout(_) => "fanout",
            Scenario::Resume(_) => "resume",
            Scenario::Idle(_) => "idle",
            Scenario::Storm(_) => "storm",
        }
    }
}

/// `fanout` flags.
#[derive(Debug, Clone, Args, Serialize)]
pub struct FanoutArgs {
    /// Groups.
    #[arg(long, default_value_t = 1)]
    pub groups: usize,
    /// Members per group (each on its own socket).
    #[arg(long, default_value_t = 50)]
    pub members: usize,
    /// Senders (spread over the groups; each posts on a second socket).
    #[arg(long, default_value_t = 10)]
    pub senders: usize,
    /// Posts per sender.
    #[arg(long, default_value_t = 200)]
    pub posts: u64,
    /// Open loop at this many posts/s in total; without it, closed loop.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open loop: most unanswered posts per sender.
    #[arg(long, default_value_t = 10_000)]
    pub window: usize,
    /// After the last answer, wait at most this long for deliveries.
    #[arg(long, default_value_t = 30)]
    pub drain_secs: u64,
}

/// `resume` flags.
#[derive(Debug, Clone, Args, Serialize)]
pub struct ResumeArgs {
    /// Posts missed while offline (K).
    #[arg(long, default_value_t = 2000)]
    pub missed: u64,
    /// Times to go offline, miss K posts and resume.
    #[arg(long, default_value_t = 5)]
    pub rounds: u32,
    /// Group size: the resuming member, the sender, and online members.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Unanswered posts the sender keeps in flight while the member is away.
    #[arg(long, default_value_t = 64)]
    pub window: usize,
}

/// `idle` flags.
#[derive(Debug, Clone, Args, Serialize)]
pub struct SocketArgs {
    /// Sockets (C).
    #[arg(long, default_value_t = 1000)]
    pub sockets: usize,
    /// Sockets per user (1 = every socket is its own user with its own certificate).
    #[arg(long, default_value_t = 1)]
    pub sockets_per_user: usize,
    /// Users per group; each socket subscribes to its user's group.
    #[arg(long, default_value_t = 50)]
    pub group_size: usize,
    /// How long to hold the sockets open.
    #[arg(long, default_value_t = 30)]
    pub hold_secs: u64,
    /// Server heartbeat interval (`server.heartbeat_secs`).
    #[arg(long, default_value_t = 5)]
    pub heartbeat_secs: u64,
    /// Wait this long after seeding before the baseline reading, so the
    /// seeding's keep-alive HTTP connections are closed by then.
    #[arg(long, default_value_t = 6)]
    pub settle_secs: u64,
}

/// `storm` flags.
#[derive(Debug, Clone, Args, Serialize)]
pub struct StormArgs {
    /// Clients (C), each one socket.
    #[arg(long, default_value_t = 1000)]
    pub clients: usize,
    /// Sockets per user (1 = every client is its own user with its own certificate).
    #[arg(long, default_value_t = 1)]
    pub sockets_per_user: usize,
    /// Users per group.
    #[arg(long, default_value_t = 50)]
    pub group_size: usize,
    /// Posts/s (all groups together) while the storm happens, so reconnecting
    /// clients must catch up.
    #[arg(long, default_value_t = 20.0)]
    pub post_rate: f64,
    /// Seconds of posting before the storm.
    #[arg(long, default_value_t = 2)]
    pub before_secs: u64,
    /// Seconds of posting after the storm begins.
    #[arg(long, default_value_t = 10)]
    pub after_secs: u64,
    /// Give up on clients not resubscribed after this long.
    #[arg(long, default_value_t = 120)]
    pub give_up_secs: u64,
}
