//! `hangar enqueue KIND --args JSON …`: builds the job exactly as the API and the Redis
//! ingress would (same limits and refusals), writes it, prints its id.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use hangar_workers::client::Client;
use hangar_workers::job::NewJob;
use hangar_workers::kinds::{HttpHandler, Registry};
use hangar_workers::routes::Routes;
use hangar_workers::wire::{self, Rejection};

use crate::cli::EnqueueArgs;
use crate::commands::output::print_json;
use crate::config::Config;
use crate::exit::Fatal;
/// `hangar enqueue`: validates everything before anything is written.
pub async fn enqueue(config: &Config, args: EnqueueArgs) -> Result<(), Fatal> {
    let job = build_job(config, &args)?;
    let store = crate::connect_migrated(config).await?;
    let enqueued = store.enqueue(&job).await?;
    if args.json {
        print_json(&enqueued);
    } else {
        println!("{}", enqueued.id);
    }
    Ok(())
}

fn build_job(config: &Config, args: &EnqueueArgs) -> Result<NewJob, Fatal> {
    let json: serde_json::Value = serde_json::from_str(&args.args)
        .map_err(|e| Fatal::config(format!("--args: not valid JSON: {e}")))?;
    if !json.is_object() {
        return Err(Fatal::config("--args: must be a JSON object"));
    }
    // The `http` kind seals its header values with the master key before they are stored;
    // only such a job reads (on SQLite: creates) the key.
    let mut registry = Registry::builtin();
    let has_headers = json
        .get("headers")
        .and_then(serde_json::Value::as_object)
        .is_some_and(|h| !h.is_empty());
    if args.kind == "http" && has_headers {
        let (ring, _) = crate::keys::keyring(config).map_err(|e| {
            Fatal::config(format!(
                "--args: headers: their values are stored sealed with the master key, which this process cannot use: {e}"
            ))
        })?;
        registry.register(
            "http",
            HttpHandler::with_targets(config.targets.clone()).with_keyring(Arc::new(ring)),
        );
    }
    let routes = Routes::new(&config.pools, &registry);
    let client = Client::new(Arc::new(registry), Arc::new(routes));
    // The same limits and refusals as the API and the Redis ingress.
    let identifiers = [
        ("KIND", Some(&args.kind)),
        ("--workspace", args.workspace.as_ref()),
        ("--idempotency-key", args.idempotency_key.as_ref()),
        ("--queue", args.queue.as_ref()),
    ];
    for (flag, value) in identifiers {
        if let Some(value) = value {
            wire::check_identifier(flag, value).map_err(|e| Fatal::config(e.to_string()))?;
        }
    }
    let mut job = client
        .check_caller_job(&args.kind, args.idempotency_key.as_deref())
        .and_then(|()| client.job(&args.kind, json))
        .map_err(|rejection| {
        Fatal::config(match rejection {
            Rejection::UnknownJobKind { kind, known } => {
                format!("unknown job kind '{kind}' (known: {known})")
            }
            Rejection::InternalKind(kind) => {
                format!("job kind '{kind}' is internal: only Hangar itself enqueues it")
            }
            Rejection::ReservedKey(prefix) => format!(
                "--idempotency-key: keys starting with '{prefix}' are reserved for Hangar's own jobs"
            ),
            Rejection::NoPool(kind) => format!(
                "no pool runs job kind '{kind}' (pools from {})",
                config.pools_source
            ),
            Rejection::InvalidArgs(error) => format!("--args: {error}"),
            other => other.to_string(),
        })
    })?;
    let queue = match &args.queue {
        Some(queue) => {
            client
                .routes()
                .route(&args.kind, Some(queue))
                .map_err(|e| Fatal::config(format!("--queue: {e}")))?
                .queue
        }
        None => job.queue,
    };
    let run_at = args
        .run_at
        .as_deref()
        .map(|t| {
            DateTime::parse_from_rfc3339(t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| Fatal::config(format!("--run-at: '{t}' is not RFC 3339: {e}")))
        })
        .transpose()?;
    if args.idempotency_key.as_deref().is_some_and(str::is_empty) {
        return Err(Fatal::config("--idempotency-key: must not be empty"));
    }
    job.queue = queue;
    job.run_at = run_at;
    job.priority = args.priority;
    job.workspace_id = args.workspace.clone();
    job.idempotency_key = args.idempotency_key.clone();
    Ok(job)
}
