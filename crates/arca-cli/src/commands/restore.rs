use std::process::ExitCode;

use anyhow::{bail, Result};
use arca_ops::{RestoreRequest, Target};

use crate::args::RestoreArgs;
use crate::output::print_json;
use crate::progress::Bar;

pub fn run(a: RestoreArgs) -> Result<ExitCode> {
    if let Some(kind) = &a.restore_dir {
        if kind != "filesystem" {
            bail!("--restore_dir {kind} is not supported: use --restore_dir filesystem --restore_path PATH, or --to PATH");
        }
    }
    let to = match (
        a.to_instance.clone().or(a.to.clone()),
        a.restore_path.clone(),
    ) {
        (Some(t), None) | (None, Some(t)) => t,
        (Some(t), Some(p)) if t == p => t,
        (Some(_), Some(_)) => bail!("--to and --restore_path name different targets: give one"),
        (None, None) => {
            bail!("no restore target: pass --to PATH (or --to mysql://…, --to-instance DIR)")
        }
    };
    let repo = super::open(&a.repo)?;
    let p = &a.pitr;
    let position = match (&p.target_lsn, &p.target_gtid) {
        (Some(_), Some(_)) => {
            bail!("--target-lsn is PostgreSQL's, --target-gtid MySQL's: give one")
        }
        (l, g) => l.clone().or(g.clone()),
    };
    let target = match (&p.target_time, position, &p.target_snapshot) {
        (None, None, None) => Target::Latest,
        (Some(t), None, None) => Target::Time(super::parse_time(t)?),
        (None, Some(l), None) => Target::Position(l),
        (None, None, Some(n)) => Target::Named(n.clone()),
        _ => bail!("give one of --target-time, --target-lsn (--target-gtid) and --target-snapshot"),
    };
    let req = RestoreRequest {
        id: a.id.clone(),
        to,
        force: a.force,
        parallelism: a.par.get_for_restore(),
        target,
        timeline: p.target_timeline.clone(),
        pause_at_target: p.target_action.as_deref() == Some("pause"),
        keep_archiving: p.keep_archiving,
        start: p.start || a.to_instance.is_some(),
        port: p.port,
        reopen: super::repo_flags(&a.repo)?,
        objects: a.objects.objects(),
        renames: a.rename.clone(),
        replace: a.replace,
        password_file: a.objects.password_file.clone(),
        users: a.users,
    };
    let started = std::time::Instant::now();
    let bar = Bar::new("restore");
    let done = arca_ops::restore(&repo, &req, &bar)?;
    bar.finish();
    if a.json {
        let mut v = serde_json::to_value(&done)?;
        v["duration_ms"] = (started.elapsed().as_millis() as u64).into();
        print_json(&v)?;
    } else {
        for line in &done.lines {
            println!("{line}");
        }
    }
    Ok(ExitCode::SUCCESS)
}
