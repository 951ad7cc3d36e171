//! Retention: which backups a policy keeps, and why.
//!
//! [`plan`] is the whole decision, a pure function of the backups (as
//! [`BackupRef`]s), the [`Policy`], the time and the zone days are counted
//! in; [`forget`] reads a repository's manifests into refs, applies it and
//! deletes what it forgets. The CLI (`arca forget`) and the daemon call
//! these two and print or report the [`Decision`]s themselves.
//!
//! The rules (`docs/design/retention.md` says why): each source on its own;
//! a backup is kept if any rule keeps it, and lists every reason. The
//! newest backup of a source is always kept, a named snapshot keeps a base
//! to restore from, and a damaged manifest is never touched.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

use arca_repo::index::Damaged;
use arca_repo::{BackupKind, EngineName, Id, Manifest, Repository};
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize, Serializer};

use crate::{Error, Pruned, Result};

/// The range `purge_after_days` takes, as the consoles offer it.
pub const PURGE_DAYS: std::ops::RangeInclusive<u32> = 7..=365;

/// What to keep of each source's backups. A rule left out (or 0) keeps
/// nothing by itself; at least one must keep something ([`Policy::validate`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct Policy {
    /// The purge period: keep every backup started in the last D days,
    /// and, where the repository archives the source's log, the backup a
    /// restore to D days ago starts from.
    #[serde(default)]
    pub purge_after_days: Option<u32>,
    /// Keep the N newest.
    #[serde(default)]
    pub keep_last: Option<u32>,
    /// Keep the newest of each of the last N days that have a backup.
    #[serde(default)]
    pub keep_daily: Option<u32>,
    /// Keep the newest of each of the last N ISO weeks that have a backup.
    #[serde(default)]
    pub keep_weekly: Option<u32>,
    /// Keep the newest of each of the last N months that have a backup.
    #[serde(default)]
    pub keep_monthly: Option<u32>,
    /// Whatever the rules say, keep the N newest (the newest is kept even
    /// with 0).
    #[serde(default = "default_keep_min")]
    pub keep_min: u32,
}

fn default_keep_min() -> u32 {
    1
}

impl Default for Policy {
    fn default() -> Policy {
        Policy {
            purge_after_days: None,
            keep_last: None,
            keep_daily: None,
            keep_weekly: None,
            keep_monthly: None,
            keep_min: default_keep_min(),
        }
    }
}

impl Policy {
    /// Checks the policy, naming a field as it is written in the
    /// daemon's configuration (`purge_after_days`).
    pub fn validate(&self) -> Result<(), String> {
        self.validate_as(|field| field.to_string())
    }

    /// [`Policy::validate`], naming each field as `name` spells it (the
    /// CLI: `--purge-after-days`).
    pub fn validate_as(&self, name: impl Fn(&str) -> String) -> Result<(), String> {
        if let Some(d) = self.purge_after_days {
            if !PURGE_DAYS.contains(&d) {
                return Err(format!(
                    "{} is {d}: it must be from {} to {} days",
                    name("purge_after_days"),
                    PURGE_DAYS.start(),
                    PURGE_DAYS.end()
                ));
            }
        }
        let rules = [
            self.purge_after_days,
            self.keep_last,
            self.keep_daily,
            self.keep_weekly,
            self.keep_monthly,
        ];
        if !rules.iter().any(|r| r.is_some_and(|n| n > 0)) {
            let names: Vec<String> = [
                "purge_after_days",
                "keep_last",
                "keep_daily",
                "keep_weekly",
                "keep_monthly",
            ]
            .iter()
            .map(|f| name(f))
            .collect();
            return Err(format!(
                "the policy has no rule that keeps anything, so it would forget all but the newest backup: give at least one of {} with a number above 0",
                names.join(", ")
            ));
        }
        Ok(())
    }
}

/// One backup as [`plan`] sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct BackupRef {
    pub id: Id,
    /// The source it is a backup of (as its manifest records it): the
    /// policy applies to each source on its own.
    pub source: String,
    pub start: Timestamp,
    /// When it ended: a restore to a time can start from it only after.
    pub end: Timestamp,
    /// The repository archives its source's log (a window covers it), so
    /// it can start a point-in-time restore.
    pub covered: bool,
    /// The named snapshots a restore to can start from this backup.
    pub bases_of: Vec<String>,
}

