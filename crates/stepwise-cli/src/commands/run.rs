//! `stepwise run WORKFLOW|FILE ...`

use super::{apply, CliError};
use crate::cli::RunArgs;
use crate::output::outln;
use indicatif::{ProgressBar, ProgressStyle};
use serde_json::Value;
use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use stepwise_core::{RunId, RunStatus};
use stepwise_engine::{PoolSpec, Worker, ANY_QUEUE};
use stepwise_store::{CreatedRun, NewRun, RunBatch, StartAt, Store};
use tokio::io::{AsyncBufReadExt, AsyncReadExt};
use tokio_util::sync::CancellationToken;

/// Runs created per transaction when streaming `--inputs` without a group.
const CHUNK: usize = 1000;

pub async fn run(store: Arc<dyn Store>, args: &RunArgs) -> anyhow::Result<()> {
    let workflow = resolve_workflow(&*store, &args.workflow).await?;
    let start = match (&args.delay, &args.at) {
        (Some(d), _) => StartAt::After(*d),
        (None, Some(at)) => StartAt::At(
            chrono::DateTime::parse_from_rfc3339(at)
                .map_err(|e| CliError::input(format!("--at {at:?} is not an RFC 3339 time: {e}")))?
                .into(),
        ),
        (None, None) => StartAt::Now,
    };
    let template = NewRun {
        workflow: workflow.clone(),
        input: Value::Null,
        idempotency_key: args.key.clone(),
        concurrency_key: args.concurrency_key.clone(),
        priority: args.priority,
        start,
        parent: None,
    };
    let mut ids = Vec::new();
    match &args.inputs {
        Some(path) => {
            stream_inputs(&*store, path, &template, args, &mut ids).await?;
        }
        None => {
            if args.group.is_some() {
                return Err(CliError::input("--group needs --inputs FILE.jsonl"));
            }
            let input = match &args.input {
                Some(text) => serde_json::from_str(text)
                    .map_err(|e| CliError::input(format!("--input is not JSON: {e}")))?,
                None => Value::Object(Default::default()),
            };
            let run = NewRun {
                input,
                ..template.clone()
            };
            let created = store
                .create_runs(RunBatch {
                    group: None,
                    runs: vec![run],
                })
                .await?;
            print_created(&created, args.json)?;
            ids.extend(created.iter().map(|c| c.id));
        }
    }
    if !(args.wait || args.local) {
        return Ok(());
    }
    let local = if args.local {
        let shutdown = CancellationToken::new();
        let options = crate::commands::worker::options(&crate::cli::WorkerArgs {
            pools: vec![PoolSpec {
                queue: ANY_QUEUE.into(),
                consumers: 8,
            }],
            lease: Duration::from_secs(30),
            shutdown_timeout: Duration::from_secs(10),
            retention: None,
            public_url: args.public_url.clone(),
        })?;
        let worker = Worker::new(store.clone(), options);
        let s = shutdown.clone();
        Some((shutdown, tokio::spawn(async move { worker.run(s).await })))
    } else {
        None
    };
    let outcome = wait_for(&*store, &ids).await;
    if let Some((shutdown, handle)) = local {
        shutdown.cancel();
        handle.await??;
    }
    let failed = outcome?;
    if failed > 0 {
        return Err(CliError::failed(format!(
            "{failed} of {} runs did not complete (see `stepwise runs show ID`)",
            ids.len()
        )));
    }
    Ok(())
}

/// A workflow name, or a file that is applied first and whose name is used.
async fn resolve_workflow(store: &dyn Store, arg: &str) -> anyhow::Result<String> {
    let path = Path::new(arg);
    if path.is_file() {
        let version = apply::apply_file(store, path).await?;
        eprintln!(
            "{} v{} applied from {}",
            version.name,
            version.version,
            path.display()
        );
        return Ok(version.name);
    }
    if store.get_workflow(arg, None).await?.is_none() {
        return Err(CliError::not_found(format!(
            "no workflow or file named {arg:?}; register it with `stepwise apply FILE`"
        )));
    }
    Ok(arg.to_string())
}

async fn stream_inputs(
    store: &dyn Store,
    path: &Path,
    template: &NewRun,
    args: &RunArgs,
    ids: &mut Vec<RunId>,
) -> anyhow::Result<()> {
    // Runs are created in chunks as the file streams, so a bad line found late
    // would leave the runs before it started: a file is checked whole first (a
    // pipe cannot be read twice, and is checked as it streams).
    let regular = tokio::fs::metadata(path).await.is_ok_and(|m| m.is_file());
    if regular {
        let mut check = Inputs::open(path).await?;
        while check.next().await?.is_some() {}
    }
    let mut inputs = Inputs::open(path).await?;
    let mut batch = Vec::new();
    while let Some((line_no, input)) = inputs.next().await? {
        batch.push(NewRun {
            input,
            idempotency_key: template
                .idempotency_key
                .as_ref()
                .map(|k| format!("{k}-{line_no}")),
            ..template.clone()
        });
        // A group is sealed in one transaction; without one, stream in chunks so a
        // huge file runs in bounded memory.
        if args.group.is_none() && batch.len() >= CHUNK {
            ids.extend(create(store, None, std::mem::take(&mut batch), args).await?);
        }
    }
    if !batch.is_empty() || args.group.is_some() {
        ids.extend(create(store, args.group.clone(), batch, args).await?);
    }
    Ok(())
}

