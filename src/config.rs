//! Configuration, loaded once: command-line flag > environment > `hangar.toml` > built-in
//! default. Every error names its source and field and exits with status 2.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use hangar_schedules::file::{self as schedule_file, FileSchedule};
use hangar_workers::kinds::Registry;
use hangar_workers::pool_config::{self, PoolSpec};
use serde::Deserialize;

use crate::exit::Fatal;

/// The default database: an SQLite file in the working directory, created when missing.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://hangar.db";
/// The default listen address of the HTTP server.
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";

/// Values given on the command line or in the environment (clap reads both).
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    /// `--database-url` / `HANGAR_DATABASE_URL`.
    pub database_url: Option<String>,
    /// `--workers-dir` / `HANGAR_WORKERS_DIR`.
    pub workers_dir: Option<PathBuf>,
    /// `--schedules-dir` / `HANGAR_SCHEDULES_DIR`.
    pub schedules_dir: Option<PathBuf>,
    /// `--bind` / `HANGAR_BIND`.
    pub bind: Option<String>,
    /// `--config`: the `hangar.toml` to read (default `./hangar.toml` when present).
    pub config_file: Option<PathBuf>,
}

/// `hangar.toml`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    database_url: Option<String>,
    bind: Option<String>,
    workers_dir: Option<PathBuf>,
    schedules_dir: Option<PathBuf>,
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where jobs live.
    pub database_url: String,
    /// Where the HTTP server listens.
    pub bind: SocketAddr,
    /// The pools, from the workers folder or built in.
    pub pools: Vec<PoolSpec>,
    /// Where the pools came from, for logs.
    pub pools_source: String,
    /// The file schedules, validated against the pools, from the schedules folder or built in.
    pub schedules: Vec<FileSchedule>,
    /// Where the schedules came from, for logs.
    pub schedules_source: String,
}

impl Config {
    /// Loads and validates everything.
    pub fn load(overrides: &Overrides) -> Result<Config, Fatal> {
        let file = read_file_config(overrides.config_file.as_deref())?;
        let database_url = overrides
            .database_url
            .clone()
            .or(file.database_url)
            .unwrap_or_else(|| DEFAULT_DATABASE_URL.to_owned());
        if database_url.trim().is_empty() {
            return Err(Fatal::config("HANGAR_DATABASE_URL is empty"));
        }
        let bind_text = overrides
            .bind
            .clone()
            .or(file.bind)
            .unwrap_or_else(|| DEFAULT_BIND.to_owned());
        let bind: SocketAddr = bind_text.parse().map_err(|_| {
            Fatal::config(format!(
                "HANGAR_BIND: '{bind_text}' is not an address like 127.0.0.1:8080"
            ))
        })?;
        let workers_dir = overrides.workers_dir.clone().or(file.workers_dir);
        let (pools, pools_source) = match workers_dir {
            Some(dir) => {
                if !dir.is_dir() {
                    return Err(Fatal::config(format!(
                        "HANGAR_WORKERS_DIR: '{}' is not a folder",
                        dir.display()
                    )));
                }
                (
                    pool_config::load_dir(&dir).map_err(|e| Fatal::config(e.to_string()))?,
                    dir.display().to_string(),
                )
            }
            None if has_pool_files(Path::new("workers")) => (
                pool_config::load_dir(Path::new("workers"))
                    .map_err(|e| Fatal::config(e.to_string()))?,
                "workers".to_owned(),
            ),
            None => (pool_config::builtin(), "built-in pools".to_owned()),
        };
        let (schedules, schedules_source) = load_schedules(
            overrides.schedules_dir.clone().or(file.schedules_dir),
            &pools,
        )?;
        Ok(Config {
            database_url,
            bind,
            pools,
            pools_source,
            schedules,
            schedules_source,
        })
    }

    /// The pool that runs `kind`.
    pub fn pool_for_kind(&self, kind: &str) -> Option<&PoolSpec> {
        self.pools
            .iter()
            .find(|p| p.kinds.iter().any(|k| k == kind))
    }
}

/// The schedule files of `dir` (`HANGAR_SCHEDULES_DIR`), else of `./schedules` when it has
/// any, else the built-in file; each schedule's kind and queue checked against the pools.
fn load_schedules(
    dir: Option<PathBuf>,
    pools: &[PoolSpec],
) -> Result<(Vec<FileSchedule>, String), Fatal> {
    let (mut schedules, source) = match dir {
        Some(dir) => {
            if !dir.is_dir() {
                return Err(Fatal::config(format!(
                    "HANGAR_SCHEDULES_DIR: '{}' is not a folder",
                    dir.display()
                )));
            }
            (
                schedule_file::load_dir(&dir).map_err(|e| Fatal::config(e.to_string()))?,
                dir.display().to_string(),
            )
        }
        None if schedule_file::has_schedule_files(Path::new("schedules")) => (
            schedule_file::load_dir(Path::new("schedules"))
                .map_err(|e| Fatal::config(e.to_string()))?,
            "schedules".to_owned(),
        ),
        None => (schedule_file::builtin(), "built-in schedules".to_owned()),
    };
    let registry = Registry::builtin();
    let pool_kinds: Vec<(&str, &[String])> = pools
        .iter()
        .map(|p| (p.queue.as_str(), p.kinds.as_slice()))
        .collect();
    schedule_file::check_refs(&mut schedules, &registry.kinds(), &pool_kinds)
        .map_err(|e| Fatal::config(e.to_string()))?;
    Ok((schedules, source))
}

fn has_pool_files(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(Result::ok)
            .any(|e| pool_config::is_pool_file(&e.path()))
    })
}

fn read_file_config(explicit: Option<&Path>) -> Result<FileConfig, Fatal> {
    let path = match explicit {
        Some(path) => path.to_path_buf(),
        None => {
            let default = PathBuf::from("hangar.toml");
            if !default.exists() {
                return Ok(FileConfig::default());
            }
            default
        }
    };
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Fatal::config(format!("{}: cannot read: {e}", path.display())))?;
    toml::from_str(&text)
        .map_err(|e| Fatal::config(format!("{}: {}", path.display(), e.message().trim())))
}