/// Why a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// Among the N newest (`keep_last`).
    Last(u32),
    Daily,
    Weekly,
    Monthly,
    /// Started within the purge period of D days.
    Within(u32),
    /// The newest that ended at or before the purge period's start, kept
    /// so a restore to any time in the period can start from it.
    WindowBase,
    /// The newest of its source: retention never removes it.
    Newest,
    /// Among the N newest (`keep_min`).
    Minimum(u32),
    /// The base a restore to this named snapshot starts from.
    SnapshotBase(String),
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reason::Last(n) => write!(f, "last {n}"),
            Reason::Daily => f.write_str("daily"),
            Reason::Weekly => f.write_str("weekly"),
            Reason::Monthly => f.write_str("monthly"),
            Reason::Within(d) => write!(f, "within {d} days"),
            Reason::WindowBase => f.write_str("base of the window"),
            Reason::Newest => f.write_str("newest"),
            Reason::Minimum(n) => write!(f, "minimum {n}"),
            Reason::SnapshotBase(name) => write!(f, "base of snapshot {name}"),
        }
    }
}

impl Serialize for Reason {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// What [`plan`] decided for one backup: kept, with every reason, or
/// forgotten (no reason).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Decision {
    pub id: Id,
    pub source: String,
    pub start_time: Timestamp,
    pub keep: bool,
    pub reasons: Vec<Reason>,
}

/// Applies `policy` to `backups` as of `now`, counting days, weeks and
/// months in `tz`. Each source is decided on its own; the decisions come
/// in the order of `backups`. The policy is applied as it is, valid or
/// not: [`Policy::validate`] is for what a person wrote.
pub fn plan(
    backups: &[BackupRef],
    policy: &Policy,
    now: Timestamp,
    tz: &TimeZone,
) -> Vec<Decision> {
    let mut reasons: Vec<Vec<Reason>> = vec![Vec::new(); backups.len()];
    let mut by_source: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, b) in backups.iter().enumerate() {
        by_source.entry(b.source.as_str()).or_default().push(i);
    }
    for group in by_source.values_mut() {
        // Newest first; equal times by id, so the result does not depend
        // on the order given.
        group.sort_by(|&a, &b| {
            let (a, b) = (&backups[a], &backups[b]);
            (b.start, b.id).cmp(&(a.start, a.id))
        });
        keep_group(backups, group, policy, now, tz, &mut reasons);
    }
    keep_snapshot_bases(backups, &mut reasons);
    backups
        .iter()
        .zip(reasons)
        .map(|(b, reasons)| Decision {
            id: b.id,
            source: b.source.clone(),
            start_time: b.start,
            keep: !reasons.is_empty(),
            reasons,
        })
        .collect()
}

/// The time rules for one source's backups, `group` newest first.
fn keep_group(
    backups: &[BackupRef],
    group: &[usize],
    policy: &Policy,
    now: Timestamp,
    tz: &TimeZone,
    reasons: &mut [Vec<Reason>],
) {
    let mut keep = |i: usize, r: Reason| reasons[i].push(r);
    if let Some(n) = policy.keep_last {
        for &i in group.iter().take(n as usize) {
            keep(i, Reason::Last(n));
        }
    }
    let rules = [
        (policy.keep_daily, Reason::Daily),
        (policy.keep_weekly, Reason::Weekly),
        (policy.keep_monthly, Reason::Monthly),
    ];
    for (n, reason) in rules {
        let Some(n) = n else { continue };
        // The first backup (the newest) seen of each day, week or month.
        // A set, not the last bucket seen: where clocks go back across
        // midnight, local dates do not follow time's order.
        let mut seen = HashSet::new();
        for &i in group {
            if seen.len() == n as usize {
                break;
            }
            if seen.insert(bucket(&reason, backups[i].start, tz)) {
                keep(i, reason.clone());
            }
        }
    }
    if let Some(d) = policy.purge_after_days {
        let cutoff = now
            .saturating_sub(SignedDuration::from_hours(24 * i64::from(d)))
            .unwrap_or(Timestamp::MIN);
        for &i in group {
            if backups[i].start > cutoff {
                keep(i, Reason::Within(d));
            }
        }
        // The newest that a restore to the cutoff can start from; it
        // matters only where the log to replay from it is archived.
        let base = group
            .iter()
            .filter(|&&i| backups[i].end <= cutoff)
            .max_by_key(|&&i| (backups[i].end, backups[i].start, backups[i].id));
        if let Some(&i) = base {
            if backups[i].covered {
                keep(i, Reason::WindowBase);
            }
        }
    }
    if let Some(&i) = group.first() {
        keep(i, Reason::Newest);
    }
    for &i in group.iter().take(policy.keep_min as usize) {
        keep(i, Reason::Minimum(policy.keep_min));
    }
}

