//! `stepwise signal` and `stepwise complete`: what ends a step that waits from
//! outside (docs/design.md "Outside interfaces": exit 4 for an unknown run, 3 for a
//! run that ended or a refused callback, 2 for bad input).

use super::{parse_run_id, CliError};
use crate::cli::{CompleteArgs, SignalArgs};
use crate::output::outln;
use serde_json::Value;
use stepwise_store::{
    CallbackOutcome, CallbackRequest, CallbackResult, NewRun, SignalDelivery, SignalOutcome,
    SignalRequest, SignalTarget, Store,
};

pub async fn signal(store: &dyn Store, args: &SignalArgs) -> anyhow::Result<()> {
    let (target, name) = target(args)?;
    let data = match &args.data {
        Some(text) => json_arg("--data", text)?,
        None => Value::Null,
    };
    if args.id.as_deref() == Some("") {
        return Err(CliError::input("--id must not be empty"));
    }
    let request = SignalRequest {
        target,
        name: name.clone(),
        data,
        id: args.id.clone(),
    };
    let outcome = store.send_signal(&request).await?;
    let (delivery, repeated) = match &outcome {
        SignalOutcome::Delivered(d) => (d, false),
        SignalOutcome::Duplicate(d) => (d, true),
        SignalOutcome::UnknownRun => return Err(CliError::not_found(unknown_run(args))),
        SignalOutcome::RunFinished { run_id, status } => {
            return Err(CliError::conflict(format!(
                "run {run_id} already ended ({status}); no step will ever take signal {name}"
            )))
        }
    };
    if args.json {
        outln!("{}", serde_json::to_string(&outcome)?);
    } else {
        outln!("{} {} {}", delivery.run_id, delivery.name, delivery.seq);
    }
    eprintln!("{}", delivered(delivery, repeated));
    Ok(())
}

/// The run and the signal's name from `RUN NAME`, or `NAME` with `--workflow --key`.
fn target(args: &SignalArgs) -> anyhow::Result<(SignalTarget, String)> {
    let name = |s: &str| {
        if stepwise_core::spec::valid_name(s) {
            Ok(s.to_string())
        } else {
            Err(CliError::input(format!(
                "{s:?} is not a valid signal name: use 1-128 letters, digits, '-', '_' or '.'"
            )))
        }
    };
    match (&args.workflow, &args.key, args.target.as_slice()) {
        (Some(workflow), Some(key), [signal]) => {
            let start = match &args.start_input {
                Some(text) => {
                    let input = json_arg("--start-input", text)?;
                    Some(NewRun::new(workflow.clone(), input).idempotency_key(key.clone()))
                }
                None => None,
            };
            let target = SignalTarget::Key {
                workflow: workflow.clone(),
                idempotency_key: key.clone(),
                start,
            };
            Ok((target, name(signal)?))
        }
        (Some(_), Some(_), _) => Err(CliError::input(
            "with --workflow and --key, give only the signal's NAME",
        )),
        (None, None, [run, signal]) => Ok((SignalTarget::Run(parse_run_id(run)?), name(signal)?)),
        _ => Err(CliError::input(
            "give RUN NAME, or --workflow W --key K NAME",
        )),
    }
}

fn unknown_run(args: &SignalArgs) -> String {
    match (&args.workflow, &args.key) {
        (Some(w), Some(k)) => format!(
            "no run of workflow {w:?} has idempotency key {k:?} (--start-input JSON creates it)"
        ),
        _ => format!("no run {}", args.target[0]),
    }
}

fn delivered(d: &SignalDelivery, repeated: bool) -> String {
    let mut text = if repeated {
        format!(
            "signal {} with id {:?} was delivered to run {} before; not sent again",
            d.name,
            d.id.as_deref().unwrap_or(""),
            d.run_id
        )
    } else {
        format!("signal {} delivered to run {}", d.name, d.run_id)
    };
    if d.run_created {
        text.push_str(" (the run was created for it)");
    }
    match &d.consumed_by {
        Some(step) => text.push_str(&format!("; step {step} took it")),
        None => text.push_str("; it waits in the mailbox until a step waits for it"),
    }
    text
}

pub async fn complete(store: &dyn Store, args: &CompleteArgs) -> anyhow::Result<()> {
    if args.token.trim().is_empty() {
        return Err(CliError::input("the callback token is empty"));
    }
    let result = match (&args.output, &args.error) {
        (Some(_), None) if args.permanent => {
            return Err(CliError::input(
                "--permanent goes with --error, not --output",
            ))
        }
        (Some(text), None) => CallbackResult::Output(json_arg("--output", text)?),
        (None, Some(message)) => CallbackResult::Error {
            message: message.clone(),
            permanent: args.permanent,
        },
        _ => return Err(CliError::input("give --output JSON or --error MESSAGE")),
    };
    let request = CallbackRequest {
        token: args.token.clone(),
        result,
    };
    let outcome = store.complete_callback(&request).await?;
    let summary = match &outcome {
        CallbackOutcome::Refused => {
            return Err(CliError::conflict(
                "callback refused: the token is unknown, or its attempt is no longer the \
                 step's current one (a newer attempt runs, or the step or its run ended)",
            ))
        }
        CallbackOutcome::Completed { run_id, step } => {
            format!("{run_id} {step} completed")
        }
        CallbackOutcome::Retrying {
            run_id,
            step,
            run_after,
        } => format!(
            "{run_id} {step} failed this attempt; the next starts at {}",
            run_after.to_rfc3339()
        ),
        CallbackOutcome::Failed { run_id, step } => format!("{run_id} {step} failed"),
    };
    if args.json {
        outln!("{}", serde_json::to_string(&outcome)?);
    } else {
        outln!("{summary}");
    }
    Ok(())
}

fn json_arg(flag: &str, text: &str) -> anyhow::Result<Value> {
    serde_json::from_str(text).map_err(|e| CliError::input(format!("{flag} is not JSON: {e}")))
}
