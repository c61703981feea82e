//! `stepwise apply FILE...`: registers workflows and makes their stored schedules
//! those of the file (docs/design.md "Schedules").

use super::CliError;
use crate::output::outln;
use std::path::Path;
use stepwise_core::WorkflowFile;
use stepwise_store::{ScheduleSync, Store, WorkflowVersion};

/// Parses and validates a workflow file; errors name the file, line and field.
pub fn read_workflow_file(path: &Path) -> anyhow::Result<WorkflowFile> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    let base = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    stepwise_core::file::parse_workflow_file(&text, &path.display().to_string(), base.as_deref())
        .map_err(|e| CliError::input(e.to_string()))
}

/// Registers a workflow file's spec and syncs its schedules, telling on stderr
/// what changed in its schedules.
pub async fn apply_file(store: &dyn Store, path: &Path) -> anyhow::Result<WorkflowVersion> {
    let file = read_workflow_file(path)?;
    check_schedule_names(store, std::slice::from_ref(&file)).await?;
    register(store, &file).await
}

pub async fn apply(store: &dyn Store, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    // Validate every file before registering any, so a bad file changes nothing.
    let mut parsed = Vec::with_capacity(files.len());
    for f in files {
        parsed.push(read_workflow_file(f)?);
    }
    check_schedule_names(store, &parsed).await?;
    for file in parsed {
        let v = register(store, &file).await?;
        outln!("{} v{}", v.name, v.version);
    }
    Ok(())
}

/// Registers one file: the workflow first (a schedule names its workflow), then its
/// schedules.
async fn register(store: &dyn Store, file: &WorkflowFile) -> anyhow::Result<WorkflowVersion> {
    let v = store.register_workflow(&file.spec).await?;
    let note = if v.changed { "registered" } else { "unchanged" };
    eprintln!("{} v{}: {note}", v.name, v.version);
    let sync = store
        .sync_schedules(&file.spec.name, &file.schedules)
        .await
        // The store's refusal (InvalidInput) keeps its exit code 2 through the context.
        .map_err(|e| anyhow::Error::new(e).context(format!("workflow {}", file.spec.name)))?;
    report_sync(store, &sync).await?;
    Ok(v)
}

/// Schedule names are global: a name another workflow's schedule has (stored, or
/// in another of the files) is refused before anything is written. The store
/// refuses it too; checking first keeps the workflow itself unregistered.
async fn check_schedule_names(store: &dyn Store, files: &[WorkflowFile]) -> anyhow::Result<()> {
    let declared = || files.iter().flat_map(|f| f.schedules.iter());
    if declared().next().is_none() {
        return Ok(());
    }
    let mut owners: std::collections::HashMap<String, String> = store
        .list_schedules()
        .await?
        .into_iter()
        .map(|s| (s.spec.name, s.spec.workflow))
        .collect();
    // A schedule moving from one workflow to another in this same apply is fine
    // only when the old workflow's file is applied too and no longer declares it.
    for file in files {
        owners.retain(|_, owner| *owner != file.spec.name);
    }
    for schedule in declared() {
        match owners.insert(schedule.name.clone(), schedule.workflow.clone()) {
            Some(owner) if owner != schedule.workflow => {
                return Err(CliError::input(format!(
                    "schedule {:?} of workflow {:?} is already declared by workflow {owner:?}: \
                     schedule names are global",
                    schedule.name, schedule.workflow
                )))
            }
            _ => {}
        }
    }
    Ok(())
}

/// One stderr line per schedule that changed, with its next fire time.
pub async fn report_sync(store: &dyn Store, sync: &ScheduleSync) -> anyhow::Result<()> {
    if sync.created.is_empty() && sync.updated.is_empty() && sync.removed.is_empty() {
        return Ok(());
    }
    let views = store.list_schedules().await?;
    let next = |name: &str| {
        views
            .iter()
            .find(|v| v.spec.name == name)
            .and_then(|v| v.next_fire_at)
            .map(|t| format!(", next {}", super::schedules::time(t)))
            .unwrap_or_default()
    };
    for name in &sync.created {
        eprintln!("schedule {name}: created{}", next(name));
    }
    for name in &sync.updated {
        eprintln!("schedule {name}: updated{}", next(name));
    }
    for name in &sync.removed {
        eprintln!("schedule {name}: removed (it no longer fires)");
    }
    Ok(())
}