/// The day, ISO week or month of `t` in `tz`, for the rule `reason`.
fn bucket(reason: &Reason, t: Timestamp, tz: &TimeZone) -> (i16, i16) {
    let date = t.to_zoned(tz.clone()).date();
    match reason {
        Reason::Daily => (date.year(), date.day_of_year()),
        Reason::Weekly => {
            let w = date.iso_week_date();
            (w.year(), i16::from(w.week()))
        }
        // Monthly.
        _ => (date.year(), i16::from(date.month())),
    }
}

/// Each named snapshot keeps a base: the newest of its bases the other
/// rules keep, or, if they keep none, the newest of them.
fn keep_snapshot_bases(backups: &[BackupRef], reasons: &mut [Vec<Reason>]) {
    let mut bases: BTreeMap<&str, Vec<usize>> = BTreeMap::new();
    for (i, b) in backups.iter().enumerate() {
        for name in &b.bases_of {
            bases.entry(name.as_str()).or_default().push(i);
        }
    }
    let kept: Vec<bool> = reasons.iter().map(|r| !r.is_empty()).collect();
    for (name, candidates) in bases {
        let newest = |only_kept: bool| {
            candidates
                .iter()
                .copied()
                .filter(|&i| !only_kept || kept[i])
                .max_by_key(|&i| (backups[i].start, backups[i].id))
        };
        if let Some(i) = newest(true).or_else(|| newest(false)) {
            reasons[i].push(Reason::SnapshotBase(name.to_string()));
        }
    }
}

/// How [`forget`] runs.
#[derive(Debug, Clone)]
pub struct ForgetOptions {
    /// Only this source's backups: as its manifests record it, or as
    /// `arca backup --source` takes it.
    pub source: Option<String>,
    /// The zone days, weeks and months are counted in.
    pub timezone: TimeZone,
    /// The time the policy is applied at [default: now].
    pub now: Option<Timestamp>,
    /// Decide, delete nothing.
    pub dry_run: bool,
    /// Then prune ([`crate::prune`]), unless a dry run.
    pub prune: bool,
}

impl Default for ForgetOptions {
    fn default() -> ForgetOptions {
        ForgetOptions {
            source: None,
            timezone: TimeZone::system(),
            now: None,
            dry_run: false,
            prune: false,
        }
    }
}

/// What [`forget`] decided and did.
#[derive(Debug, Serialize)]
pub struct Forgotten {
    pub dry_run: bool,
    /// One per backup considered, oldest first (named snapshots are not
    /// backups: forget leaves them to `snapshot drop`).
    pub decisions: Vec<Decision>,
    /// The backups deleted (none in a dry run).
    pub deleted: Vec<Id>,
    /// Manifests that cannot be read: never deleted by forget.
    pub damaged: Vec<Damaged>,
    pub pruned: Option<Pruned>,
}

/// Applies `policy` to the repository's backups: reads the manifests,
/// [`plan`]s, and deletes the forgotten manifests (not in a dry run) under
/// the shared lock `arca delete` takes; then, if asked, prunes.
pub fn forget(repo: &Repository, policy: &Policy, opts: &ForgetOptions) -> Result<Forgotten> {
    policy.validate().map_err(Error::Unsupported)?;
    let lock = if opts.dry_run {
        repo.lock_for_reading("forget")?
    } else {
        Some(repo.lock_shared("forget")?)
    };
    let (manifests, damaged) = repo.manifests_and_damage()?;
    let source = match &opts.source {
        Some(s) => Some(matching_source(repo, s, &manifests)?),
        None => None,
    };
    let windows = crate::windows(repo, &manifests)?;
    let refs = backup_refs(&manifests, &windows, source.as_deref());
    let now = opts.now.unwrap_or_else(Timestamp::now);
    let decisions = plan(&refs, policy, now, &opts.timezone);
    // The newest of each source is kept by `plan`; checked once more
    // before anything is deleted.
    let kept: HashSet<&str> = decisions
        .iter()
        .filter(|d| d.keep)
        .map(|d| d.source.as_str())
        .collect();
    if let Some(d) = decisions.iter().find(|d| !kept.contains(d.source.as_str())) {
        return Err(Error::Unsupported(format!(
            "retention would forget every backup of {}: refused (a bug in arca; nothing was deleted)",
            d.source
        )));
    }
    let mut deleted = Vec::new();
    if !opts.dry_run {
        for d in decisions.iter().filter(|d| !d.keep) {
            if repo.cancel.is_cancelled() {
                return Err(arca_repo::Error::Interrupted {
                    what: "forget".into(),
                    left: "the backups it deleted stay deleted, the others are untouched; run it again to finish",
                }
                .into());
            }
            repo.delete_manifest(&d.id)?;
            deleted.push(d.id);
        }
    }
    drop(lock);
    let pruned = if opts.prune && !opts.dry_run {
        Some(crate::prune(repo)?)
    } else {
        None
    };
    Ok(Forgotten {
        dry_run: opts.dry_run,
        decisions,
        deleted,
        damaged,
        pruned,
    })
}

