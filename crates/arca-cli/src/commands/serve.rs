use std::process::ExitCode;

use anyhow::Result;

use crate::args::ServeArgs;

pub fn run(a: ServeArgs) -> Result<ExitCode> {
    if a.check_config {
        return Ok(
            match arca_serve::check_config(&a.config, a.listen.as_deref()) {
                Ok(cfg) => {
                    println!(
                    "{}: valid: {} repositories, {} sources, {} plans, {} tokens; listens on {}",
                    a.config.display(),
                    cfg.repositories.len(),
                    cfg.sources.len(),
                    cfg.plans.len(),
                    cfg.tokens.len(),
                    cfg.listen
                );
                    ExitCode::SUCCESS
                }
                Err(e) => failed(&e),
            },
        );
    }
    let test_clock = match &a.test_clock {
        Some(t) => Some(super::parse_time(t)?),
        None => None,
    };
    Ok(
        match arca_serve::run(arca_serve::ServeOptions {
            config: a.config,
            listen: a.listen,
            test_clock,
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => failed(&e),
        },
    )
}

/// One `error:` line per problem.
fn failed(e: &arca_serve::Error) -> ExitCode {
    for line in e.to_string().lines() {
        eprintln!("error: {line}");
    }
    ExitCode::FAILURE
}
