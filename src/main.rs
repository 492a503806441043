//! The `hangar` binary: parses the command line, loads configuration once, sets up logging
//! and runs one command. Exit status: 0 on success, 2 for bad input or configuration (one
//! message on stderr), 1 for other failures.

use std::process::ExitCode;

use clap::Parser;

use hangar::cli::{self, AlertsCommand, BenchCommand, Cli, Command, IngressCommand, KeysCommand};
use hangar::config::{Config, Flags};
use hangar::exit::Fatal;
use hangar::{bench, commands, connect, keys, planner, redis_ingress, runtime};

fn main() -> ExitCode {
    let cli = Cli::parse_from(cli::settings_after_subcommand(
        std::env::args_os().collect(),
    ));
    init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("hangar: cannot start the async runtime: {error}");
            return ExitCode::from(1);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(fatal) => {
            eprintln!("hangar: {fatal}");
            ExitCode::from(fatal.status)
        }
    }
}

/// Logs on stderr: text for a person at a terminal, one JSON object a line for a journal or
/// a collector (unless `HANGAR_LOG_FORMAT` says `text` or `json`). A job's
/// lines carry its fields (job_id, kind, queue, attempt, workspace) under `"span"`.
fn init_tracing() {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("HANGAR_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let terminal = std::io::stderr().is_terminal();
    let json = match std::env::var("HANGAR_LOG_FORMAT").as_deref() {
        Ok("json") => true,
        Ok("text") => false,
        _ => !terminal,
    };
    // Colour codes only for a person at a terminal: a log file or collector gets plain text.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(terminal)
        .with_writer(std::io::stderr);
    if json {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .init();
    } else {
        builder.init();
    }
}

async fn run(cli: Cli) -> Result<(), Fatal> {
    let file = cli.config_file.as_deref();
    let load = |flags: Flags| Config::load(file, flags);
    match cli.command {
        Command::Serve(args) => {
            let config = load(Flags::new().with(&args))?;
            let pools = config.pools.clone();
            runtime::run(
                &config,
                runtime::Plan {
                    migrate: true,
                    pools,
                    planner: true,
                },
            )
            .await
        }
        Command::Worker(args) => {
            let config = load(Flags::new().with(&args))?;
            let pools = if args.only_pools.is_empty() {
                config.pools.clone()
            } else {
                let mut chosen = Vec::new();
                for name in &args.only_pools {
                    match config.pools.iter().find(|p| &p.name == name) {
                        Some(pool) => chosen.push(pool.clone()),
                        None => {
                            let known: Vec<&str> =
                                config.pools.iter().map(|p| p.name.as_str()).collect();
                            return Err(Fatal::config(format!(
                                "--pool: unknown pool '{name}' (known: {})",
                                known.join(", ")
                            )));
                        }
                    }
                }
                chosen
            };
            runtime::run(
                &config,
                runtime::Plan {
                    migrate: false,
                    pools,
                    planner: false,
                },
            )
            .await
        }
        Command::Planner(args) => {
            let config = load(Flags::new().with(&args))?;
            runtime::run(
                &config,
                runtime::Plan {
                    migrate: false,
                    pools: Vec::new(),
                    planner: true,
                },
            )
            .await
        }
        Command::Migrate(args) => {
            let config = load(Flags::new().with(&args.database))?;
            let store = connect(&config).await?;
            let applied = hangar::store::migrate(store.database()).await?;
            if applied.is_empty() {
                println!(
                    "up to date: no migration to apply ({})",
                    store.backend_name()
                );
            } else {
                println!("applied {} ({})", applied.join(", "), store.backend_name());
            }
            Ok(())
        }
        Command::Enqueue(args) => {
            let config = load(
                Flags::new()
                    .with(&args.database)
                    .with(&args.pools)
                    .with(&args.targets)
                    .with(&args.key),
            )?;
            commands::enqueue::enqueue(&config, args).await
        }
        Command::Events { database, command } => {
            commands::events::command(&load(Flags::new().with(&database))?, command).await
        }
        Command::Jobs { database, command } => {
            commands::jobs::jobs(&load(Flags::new().with(&database))?, command).await
        }
        Command::Alerts { database, command } => {
            let flags = match &command {
                AlertsCommand::Channels { settings, .. } => Flags::new()
                    .with(&settings.targets)
                    .with(&settings.key)
                    .with(&settings.public_url),
                _ => Flags::new(),
            };
            commands::alerts::alerts(&load(flags.with(&database))?, command).await
        }
        Command::Conflicts { database, command } => {
            commands::conflicts::command(&load(Flags::new().with(&database))?, command).await
        }
        Command::Integrations(args) => {
            let config = load(Flags::new().with(&args.database).with(&args.pools))?;
            commands::integrations::command(&config, args.command).await
        }
        Command::Tokens { database, command } => {
            commands::tokens::command(&load(Flags::new().with(&database))?, command).await
        }
        Command::Keys { command } => {
            let flags = match &command {
                KeysCommand::Rotate { database, key, .. } => Flags::new().with(database).with(key),
                KeysCommand::Generate => Flags::new(),
            };
            keys::command(&load(flags)?, command).await
        }
        Command::Ingress { redis, command } => {
            let config = load(Flags::new().with(&redis))?;
            match command {
                IngressCommand::Dead {
                    limit,
                    json,
                    action: None,
                } => redis_ingress::list_dead(&config, limit, json).await,
                IngressCommand::Dead {
                    action: Some(action),
                    ..
                } => redis_ingress::dead_letter_actions::command(&config, action).await,
            }
        }
        Command::Schedules {
            database,
            pools,
            schedules,
            command,
        } => {
            let flags = Flags::new().with(&database).with(&pools).with(&schedules);
            planner::command(&load(flags)?, command).await
        }
        Command::Webhooks {
            database,
            pools,
            command,
        } => {
            let config = load(Flags::new().with(&database).with(&pools))?;
            commands::webhooks::command(&config, command).await
        }
        Command::Queues {
            database,
            pools,
            command,
        } => {
            let config = load(Flags::new().with(&database).with(&pools))?;
            commands::queues::queues(&config, command).await
        }
        Command::Workers { database, json } => {
            commands::queues::workers(&load(Flags::new().with(&database))?, json).await
        }
        Command::Doctor(args) => {
            let config = load(Flags::new().with(&args.settings));
            commands::doctor::command(config, args.json).await
        }
        Command::Completions { shell } => {
            commands::shell_docs::completions(shell);
            Ok(())
        }
        Command::Man { dir } => commands::shell_docs::man(dir.as_deref()),
        Command::Bench {
            database,
            pools,
            command,
        } => {
            let mut flags = Flags::new().with(&database).with(&pools);
            if let BenchCommand::Ingress { redis, ingress, .. } = &command {
                flags = flags.with(redis).with(ingress);
            }
            let config = load(flags)?;
            match command {
                BenchCommand::Throughput {
                    jobs,
                    concurrency,
                    json,
                } => bench::throughput(&config, jobs, concurrency, json).await,
                BenchCommand::Latency {
                    jobs,
                    interval_ms,
                    json,
                } => bench::latency(&config, jobs, interval_ms, json).await,
                BenchCommand::Ingress {
                    entries,
                    latency_entries,
                    interval_ms,
                    json,
                    ..
                } => bench::ingress(&config, entries, latency_entries, interval_ms, json).await,
                BenchCommand::Faults {
                    jobs,
                    workers,
                    kill_every_ms,
                    enqueue_rate,
                    work_ms,
                    log_dir,
                    timeout_s,
                } => {
                    let run = bench::FaultsRun {
                        jobs,
                        workers,
                        kill_every_ms,
                        enqueue_rate,
                        work_ms,
                        log_dir,
                        timeout: std::time::Duration::from_secs(timeout_s),
                    };
                    bench::faults(&config, run).await
                }
                BenchCommand::Http {
                    url,
                    rate,
                    seconds,
                    limit_seconds,
                    json,
                } => bench::http(&config, &url, rate, seconds, limit_seconds, json).await,
                BenchCommand::Planner { schedules, json } => {
                    bench::planner(&config, schedules, json).await
                }
                BenchCommand::Tenants {
                    workspaces,
                    schedules,
                    endpoints,
                    seconds,
                    probe_interval_ms,
                    events_per_sec,
                    json,
                } => {
                    let run = bench::TenantsRun {
                        workspaces,
                        schedules,
                        endpoints,
                        seconds,
                        probe_interval_ms,
                        events_per_sec,
                    };
                    bench::tenants(&config, run, json).await
                }
                BenchCommand::Webhooks {
                    events,
                    endpoints,
                    latency_events,
                    interval_ms,
                    concurrency,
                    json,
                } => {
                    bench::webhooks(
                        &config,
                        events,
                        endpoints,
                        latency_events,
                        interval_ms,
                        concurrency,
                        json,
                    )
                    .await
                }
            }
        }
    }
}