/// The backups of `manifests` (of `source` only, if given) as [`plan`]
/// takes them: named snapshots are left out.
pub fn backup_refs(
    manifests: &[Manifest],
    windows: &[crate::Window],
    source: Option<&str>,
) -> Vec<BackupRef> {
    let backups: Vec<&Manifest> = manifests
        .iter()
        .filter(|m| m.kind != BackupKind::Point)
        .collect();
    let in_scope = |m: &Manifest| source.is_none_or(|s| m.source == s);
    let mut bases = snapshot_bases(manifests, &backups);
    // A snapshot a backup out of scope is a base of needs none in scope.
    let based_elsewhere: HashSet<String> = backups
        .iter()
        .filter(|m| !in_scope(m))
        .flat_map(|m| bases.get(&m.id).cloned().unwrap_or_default())
        .collect();
    backups
        .iter()
        .filter(|m| in_scope(m))
        .map(|m| BackupRef {
            id: m.id,
            source: m.source.clone(),
            start: m.start_time,
            end: m.end_time,
            covered: windows.iter().any(|w| w.covers(m)),
            bases_of: bases
                .remove(&m.id)
                .unwrap_or_default()
                .into_iter()
                .filter(|n| !based_elsewhere.contains(n))
                .collect(),
        })
        .collect()
}

/// The named snapshots each backup can be the base of, by engine.
fn snapshot_bases(manifests: &[Manifest], backups: &[&Manifest]) -> HashMap<Id, Vec<String>> {
    let pg = crate::postgres::points_in(manifests);
    let my = crate::mysql::points_in(manifests);
    let mut out = HashMap::new();
    for m in backups {
        let mut names = Vec::new();
        if let Some(meta) = crate::postgres::PgBackupMeta::of(m) {
            names.extend(
                pg.iter()
                    .filter(|p| crate::postgres::reaches(&meta, p))
                    .map(|p| p.name.clone()),
            );
        }
        if m.engine == EngineName::Mysql {
            names.extend(
                my.iter()
                    .filter(|p| crate::mysql::reaches(m, p))
                    .map(|p| p.name.clone()),
            );
        }
        if !names.is_empty() {
            out.insert(m.id, names);
        }
    }
    out
}

/// The source, as manifests record it, that `given` names: the recorded
/// form itself, or a `--source` as `arca backup` takes it.
fn matching_source(repo: &Repository, given: &str, manifests: &[Manifest]) -> Result<String> {
    let recorded = |s: &str| {
        manifests
            .iter()
            .any(|m| m.kind != BackupKind::Point && m.source == s)
    };
    if recorded(given) {
        return Ok(given.to_string());
    }
    let name = source_name(given)?;
    if recorded(&name) {
        return Ok(name);
    }
    Err(Error::Unsupported(format!(
        "{} holds no backup of {name}: `arca list --json` shows each backup's source",
        repo.location()
    )))
}

