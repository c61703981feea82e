//! The command line (docs/design.md "Outside interfaces").

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

#[derive(Parser)]
#[command(
    name = "stepwise",
    version,
    about = "Durable workflows on the database you already run"
)]
pub struct Cli {
    /// `sqlite://PATH` or `postgres://...` (`migrate`, `dev` and `run --local` create
    /// the schema, and the SQLite file).
    #[arg(
        long,
        global = true,
        env = "STEPWISE_DATABASE_URL",
        default_value = "sqlite://stepwise.db"
    )]
    pub database_url: String,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Create or upgrade the schema (under a lock, safe to run from several places).
    Migrate,
    /// Register or update workflow definitions from TOML files.
    Apply {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Start runs of a workflow (by name, or a TOML file, which is applied first).
    Run(RunArgs),
    /// Inspect runs.
    Runs {
        #[command(subcommand)]
        command: RunsCommand,
    },
    /// Inspect groups of runs.
    Groups {
        #[command(subcommand)]
        command: GroupsCommand,
    },
    /// Queues and concurrency keys: depth, slots and limits; or act on them.
    #[command(args_conflicts_with_subcommands = true)]
    Queues {
        #[command(subcommand)]
        command: Option<QueuesCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Schedules: what fires when, their next fire times and last runs; or act on one.
    #[command(args_conflicts_with_subcommands = true)]
    Schedules {
        #[command(subcommand)]
        command: Option<SchedulesCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Rate limits: each key's limit, starts admitted, steps waiting, pauses; or act
    /// on one.
    #[command(args_conflicts_with_subcommands = true)]
    Limits {
        #[command(subcommand)]
        command: Option<LimitsCommand>,
        #[arg(long)]
        json: bool,
    },
    /// Resource locks.
    Locks {
        #[command(subcommand)]
        command: LocksCommand,
    },
    /// A step's captured output.
    Logs {
        run: String,
        step: String,
        #[arg(long)]
        attempt: Option<u32>,
    },
    /// The event stream.
    Events {
        /// Keep waiting for new events.
        #[arg(long)]
        follow: bool,
        #[arg(long)]
        run: Option<String>,
        /// Start after this cursor (from an earlier `--json` line).
        #[arg(long)]
        after: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Send a signal to a run's mailbox (a `wait` step of the run consumes it):
    /// `signal RUN NAME`, or `signal --workflow W --key K NAME`.
    Signal(SignalArgs),
    /// Finish the attempt of a `complete = "callback"` step, by its callback token.
    Complete(CompleteArgs),
    /// Run a worker process.
    Worker(WorkerCommandArgs),
    /// The HTTP API (and an in-process worker unless --no-worker).
    Server(ServerArgs),
    /// Migrate, apply the workflows of a directory, and serve the API with a worker
    /// in one process; on a loopback address no token is needed.
    Dev {
        /// Apply every `*.toml` file in this directory first.
        #[arg(long)]
        workflows: Option<PathBuf>,
        #[arg(long, default_value = "127.0.0.1:8420")]
        listen: std::net::SocketAddr,
        #[command(flatten)]
        worker: WorkerArgs,
    },
    /// API tokens: the secret is printed once and stored hashed.
    Tokens {
        #[command(subcommand)]
        command: TokensCommand,
    },
    /// Live and recently dead workers.
    Workers {
        #[arg(long)]
        json: bool,
    },
    /// Delete terminal runs (with their steps, attempts and events) older than D.
    Prune {
        #[arg(long, value_parser = parse_duration)]
        older_than: Duration,
    },
    /// Built-in load generator (see BENCHMARKS.md).
    Bench(crate::commands::bench::BenchArgs),
    /// A bench worker process (started by `stepwise bench`).
    #[command(name = "__bench-worker", hide = true)]
    BenchWorker {
        #[arg(long, default_value_t = 24)]
        pool: usize,
    },
}

#[derive(Args)]
pub struct RunArgs {
    /// A registered workflow's name, or a workflow file.
    pub workflow: String,
    /// The run's input (JSON).
    #[arg(long, conflicts_with = "inputs")]
    pub input: Option<String>,
    /// One run per line of this JSON-lines file.
    #[arg(long)]
    pub inputs: Option<PathBuf>,
    /// Idempotency key: a second `run` with it returns the first run.
    #[arg(long)]
    pub key: Option<String>,
    #[arg(long)]
    pub concurrency_key: Option<String>,
    /// With `--inputs`: the runs form one sealed group of this name.
    #[arg(long)]
    pub group: Option<String>,
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub priority: i32,
    /// Start after this long (e.g. `10m`).
    #[arg(long, value_parser = parse_duration, conflicts_with = "at")]
    pub delay: Option<Duration>,
    /// Start at this time (RFC 3339, e.g. `2026-12-01T08:00:00Z`).
    #[arg(long)]
    pub at: Option<String>,
    /// Show progress and exit non-zero unless every run completes.
    #[arg(long)]
    pub wait: bool,
    /// Also run a worker in this process until the runs end (implies --wait).
    #[arg(long)]
    pub local: bool,
    /// With --local: the API server's URL for `callback.url` (see `worker --public-url`).
    #[arg(long, value_name = "URL", requires = "local", value_parser = parse_public_url)]
    pub public_url: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct SignalArgs {
    /// `RUN NAME`; with --workflow and --key, only `NAME`.
    #[arg(value_name = "RUN NAME", required = true, num_args = 1..=2)]
    pub target: Vec<String>,
    /// Address the run by its workflow and idempotency key instead of its id.
    #[arg(long, requires = "key")]
    pub workflow: Option<String>,
    /// The run's idempotency key (with --workflow).
    #[arg(long, requires = "workflow")]
    pub key: Option<String>,
    /// The signal's data (JSON; default null): the waiting step's output.
    #[arg(long)]
    pub data: Option<String>,
    /// The sender's id for this signal: sending it again is accepted once.
    #[arg(long)]
    pub id: Option<String>,
    /// With --workflow and --key: create the run with this input (JSON) when there
    /// is none yet, in the same transaction as the signal.
    #[arg(long, requires = "key")]
    pub start_input: Option<String>,
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("result").required(true).args(["output", "error"])))]
pub struct CompleteArgs {
    /// The token the step's attempt was given (`STEPWISE_CALLBACK_TOKEN`).
    pub token: String,
    /// The step's output (JSON): the step completes.
    #[arg(long)]
    pub output: Option<String>,
    /// The attempt failed with this message (retried while attempts are left).
    #[arg(long)]
    pub error: Option<String>,
    /// With --error: do not retry; the step fails for good.
    #[arg(long)]
    pub permanent: bool,
    #[arg(long)]
    pub json: bool,
}

#[derive(Subcommand)]
pub enum RunsCommand {
    /// Runs, newest first.
    List {
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        workflow: Option<String>,
        #[arg(long)]
        group: Option<String>,
        /// Only the child runs of this run.
        #[arg(long, value_name = "RUN")]
        parent: Option<String>,
        #[arg(long)]
        limit: Option<u32>,
        #[arg(long)]
        json: bool,
    },
    /// One run with its steps and attempts; an expanded `for_each` step is one line
    /// with its items counted.
    Show {
        id: String,
        /// Also list every item of each expanded `for_each` step.
        #[arg(long)]
        items: bool,
        #[arg(long)]
        json: bool,
    },
    /// Stop a run: unstarted steps are cancelled, running ones stopped, and the
    /// completed steps compensated (unless --no-compensate).
    Cancel {
        id: String,
        /// Do not undo completed steps; on a compensating run, stop compensating.
        #[arg(long)]
        no_compensate: bool,
        #[arg(long)]
        json: bool,
    },
    /// Reopen a failed, cancelled, timed-out or compensation_failed run.
    Retry {
        id: String,
        /// Re-run this step and everything downstream of it (default: the steps that
        /// did not complete).
        #[arg(long)]
        from: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Why a run, or each of its unfinished steps, is not running.
    Explain {
        id: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum QueuesCommand {
    /// Set a concurrency key's limit (an operator's limit: workflows no longer change
    /// it); raising it admits waiting runs at once.
    SetLimit {
        key: String,
        /// The new limit, at least 1.
        #[arg(allow_hyphen_values = true)]
        limit: String,
        #[arg(long)]
        json: bool,
    },
    /// Stop claiming a queue's steps (running ones finish).
    Pause { queue: String },
    /// Claim a paused queue's steps again.
    Resume { queue: String },
}

#[derive(Subcommand)]
pub enum SchedulesCommand {
    /// Every schedule: expression and zone, paused or not, next fire time, last runs.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Stop firing a schedule (missed fire times follow its catchup when resumed).
    Pause {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Fire a paused schedule again.
    Resume {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// Start one extra run now; prints its id.
    Trigger {
        name: String,
        #[arg(long)]
        json: bool,
    },
    /// A run for every fire time from --from to --to (inclusive; at most 1000);
    /// fire times that already have their run keep it.
    Backfill {
        name: String,
        /// RFC 3339, e.g. 2026-12-01T00:00:00Z.
        #[arg(long)]
        from: String,
        /// RFC 3339, e.g. 2026-12-02T00:00:00Z.
        #[arg(long)]
        to: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum LimitsCommand {
    /// Every rate limit key: limit per period, burst, starts admitted, steps waiting,
    /// pause and next start.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Set a key's limit (creating the key); it applies to the next claim and
    /// workflow files no longer change it.
    Set {
        key: String,
        /// Starts per --per, on average (at least 1).
        #[arg(long, allow_hyphen_values = true)]
        limit: String,
        /// The period, e.g. 1s or 1m.
        #[arg(long, value_parser = parse_duration)]
        per: Duration,
        /// Starts admitted at once after a quiet spell (default 1: evenly spaced).
        #[arg(long, allow_hyphen_values = true)]
        burst: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Start none of a key's steps until a time (RFC 3339) or for a while.
    #[command(group(clap::ArgGroup::new("how_long").required(true).args(["until", "for_"])))]
    Pause {
        key: String,
        /// RFC 3339, e.g. 2026-12-01T08:00:00Z (database clock).
        #[arg(long)]
        until: Option<String>,
        /// A duration from now (database clock), e.g. 10m.
        #[arg(long = "for", value_parser = parse_duration)]
        for_: Option<Duration>,
        #[arg(long)]
        json: bool,
    },
    /// End a key's pause.
    Resume {
        key: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum LocksCommand {
    /// Locks held now.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Take a lock for D (a held lock exits 3, even for its holder); prints the token.
    Acquire {
        key: String,
        #[arg(long, value_parser = parse_duration)]
        ttl: Duration,
        #[arg(long)]
        json: bool,
    },
    /// Give a lock back with the token `acquire` printed.
    Release {
        key: String,
        #[arg(long)]
        token: String,
    },
    /// Take a lock away from whoever holds it (recorded with the reason).
    ForceRelease {
        key: String,
        #[arg(long)]
        reason: String,
    },
}

#[derive(Subcommand)]
pub enum GroupsCommand {
    /// A group's counts and members.
    Show {
        name: String,
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
pub enum TokensCommand {
    /// A new token; its secret is printed alone on the last line of stdout.
    Create {
        #[arg(long)]
        scope: String,
        /// Expires after this long (never when not given).
        #[arg(long, value_parser = parse_duration)]
        expires: Option<Duration>,
        /// What it is for.
        #[arg(long, default_value = "token")]
        name: String,
    },
    /// Every token, without secrets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Revoke a token by id.
    Revoke { id: String },
}

#[derive(Args)]
pub struct ServerArgs {
    #[arg(long, default_value = "127.0.0.1:8420")]
    pub listen: std::net::SocketAddr,
    /// Serve the API only; run workers as their own processes.
    #[arg(long)]
    pub no_worker: bool,
    /// Serve without tokens (only where every client that can reach --listen is
    /// trusted). Without it the server needs at least one live token.
    #[arg(long)]
    pub insecure_no_auth: bool,
    /// Request bodies larger than this many bytes get 413.
    #[arg(long, default_value_t = stepwise_server::DEFAULT_BODY_LIMIT)]
    pub body_limit: usize,
    #[command(flatten)]
    pub worker: WorkerArgs,
}

#[derive(Args)]
pub struct WorkerCommandArgs {
    #[command(flatten)]
    pub worker: WorkerArgs,
    /// Serve this process's metrics (Prometheus text) at http://ADDR/metrics; off
    /// when not given. No token is asked: listen where only the scraper can reach.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
}

#[derive(Args)]
pub struct WorkerArgs {
    /// `QUEUE=N` consumers for a queue; `*` serves every queue no other pool names.
    #[arg(long = "pool", default_value = "*=8")]
    pub pools: Vec<stepwise_engine::PoolSpec>,
    /// How long a silent worker keeps its steps (heartbeats every third of it).
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub lease: Duration,
    /// How long SIGTERM waits for running steps before handing them back.
    #[arg(long, value_parser = parse_duration, default_value = "30s")]
    pub shutdown_timeout: Duration,
    /// Prune terminal runs older than this, every few minutes (off when not given).
    #[arg(long, value_parser = parse_duration)]
    pub retention: Option<Duration>,
    /// The API server's URL as outside callers reach it: a `complete = "callback"`
    /// step then gets `callback.url` (URL/v1/callbacks/TOKEN) in its context.
    #[arg(long, value_name = "URL", value_parser = parse_public_url)]
    pub public_url: Option<String>,
}

/// An `http(s)://host[:port][/path]` URL, kept without a trailing `/`.
pub fn parse_public_url(s: &str) -> Result<String, String> {
    let rest = s
        .strip_prefix("https://")
        .or_else(|| s.strip_prefix("http://"))
        .ok_or_else(|| format!("{s:?} is not an http:// or https:// URL"))?;
    let host = rest.split('/').next().unwrap_or_default();
    if host.is_empty() || s.contains(char::is_whitespace) || s.contains(['?', '#']) {
        return Err(format!(
            "{s:?} is not a base URL such as https://stepwise.example.com"
        ));
    }
    Ok(s.trim_end_matches('/').to_string())
}

pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{s:?} is not a duration like 30s or 5m: {e}"))
}
