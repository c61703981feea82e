//! `stepwise apply FILE...`

use super::CliError;
use crate::output::outln;
use std::path::Path;
use stepwise_core::WorkflowSpec;
use stepwise_store::{Store, WorkflowVersion};

/// Parses and validates a workflow file; errors name the file, line and field.
pub fn read_workflow_file(path: &Path) -> anyhow::Result<WorkflowSpec> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| CliError::input(format!("{}: cannot read: {e}", path.display())))?;
    let base = path
        .canonicalize()
        .ok()
        .and_then(|p| p.parent().map(Path::to_path_buf));
    let file = stepwise_core::file::parse_workflow_file(
        &text,
        &path.display().to_string(),
        base.as_deref(),
    )
    .map_err(|e| CliError::input(e.to_string()))?;
    Ok(file.spec)
}

/// Registers a workflow file's spec; prints nothing.
pub async fn apply_file(store: &dyn Store, path: &Path) -> anyhow::Result<WorkflowVersion> {
    let spec = read_workflow_file(path)?;
    Ok(store.register_workflow(&spec).await?)
}

pub async fn apply(store: &dyn Store, files: &[std::path::PathBuf]) -> anyhow::Result<()> {
    // Validate every file before registering any, so a bad file changes nothing.
    let mut specs = Vec::with_capacity(files.len());
    for f in files {
        specs.push(read_workflow_file(f)?);
    }
    for spec in specs {
        let v = store.register_workflow(&spec).await?;
        let note = if v.changed { "registered" } else { "unchanged" };
        outln!("{} v{}", v.name, v.version);
        eprintln!("{} v{}: {note}", v.name, v.version);
    }
    Ok(())
}