/// The name a backup of `source` records, as each engine's backup writes
/// it (no password).
fn source_name(source: &str) -> Result<String> {
    let engine = crate::engine::for_source(source)?;
    Ok(match engine.name() {
        EngineName::Sqlite => {
            let s = arca_engine::sqlite::SqliteSource::parse(source)?;
            let path = std::path::absolute(&s.path).unwrap_or(s.path);
            format!("sqlite://{}", path.display())
        }
        EngineName::Postgres => arca_engine::postgres::PgSource::parse(source, None)?.to_string(),
        EngineName::Mysql => arca_engine::mysql::MysqlSource::parse(source, None)?.url(),
        EngineName::Unknown(_) => source.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::Date;
    use jiff::ToSpan;

    fn berlin() -> TimeZone {
        TimeZone::get("Europe/Berlin").unwrap()
    }

    /// "YYYY-MM-DD HH:MM" in Berlin.
    fn at(label: &str) -> Timestamp {
        let (d, t) = label.split_once(' ').unwrap();
        format!("{d}T{t}:00")
            .parse::<jiff::civil::DateTime>()
            .unwrap()
            .to_zoned(berlin())
            .unwrap()
            .timestamp()
    }

    fn id(n: usize) -> Id {
        let mut b = [0u8; 32];
        b[..8].copy_from_slice(&(n as u64).to_be_bytes());
        Id(b)
    }

    /// Backups of `source` at these Berlin times, each taking 10 minutes.
    fn refs(source: &str, labels: &[String], first_id: usize) -> Vec<BackupRef> {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| BackupRef {
                id: id(first_id + i),
                source: source.to_string(),
                start: at(l),
                end: at(l) + SignedDuration::from_mins(10),
                covered: false,
                bases_of: Vec::new(),
            })
            .collect()
    }

    fn label_of(backups: &[BackupRef]) -> impl Fn(&Id) -> String + '_ {
        |i| {
            let b = backups.iter().find(|b| &b.id == i).unwrap();
            b.start
                .to_zoned(berlin())
                .strftime("%Y-%m-%d %H:%M")
                .to_string()
        }
    }

    /// What `plan` kept, as (Berlin time, reasons as text), oldest first.
    fn kept(backups: &[BackupRef], decisions: &[Decision]) -> Vec<(String, Vec<String>)> {
        let label = label_of(backups);
        let mut v: Vec<(String, Vec<String>)> = decisions
            .iter()
            .filter(|d| d.keep)
            .map(|d| {
                (
                    label(&d.id),
                    d.reasons.iter().map(|r| r.to_string()).collect(),
                )
            })
            .collect();
        v.sort();
        v
    }

    /// 400 days ending 2025-04-02, a backup at 01:00 Berlin time each
    /// day, three days missing, five days with a second one; the clocks
    /// went forward on Sunday 2025-03-30 (and back on 2024-10-27).
    fn four_hundred_days() -> Vec<String> {
        let first = Date::constant(2024, 2, 28);
        let missing = ["2024-07-15", "2024-12-31", "2025-03-28"];
        let extra = [
            ("2024-05-31", "23:30"),
            ("2024-11-01", "00:30"),
            ("2025-03-03", "10:55"),
            ("2025-03-31", "00:30"),
            ("2025-04-01", "18:00"),
        ];
        let mut labels = Vec::new();
        let mut last = first;
        for i in 0..400 {
            let day = first.checked_add(i.days()).unwrap();
            last = day;
            let d = day.to_string();
            for (_, t) in extra.iter().filter(|(e, t)| *e == d && *t < "01:00") {
                labels.push(format!("{d} {t}"));
            }
            if !missing.contains(&d.as_str()) {
                labels.push(format!("{d} 01:00"));
            }
            for (_, t) in extra.iter().filter(|(e, t)| *e == d && *t > "01:00") {
                labels.push(format!("{d} {t}"));
            }
        }
        assert_eq!(last, Date::constant(2025, 4, 2));
        assert_eq!(labels.len(), 400 - 3 + 5);
        labels
    }

    fn console_policy() -> Policy {
        Policy {
            purge_after_days: Some(30),
            keep_last: Some(3),
            keep_daily: Some(7),
            keep_weekly: Some(4),
            keep_monthly: Some(12),
            keep_min: 1,
        }
    }

    /// Noon on 2025-04-02, Berlin (summer time): the purge period starts
    /// 720 hours earlier, 2025-03-03 11:00 winter time.
    fn now() -> Timestamp {
        at("2025-04-02 12:00")
    }

    fn expect(list: &[(&str, &[&str])]) -> Vec<(String, Vec<String>)> {
        let mut v: Vec<(String, Vec<String>)> = list
            .iter()
            .map(|(l, r)| (l.to_string(), r.iter().map(|s| s.to_string()).collect()))
            .collect();
        v.sort();
        v
    }

    /// The days 2025-03-04 to 2025-03-25 at 01:00: kept for the purge
    /// period alone, but for the newest of ISO weeks 11 and 12 (Sundays
    /// 03-16 and 03-23), which are weekly too.
    fn purge_period_days() -> Vec<(String, Vec<String>)> {
        let mut v = Vec::new();
        let mut day = Date::constant(2025, 3, 4);
        while day <= Date::constant(2025, 3, 25) {
            let d = day.to_string();
            let mut r = vec!["within 30 days".to_string()];
            if d == "2025-03-16" || d == "2025-03-23" {
                r.insert(0, "weekly".to_string());
            }
            v.push((format!("{d} 01:00"), r));
            day = day.tomorrow().unwrap();
        }
        v
    }

    #[test]
    fn four_hundred_days_in_berlin_keep_exactly_these() {
        let mut backups = refs("sqlite:///db", &four_hundred_days(), 0);
        for b in &mut backups {
            b.covered = true; // the source's log is archived
        }
        let decisions = plan(&backups, &console_policy(), now(), &berlin());
        assert_eq!(decisions.len(), backups.len());
        let mut want = expect(&[
            (
                "2025-04-02 01:00",
                &[
                    "last 3",
                    "daily",
                    "weekly",
                    "monthly",
                    "within 30 days",
                    "newest",
                    "minimum 1",
                ],
            ),
            ("2025-04-01 18:00", &["last 3", "daily", "within 30 days"]),
            ("2025-04-01 01:00", &["last 3", "within 30 days"]),
            // The last of March (01:00 summer time: 03-30 in UTC). The
            // 00:30 one (also 03-30 in UTC) is not the newest of its day.
            ("2025-03-31 01:00", &["daily", "monthly", "within 30 days"]),
            ("2025-03-31 00:30", &["within 30 days"]),
            // The day the clocks went forward: the newest of ISO week 13
            // (Monday 03-31 00:30 is week 14 in Berlin, week 13 in UTC).
            ("2025-03-30 01:00", &["daily", "weekly", "within 30 days"]),
            ("2025-03-29 01:00", &["daily", "within 30 days"]),
            // 03-28 is missing: the seventh day with a backup is 03-26.
            ("2025-03-27 01:00", &["daily", "within 30 days"]),
            ("2025-03-26 01:00", &["daily", "within 30 days"]),
            // 03-03 10:55 started before the period and ended inside it:
            // a restore to its start cannot begin from it, so the base is
            // the one before.
            ("2025-03-03 01:00", &["base of the window"]),
            ("2025-02-28 01:00", &["monthly"]),
            ("2025-01-31 01:00", &["monthly"]),
            // 12-31 is missing.
            ("2024-12-30 01:00", &["monthly"]),
            ("2024-11-30 01:00", &["monthly"]),
            // Not 11-01 00:30 (October's newest in UTC).
            ("2024-10-31 01:00", &["monthly"]),
            ("2024-09-30 01:00", &["monthly"]),
            ("2024-08-31 01:00", &["monthly"]),
            ("2024-07-31 01:00", &["monthly"]),
            ("2024-06-30 01:00", &["monthly"]),
            // The twelfth month; April 2024 is the thirteenth.
            ("2024-05-31 23:30", &["monthly"]),
        ]);
        want.extend(purge_period_days());
        want.sort();
        assert_eq!(kept(&backups, &decisions), want);
        // A forgotten backup has no reason; a kept one at least one.
        for d in &decisions {
            assert_eq!(d.keep, !d.reasons.is_empty());
        }
        let forgotten = decisions.iter().filter(|d| !d.keep).count();
        assert_eq!(forgotten, backups.len() - want.len());
        let label = label_of(&backups);
        for gone in ["2025-03-03 10:55", "2025-03-02 01:00", "2024-11-01 00:30"] {
            let d = decisions.iter().find(|d| label(&d.id) == gone).unwrap();
            assert!(!d.keep, "{gone} should be forgotten: {d:?}");
        }
    }

    /// The same backups counted in UTC: a backup at 01:00 Berlin summer
    /// time is the day before in UTC, so the newest of each summer month
    /// is the first of the next month, and October's is 11-01 00:30.
    #[test]
    fn months_are_counted_in_the_zone_given() {
        let mut backups = refs("sqlite:///db", &four_hundred_days(), 0);
        for b in &mut backups {
            b.covered = true;
        }
        let decisions = plan(&backups, &console_policy(), now(), &TimeZone::UTC);
        let before_period: Vec<String> = kept(&backups, &decisions)
            .into_iter()
            .map(|(l, _)| l)
            .filter(|l| l.as_str() < "2025-03-03")
            .collect();
        let want: Vec<String> = [
            "2024-06-01 01:00",
            "2024-07-01 01:00",
            "2024-08-01 01:00",
            "2024-09-01 01:00",
            "2024-10-01 01:00",
            "2024-11-01 00:30",
            "2024-11-30 01:00",
            "2024-12-30 01:00",
            "2025-01-31 01:00",
            "2025-02-28 01:00",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(before_period, want);
    }

    #[test]
    fn the_newest_of_each_source_is_kept_whatever_the_policy() {
        let a: Vec<String> = (1..=5).map(|d| format!("2025-03-0{d} 01:00")).collect();
        let b: Vec<String> = (1..=3).map(|d| format!("2024-01-0{d} 01:00")).collect();
        let mut backups = refs("a", &a, 0);
        backups.extend(refs("b", &b, 100));
        let nothing = Policy {
            keep_last: Some(0),
            keep_min: 0,
            ..Policy::default()
        };
        let d = plan(&backups, &nothing, at("2025-04-01 12:00"), &berlin());
        assert_eq!(
            kept(&backups, &d),
            expect(&[
                ("2024-01-03 01:00", &["newest"]),
                ("2025-03-05 01:00", &["newest"]),
            ])
        );
        // A purge period that holds none of b's backups (b stopped being
        // backed up): its newest stays all the same.
        let purge = Policy {
            purge_after_days: Some(7),
            ..Policy::default()
        };
        let d = plan(&backups, &purge, at("2025-03-07 12:00"), &berlin());
        assert_eq!(
            kept(&backups, &d),
            expect(&[
                ("2024-01-03 01:00", &["newest", "minimum 1"]),
                ("2025-03-01 01:00", &["within 7 days"]),
                ("2025-03-02 01:00", &["within 7 days"]),
                ("2025-03-03 01:00", &["within 7 days"]),
                ("2025-03-04 01:00", &["within 7 days"]),
                (
                    "2025-03-05 01:00",
                    &["within 7 days", "newest", "minimum 1"]
                ),
            ])
        );
        // The order the backups come in changes nothing.
        let mut reversed = backups.clone();
        reversed.reverse();
        assert_eq!(
            kept(
                &reversed,
                &plan(&reversed, &purge, at("2025-03-07 12:00"), &berlin())
            ),
            kept(&backups, &d)
        );
    }

    #[test]
    fn each_source_gets_the_policy_on_its_own() {
        let days: Vec<String> = (1..=6).map(|d| format!("2025-03-0{d} 01:00")).collect();
        let later: Vec<String> = (1..=6).map(|d| format!("2025-03-0{d} 02:00")).collect();
        let mut backups = refs("a", &days, 0);
        backups.extend(refs("b", &later, 100));
        let p = Policy {
            keep_last: Some(2),
            ..Policy::default()
        };
        let d = plan(&backups, &p, at("2025-03-07 00:00"), &berlin());
        let kept_ids: Vec<(String, String)> = d
            .iter()
            .filter(|d| d.keep)
            .map(|d| (d.source.clone(), label_of(&backups)(&d.id)))
            .collect();
        assert_eq!(
            kept_ids,
            [
                ("a", "2025-03-05 01:00"),
                ("a", "2025-03-06 01:00"),
                ("b", "2025-03-05 02:00"),
                ("b", "2025-03-06 02:00"),
            ]
            .map(|(a, b)| (a.to_string(), b.to_string()))
        );
        // The decisions come in the order of the backups given.
        assert!(d.iter().zip(&backups).all(|(d, b)| d.id == b.id));
    }

    #[test]
    fn keep_min_keeps_the_newest_n() {
        let days: Vec<String> = (1..=9).map(|d| format!("2025-03-0{d} 01:00")).collect();
        let backups = refs("a", &days, 0);
        let p = Policy {
            keep_last: Some(1),
            keep_min: 4,
            ..Policy::default()
        };
        let d = plan(&backups, &p, at("2025-03-10 00:00"), &berlin());
        assert_eq!(
            kept(&backups, &d),
            expect(&[
                ("2025-03-06 01:00", &["minimum 4"]),
                ("2025-03-07 01:00", &["minimum 4"]),
                ("2025-03-08 01:00", &["minimum 4"]),
                ("2025-03-09 01:00", &["last 1", "newest", "minimum 4"]),
            ])
        );
    }

    /// The base of the window: kept only where the log is archived, and it
    /// is the newest backup that *ended* before the period began.
    #[test]
    fn the_window_base_is_kept_where_the_log_is_archived() {
        let mut labels: Vec<String> = (10..=20).map(|d| format!("2025-03-{d} 01:00")).collect();
        // The period begins 2025-03-13 12:00: this one straddles it.
        labels.push("2025-03-13 11:55".into());
        labels.sort();
        let mut backups = refs("pg", &labels, 0);
        let p = Policy {
            purge_after_days: Some(7),
            ..Policy::default()
        };
        let now = at("2025-03-20 12:00");
        let within: Vec<(String, Vec<String>)> = (14..=19)
            .map(|d| (format!("2025-03-{d} 01:00"), vec!["within 7 days".into()]))
            .chain([(
                "2025-03-20 01:00".to_string(),
                vec!["within 7 days".into(), "newest".into(), "minimum 1".into()],
            )])
            .collect();
        let d = plan(&backups, &p, now, &berlin());
        assert_eq!(kept(&backups, &d), within);
        for b in &mut backups {
            b.covered = true;
        }
        let d = plan(&backups, &p, now, &berlin());
        let mut want = within.clone();
        want.insert(
            0,
            ("2025-03-13 01:00".into(), vec!["base of the window".into()]),
        );
        assert_eq!(kept(&backups, &d), want);
    }

    #[test]
    fn a_named_snapshot_keeps_a_base() {
        let labels: Vec<String> = (1..=6).map(|d| format!("2025-03-0{d} 01:00")).collect();
        let mut backups = refs("pg", &labels, 0);
        // only-one: based on 03-01 alone. two-old: on 03-02 and 03-03,
        // neither kept otherwise: the newer is kept. kept-one: on 03-04 and
        // 03-06, the latter kept anyway: it takes the reason, 03-04 goes.
        backups[0].bases_of = vec!["only-one".into()];
        backups[1].bases_of = vec!["two-old".into()];
        backups[2].bases_of = vec!["two-old".into()];
        backups[3].bases_of = vec!["kept-one".into()];
        backups[5].bases_of = vec!["kept-one".into()];
        let p = Policy {
            keep_last: Some(1),
            ..Policy::default()
        };
        let d = plan(&backups, &p, at("2025-03-07 00:00"), &berlin());
        assert_eq!(
            kept(&backups, &d),
            expect(&[
                ("2025-03-01 01:00", &["base of snapshot only-one"]),
                ("2025-03-03 01:00", &["base of snapshot two-old"]),
                (
                    "2025-03-06 01:00",
                    &["last 1", "newest", "minimum 1", "base of snapshot kept-one"]
                ),
            ])
        );
    }

    #[test]
    fn policies_are_checked() {
        let with = |days| Policy {
            purge_after_days: Some(days),
            ..Policy::default()
        };
        assert!(with(7).validate().is_ok());
        assert!(with(365).validate().is_ok());
        for bad in [0, 6, 366] {
            let e = with(bad).validate().unwrap_err();
            assert!(
                e.contains("purge_after_days") && e.contains("7 to 365"),
                "{e}"
            );
        }
        let flag = |f: &str| format!("--{}", f.replace('_', "-"));
        let e = with(6).validate_as(flag).unwrap_err();
        assert!(e.starts_with("--purge-after-days is 6"), "{e}");
        for empty in [
            Policy::default(),
            Policy {
                keep_last: Some(0),
                keep_min: 5,
                ..Policy::default()
            },
        ] {
            let e = empty.validate_as(flag).unwrap_err();
            assert!(
                e.contains(
                    "--purge-after-days, --keep-last, --keep-daily, --keep-weekly, --keep-monthly"
                ),
                "{e}"
            );
        }
        assert!(Policy {
            keep_weekly: Some(1),
            ..Policy::default()
        }
        .validate()
        .is_ok());
    }

    #[test]
    fn policies_read_from_json_with_snake_case_names() {
        let p: Policy = serde_json::from_str(
            r#"{"purge_after_days": 30, "keep_last": 3, "keep_daily": 7,
                "keep_weekly": 4, "keep_monthly": 12, "keep_min": 2}"#,
        )
        .unwrap();
        assert_eq!(
            p,
            Policy {
                keep_min: 2,
                ..console_policy()
            }
        );
        let p: Policy = serde_json::from_str(r#"{"keep_daily": 7}"#).unwrap();
        assert_eq!(p.keep_min, 1);
        assert_eq!(p.keep_last, None);
        let e = serde_json::from_str::<Policy>(r#"{"keep_dayly": 7}"#)
            .unwrap_err()
            .to_string();
        assert!(e.contains("keep_dayly"), "{e}");
    }
}
