//! The operator commands of the CLI, one module per command group; each prints a readable
//! table or, with `--json`, the JSON of CONTRACT.md (`output`). The long-running commands
//! (`serve`, `worker`, `planner`) live in `runtime`; `keys` and the schedule commands beside
//! the code they drive (`keys.rs`, `planner.rs`).

pub mod alert_channels;
pub mod alerts;
pub mod conflicts;
pub mod doctor;
pub mod enqueue;
pub mod events;
pub mod integrations;
pub mod jobs;
pub mod output;
pub mod progress;
pub mod queues;
pub mod shell_docs;
pub mod table;
pub mod tokens;
pub mod webhooks;
