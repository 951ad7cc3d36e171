//! `snapshot create|show|drop|restore`: named points in time.

use std::process::ExitCode;

use anyhow::{bail, Result};
use arca_ops::{create_point, drop_point, points_in, unrestorable};
use comfy_table::{presets::UTF8_FULL_CONDENSED, Table};

use crate::args::{PitrArgs, RestoreArgs, SnapshotCommand};
use crate::output::print_json;

pub fn run(c: SnapshotCommand) -> Result<ExitCode> {
    match c {
        SnapshotCommand::Create(a) => {
            let repo = super::open(&a.repo)?;
            let p = create_point(&repo, &a.source, &a.sname)?;
            if a.json {
                print_json(&p.json)?;
            } else {
                println!("snapshot {} at {} ({})", p.name, p.time, p.position);
            }
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Show(a) => {
            let repo = super::open(&a.repo)?;
            let begin = a.begin_ts.as_deref().map(super::parse_time).transpose()?;
            let end = a.end_ts.as_deref().map(super::parse_time).transpose()?;
            let snaps = repo.manifests()?;
            let shown: Vec<_> = points_in(&snaps)
                .into_iter()
                .filter(|p| a.sname.as_ref().is_none_or(|n| &p.name == n))
                .filter(|p| begin.is_none_or(|b| p.time >= b))
                .filter(|p| end.is_none_or(|e| p.time <= e))
                .collect();
            let mysql: Vec<_> = arca_ops::mysql::points_in(&snaps)
                .into_iter()
                .filter(|p| a.sname.as_ref().is_none_or(|n| &p.name == n))
                .filter(|p| begin.is_none_or(|b| p.time >= b))
                .filter(|p| end.is_none_or(|e| p.time <= e))
                .collect();
            if let Some(n) = &a.sname {
                if shown.is_empty() && mysql.is_empty() {
                    bail!("no snapshot named {n}: `arca snapshot show` lists them");
                }
            }
            // A point records no base: whether one is left is worked out here.
            let problems: Vec<Option<String>> =
                shown.iter().map(|p| unrestorable(p, &snaps)).collect();
            let mysql_problems: Vec<Option<String>> = mysql
                .iter()
                .map(|p| arca_ops::mysql::unrestorable(p, &snaps))
                .collect();
            if a.json {
                let mut v = Vec::with_capacity(shown.len());
                for (p, problem) in shown.iter().zip(&problems) {
                    let mut j = serde_json::to_value(p)?;
                    j["restorable"] = problem.is_none().into();
                    j["problem"] = problem.clone().into();
                    v.push(j);
                }
                for (p, problem) in mysql.iter().zip(&mysql_problems) {
                    let mut j = serde_json::to_value(p)?;
                    j["restorable"] = problem.is_none().into();
                    j["problem"] = problem.clone().into();
                    v.push(j);
                }
                print_json(&v)?;
            } else {
                let mut t = Table::new();
                t.load_preset(UTF8_FULL_CONDENSED);
                t.set_header([
                    "SNAPSHOT NAME",
                    "TIMESTAMP",
                    "LSN",
                    "TIMELINE",
                    "CLUSTER",
                    "RESTORABLE",
                ]);
                for (p, problem) in shown.iter().zip(&problems) {
                    t.add_row([
                        p.name.clone(),
                        p.time
                            .to_zoned(jiff::tz::TimeZone::system())
                            .strftime("%Y-%m-%d %H:%M:%S %Z")
                            .to_string(),
                        p.lsn.to_string(),
                        p.timeline.to_string(),
                        p.system_identifier.clone(),
                        match problem {
                            None => "yes".to_string(),
                            Some(why) => format!("no: {why}"),
                        },
                    ]);
                }
                for (p, problem) in mysql.iter().zip(&mysql_problems) {
                    t.add_row([
                        p.name.clone(),
                        p.time
                            .to_zoned(jiff::tz::TimeZone::system())
                            .strftime("%Y-%m-%d %H:%M:%S %Z")
                            .to_string(),
                        p.position(),
                        "-".to_string(),
                        p.server.clone(),
                        match problem {
                            None => "yes".to_string(),
                            Some(why) => format!("no: {why}"),
                        },
                    ]);
                }
                println!("{t}");
            }
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Drop(a) => {
            let repo = super::open(&a.repo)?;
            if let Some(p) = arca_ops::mysql::drop_point(&repo, &a.sname)? {
                println!("dropped snapshot {} ({})", p.name, p.position());
                return Ok(ExitCode::SUCCESS);
            }
            let p = drop_point(&repo, &a.sname)?;
            println!("dropped snapshot {} ({})", p.name, p.lsn);
            Ok(ExitCode::SUCCESS)
        }
        SnapshotCommand::Restore(a) => super::restore::run(RestoreArgs {
            repo: a.repo,
            id: None,
            to: Some(a.to),
            to_instance: None,
            force: a.force,
            restore_dir: None,
            restore_path: None,
            pitr: PitrArgs {
                target_snapshot: Some(a.sname),
                start: a.start,
                port: a.port,
                ..PitrArgs::default()
            },
            objects: Default::default(),
            rename: Vec::new(),
            replace: false,
            users: false,
            par: a.par,
            json: false,
        }),
    }
}