/// The inputs of a JSON-lines file, one per non-blank line, each at most the API's
/// body limit, so the CLI accepts no input the API would refuse.
struct Inputs {
    reader: tokio::io::BufReader<tokio::fs::File>,
    path: std::path::PathBuf,
    line_no: usize,
    line: Vec<u8>,
}

impl Inputs {
    const LIMIT: usize = stepwise_server::DEFAULT_BODY_LIMIT;

    async fn open(path: &Path) -> anyhow::Result<Self> {
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
        Ok(Self {
            reader: tokio::io::BufReader::new(file),
            path: path.to_path_buf(),
            line_no: 0,
            line: Vec::new(),
        })
    }

    /// The next input and its line number; `None` at the end of the file.
    async fn next(&mut self) -> anyhow::Result<Option<(usize, Value)>> {
        loop {
            self.line.clear();
            // Never more than the limit (and a byte to know it was passed) in memory.
            let read = (&mut self.reader)
                .take(Self::LIMIT as u64 + 2)
                .read_until(b'\n', &mut self.line)
                .await
                .map_err(|e| {
                    CliError::input(format!("{}: cannot read: {e}", self.path.display()))
                })?;
            if read == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let text = self.line.strip_suffix(b"\n").unwrap_or(&self.line);
            let text = text.strip_suffix(b"\r").unwrap_or(text);
            if text.len() > Self::LIMIT {
                return Err(CliError::input(format!(
                    "{}:{}: the input is larger than {} bytes, the API's body limit",
                    self.path.display(),
                    self.line_no,
                    Self::LIMIT
                )));
            }
            if text.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let input = serde_json::from_slice(text).map_err(|e| {
                CliError::input(format!(
                    "{}:{}: not JSON: {e}",
                    self.path.display(),
                    self.line_no
                ))
            })?;
            return Ok(Some((self.line_no, input)));
        }
    }
}

/// Creates one batch; returns the ids to wait for (none unless `--wait`/`--local`).
async fn create(
    store: &dyn Store,
    group: Option<String>,
    runs: Vec<NewRun>,
    args: &RunArgs,
) -> anyhow::Result<Vec<RunId>> {
    let created = store.create_runs(RunBatch { group, runs }).await?;
    print_created(&created, args.json)?;
    Ok(if args.wait || args.local {
        created.iter().map(|c| c.id).collect()
    } else {
        vec![]
    })
}

fn print_created(created: &[CreatedRun], json: bool) -> anyhow::Result<()> {
    for c in created {
        if json {
            outln!(
                "{}",
                serde_json::json!({ "id": c.id, "created": c.created })
            );
        } else {
            outln!("{}", c.id);
        }
        if !c.created {
            eprintln!("run {} already existed for this idempotency key", c.id);
        }
    }
    Ok(())
}

/// Waits until every run is terminal, showing progress on stderr; returns how many
/// did not complete.
async fn wait_for(store: &dyn Store, ids: &[RunId]) -> anyhow::Result<usize> {
    let bar = ProgressBar::new(ids.len() as u64);
    let single = ids.len() == 1;
    bar.set_style(
        ProgressStyle::with_template(if single {
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} steps  {msg}"
        } else {
            "{spinner} {elapsed_precise} [{bar:30}] {pos}/{len} runs  {msg}"
        })
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    let mut open: BTreeSet<RunId> = ids.iter().copied().collect();
    let mut not_completed = 0;
    while !open.is_empty() {
        let mut finished = Vec::new();
        for id in open.iter().take(200) {
            let Some(run) = store.get_run(*id).await? else {
                continue;
            };
            if single {
                bar.set_length(run.progress.total as u64);
                bar.set_position(run.progress.done as u64);
                let running: Vec<&str> = run
                    .steps
                    .iter()
                    .filter(|s| s.status.as_str() == "running")
                    .map(|s| s.name.as_str())
                    .collect();
                bar.set_message(if running.is_empty() {
                    run.status.to_string()
                } else {
                    format!("running {}", running.join(", "))
                });
            }
            if run.status.is_terminal() {
                if run.status != RunStatus::Completed {
                    not_completed += 1;
                    bar.println(format!(
                        "run {} {}{}",
                        run.id,
                        run.status,
                        run.error.map(|e| format!(": {e}")).unwrap_or_default()
                    ));
                }
                finished.push(*id);
            }
        }
        for id in finished {
            open.remove(&id);
            if !single {
                bar.inc(1);
            }
        }
        if !open.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    bar.finish_and_clear();
    let done = ids.len() - not_completed;
    eprintln!("{done}/{} runs completed", ids.len());
    Ok(not_completed)
}
