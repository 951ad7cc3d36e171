use std::collections::BTreeMap;
use std::process::ExitCode;

use anyhow::{anyhow, Result};
use arca_ops::retention::{self, Decision, ForgetOptions, Policy};
use comfy_table::{presets, Table};
use jiff::tz::TimeZone;

use crate::args::ForgetArgs;
use crate::output::{out, print_json};

pub fn run(a: ForgetArgs) -> Result<ExitCode> {
    let policy = Policy {
        purge_after_days: a.purge_after_days,
        keep_last: a.keep_last,
        keep_daily: a.keep_daily,
        keep_weekly: a.keep_weekly,
        keep_monthly: a.keep_monthly,
        keep_min: a.keep_min,
    };
    // Checked before the repository is opened, in the flags' own names.
    policy
        .validate_as(|field| format!("--{}", field.replace('_', "-")))
        .map_err(|e| anyhow!(e))?;
    let timezone = match a.timezone.as_deref() {
        None => TimeZone::system(),
        Some(name) => TimeZone::get(name).map_err(|_| {
            anyhow!("--timezone {name} is not a time zone this machine knows: give an IANA name such as Europe/Berlin, or UTC")
        })?,
    };
    let repo = super::open(&a.repo)?;
    let opts = ForgetOptions {
        source: a.source.clone(),
        timezone: timezone.clone(),
        now: None,
        dry_run: a.dry_run,
        prune: a.prune,
    };
    let done = retention::forget(&repo, &policy, &opts)?;
    if let Some(p) = &done.pruned {
        for w in &p.packs.warnings {
            eprintln!("warning: {w}");
        }
    }
    if a.json {
        let mut v = serde_json::to_value(&done)?;
        if let Some(p) = &done.pruned {
            v["pruned"] = super::prune::json(p)?;
        }
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut by_source: BTreeMap<&str, Vec<&Decision>> = BTreeMap::new();
    for d in &done.decisions {
        by_source.entry(d.source.as_str()).or_default().push(d);
    }
    for (source, decisions) in &by_source {
        let kept = decisions.iter().filter(|d| d.keep).count();
        out(format_args!(
            "source {source}: {} backups, keep {kept}, forget {}",
            decisions.len(),
            decisions.len() - kept
        ))?;
        out(table(decisions, &timezone))?;
    }
    for d in &done.damaged {
        let id = d.path.rsplit('/').next().unwrap_or_default();
        let short = &id[..id.len().min(8)];
        out(format_args!(
            "damaged: backup {short}: {}; forget leaves it (`arca delete {short}` removes it)",
            d.problem
        ))?;
    }
    let total = done.decisions.len();
    let forgotten = done.decisions.iter().filter(|d| !d.keep).count();
    if done.dry_run {
        out(format_args!(
            "dry run: would forget {forgotten} of {total} backups and keep {}; nothing was deleted",
            total - forgotten
        ))?;
    } else {
        out(format_args!(
            "forgot {} of {total} backups, kept {}",
            done.deleted.len(),
            total - forgotten
        ))?;
        match &done.pruned {
            Some(p) => super::prune::print(p)?,
            None if forgotten > 0 => {
                out("run `arca prune` to free the space only the forgotten backups used")?
            }
            None => {}
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn table(decisions: &[&Decision], tz: &TimeZone) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    t.set_header(["ID", "AT TIME", "DECISION"]);
    for d in decisions {
        let decision = if d.keep {
            let reasons: Vec<String> = d.reasons.iter().map(|r| r.to_string()).collect();
            format!("keep: {}", reasons.join(", "))
        } else {
            "forget".to_string()
        };
        t.add_row([
            d.id.short(),
            d.start_time
                .to_zoned(tz.clone())
                .strftime("%Y-%m-%d %H:%M:%S %z")
                .to_string(),
            decision,
        ]);
    }
    t
}
