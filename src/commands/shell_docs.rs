//! `hangar completions SHELL` and `hangar man`: shell completion scripts and man pages,
//! generated from the same clap definitions that parse the command line, so they cannot
//! drift from it.

use std::path::Path;

use clap::CommandFactory;

use crate::cli::Cli;
use crate::exit::Fatal;

/// Prints the completion script of `shell` on stdout.
pub fn completions(shell: clap_complete::Shell) {
    let mut command = Cli::command();
    clap_complete::generate(shell, &mut command, "hangar", &mut std::io::stdout());
}

/// Prints `hangar.1` on stdout, or with `dir` writes it and one page per subcommand there
/// (created when missing) and prints each file's path.
pub fn man(dir: Option<&Path>) -> Result<(), Fatal> {
    let command = Cli::command();
    let Some(dir) = dir else {
        let mut out = std::io::stdout().lock();
        return clap_mangen::Man::new(command)
            .render(&mut out)
            .map_err(|e| Fatal::runtime(format!("cannot write the man page: {e}")));
    };
    let failed = |e: std::io::Error| Fatal::runtime(format!("{}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(failed)?;
    clap_mangen::generate_to(command, dir).map_err(failed)?;
    let mut pages: Vec<String> = std::fs::read_dir(dir)
        .map_err(failed)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "1"))
        .map(|p| p.display().to_string())
        .collect();
    pages.sort();
    for page in pages {
        println!("{page}");
    }
    Ok(())
}
