//! Schedules: when a plan runs next, in its time zone.
//!
//! A plan's config names a schedule and a time zone; [`Schedule::parse`]
//! reads the two, [`Schedule::next_after`] says when the plan runs next and
//! [`Schedule::runs_between`] which runs fell in a span (a daemon that was
//! down runs a missed plan once at start when that span, from the last run
//! to now, holds any).
//!
//! # Forms
//!
//! - `daily HH:MM`: once a day at that local time ([`DEFAULT`] is
//!   `daily 01:00`).
//! - `hourly`, `hourly :MM`: every hour at minute 0 (or MM).
//! - `every Nh`, `every Nm`: N hours dividing 24 (1, 2, 3, 4, 6, 8, 12, 24)
//!   or N minutes dividing 60 (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60),
//!   counted from local midnight: `every 6h` runs at 00:00, 06:00, 12:00 and
//!   18:00 local time.
//! - a cron expression of 5 fields, `minute hour day-of-month month
//!   day-of-week` (`30 2 * * 1-5`), or 6 with seconds first. A field is `*`,
//!   a value, a range `a-b`, a step `*/n`, `a-b/n` or `a/n`, or a list of
//!   these; months may be `JAN`–`DEC`, days of the week `SUN`–`SAT`, and 0
//!   and 7 are both Sunday. As in Vixie cron, when the day-of-month and
//!   day-of-week fields are both restricted (neither starts with `*`) a day
//!   matching either runs: `0 0 13 * FRI` runs on every 13th and every
//!   Friday. An expression no date matches (`0 0 30 2 *`) is refused.
//!
//! Keywords are read in any case; [`Schedule`]'s `Display` gives the
//! canonical text (`daily 01:00`, `every 6h`, a cron expression with single
//! spaces). Runs fall on whole seconds.
//!
//! # Daylight saving time
//!
//! A schedule names local (wall-clock) times; where the zone's clocks jump,
//! the rules are those of Vixie cron:
//!
//! - **Clocks go forward** (a gap, 02:00–03:00 in Europe/Berlin on the last
//!   Sunday of March): a local time in the gap runs once, at the first
//!   instant after the gap, i.e. the moment of the change (03:00 local).
//!   `daily 02:30` then runs at 03:00 that day, exactly once. Several times
//!   in the gap (`every 15m`) make that one run, so an interval schedule
//!   still runs every real interval across the change.
//! - **Clocks go back** (a fold, 02:00–03:00 occurring twice on the last
//!   Sunday of October): a local time in the fold runs once, at its first
//!   occurrence (02:30 summer time for `daily 02:30`); except that a
//!   schedule running every hour (`hourly`, `every 1h`, every `every Nm`, a
//!   cron expression whose hour or minute field covers every value) runs at
//!   both occurrences, hence every real hour (or N minutes) across the
//!   change. `every 2h` and longer run at the first occurrence only.
//!
//! # Limits
//!
//! Cron matching is done by `jiff-cron`, which knows the years 1970–2100:
//! no schedule runs after 2100.

use std::fmt;
use std::iter::Peekable;
use std::str::FromStr;

use jiff::civil::DateTime;
use jiff::tz::{AmbiguousOffset, TimeZone};
use jiff::{SignedDuration, Timestamp, ToSpan};

/// The schedule a plan gets when its config names none.
pub const DEFAULT: &str = "daily 01:00";

/// When a plan runs: a set of local times in a time zone.
#[derive(Clone, Debug)]
pub struct Schedule {
    /// The canonical text, for `Display`.
    text: String,
    /// The zone's name as given to [`Schedule::parse`] (canonicalised by
    /// the time zone database where it knows one).
    zone_name: String,
    zone: TimeZone,
    /// Civil-time matchers, seconds first; a time matching any runs (two
    /// when day of month and day of week are both restricted).
    matchers: Vec<jiff_cron::Schedule>,
    /// Whether a local time in a fold runs at both occurrences.
    repeat_in_fold: bool,
}

impl Schedule {
    /// Reads a schedule (`daily 01:00`, `hourly`, `every 6h`, a cron
    /// expression) in an IANA time zone (`Europe/Berlin`, `UTC`). The error
    /// is one line, naming what is wrong and what to write.
    pub fn parse(text: &str, timezone: &str) -> Result<Schedule, String> {
        let (zone, zone_name) = time_zone(timezone)?;
        let words: Vec<&str> = text.split_whitespace().collect();
        let keyword = words.first().map(|w| w.to_ascii_lowercase());
        let (canonical, fields) = match (keyword.as_deref(), &words[..]) {
            (None, _) => {
                return Err(format!(
                    "schedule \"{text}\" is empty; write e.g. \"{DEFAULT}\""
                ))
            }
            (Some("daily"), [_, time]) => daily(text, time)?,
            (Some("daily"), [_]) => {
                return Err(format!(
                    "schedule \"{text}\": the time of day is missing; write e.g. \"{DEFAULT}\""
                ))
            }
            (Some("daily"), _) => {
                return Err(format!(
                    "schedule \"{text}\": \"daily\" takes one time, HH:MM (the time zone is a setting of its own); write e.g. \"{DEFAULT}\""
                ))
            }
            (Some("hourly"), [_]) => ("hourly".to_string(), Fields::hourly(0)),
            (Some("hourly"), [_, minute]) => hourly(text, minute)?,
            (Some("hourly"), _) => {
                return Err(format!(
                    "schedule \"{text}\": \"hourly\" takes at most a minute, :MM; write e.g. \"hourly\" or \"hourly :15\""
                ))
            }
            (Some("every"), [_, rest @ ..]) => every(text, &rest.concat())?,
            (_, [_, _, _, _, _]) => cron(text, &words, false)?,
            (_, [_, _, _, _, _, _]) => cron(text, &words, true)?,
            _ => return Err(unknown(text)),
        };
        let schedule = Schedule {
            text: canonical,
            zone_name,
            zone,
            matchers: fields.matchers(text)?,
            repeat_in_fold: fields.hours == ALL_HOURS || fields.minutes == ALL_MINUTES,
        };
        if fields.may_never_run() {
            schedule.check_runs(text)?;
        }
        Ok(schedule)
    }

    /// The time zone's name (`Europe/Berlin`).
    pub fn timezone(&self) -> &str {
        &self.zone_name
    }

    /// The time zone the schedule's local times are in.
    pub fn tz(&self) -> &TimeZone {
        &self.zone
    }

    /// The first run strictly after `t`; `None` past what the schedule can
    /// reckon (the year 2100). See the module's documentation for the
    /// daylight saving rules.
    pub fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        // Local times are visited in order; the instant a local time maps
        // to first never decreases with it, while a fold's second
        // occurrence comes before later local times' first. So the search
        // stops at the first local time whose first instant is no earlier
        // than the best run found.
        let local = Local::new(&self.matchers, self.local_floor(t))?;
        let mut best: Option<Timestamp> = None;
        for c in local {
            let (first, second) = self.instants(c)?;
            if best.is_some_and(|b| first >= b) {
                break;
            }
            for i in std::iter::once(first).chain(second) {
                if i > t && best.is_none_or(|b| i < b) {
                    best = Some(i);
                }
            }
        }
        best
    }

    /// The runs in `(from, to]`, in order: strictly after `from`, up to and
    /// including `to`. A daemon started at `now` whose plan last ran at
    /// `last` runs it once at start when `runs_between(last, now).next()` is
    /// some.
    pub fn runs_between(
        &self,
        from: Timestamp,
        to: Timestamp,
    ) -> impl Iterator<Item = Timestamp> + '_ {
        let mut cursor = Some(from);
        std::iter::from_fn(move || {
            let next = self.next_after(cursor?).filter(|n| *n <= to);
            cursor = next;
            next
        })
    }

    /// A local time no later than any whose run may come after `t`: `t`
    /// read at the smallest offset the zone has from `t` to three days on
    /// (more than offsets ever differ), so a run after `t` comes from a
    /// local time after it.
    fn local_floor(&self, t: Timestamp) -> DateTime {
        let horizon = t
            .checked_add(SignedDuration::from_hours(72))
            .unwrap_or(Timestamp::MAX);
        let offset = self
            .zone
            .following(t)
            .take_while(|tr| tr.timestamp() <= horizon)
            .map(|tr| tr.offset())
            .fold(self.zone.to_offset(t), std::cmp::min);
        offset.to_datetime(t)
    }

    /// The instants local time `c` runs at: the first, and a fold's second
    /// occurrence where the schedule repeats there.
    fn instants(&self, c: DateTime) -> Option<(Timestamp, Option<Timestamp>)> {
        match self.zone.to_ambiguous_timestamp(c).offset() {
            AmbiguousOffset::Unambiguous { offset } => Some((offset.to_timestamp(c).ok()?, None)),
            // `c` read at the offset after the gap is an instant before
            // the change: the change is the next transition.
            AmbiguousOffset::Gap { after, .. } => {
                let before_change = after.to_timestamp(c).ok()?;
                let change = self.zone.following(before_change).next()?.timestamp();
                Some((change, None))
            }
            AmbiguousOffset::Fold { before, after } => Some((
                before.to_timestamp(c).ok()?,
                if self.repeat_in_fold {
                    Some(after.to_timestamp(c).ok()?)
                } else {
                    None
                },
            )),
        }
    }

    /// Refuses a schedule with no run within five years of a fixed past
    /// instant or of now (a cron expression no date matches).
    fn check_runs(&self, text: &str) -> Result<(), String> {
        let within = SignedDuration::from_hours(24 * 366 * 5);
        let past = Timestamp::from_second(946_684_800).expect("2000-01-01 is a timestamp");
        for from in [past, Timestamp::now()] {
            let runs = self
                .next_after(from)
                .is_some_and(|n| n.duration_since(from) <= within);
            if !runs {
                return Err(format!(
                    "schedule \"{text}\" never runs: no date has its day of month in its months (February has 29 days, April, June, September and November 30); write a day the months have, e.g. \"0 0 28 2 *\""
                ));
            }
        }
        Ok(())
    }
}

impl fmt::Display for Schedule {
    /// The canonical schedule text, without the time zone.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl PartialEq for Schedule {
    fn eq(&self, other: &Schedule) -> bool {
        self.text == other.text && self.zone_name == other.zone_name
    }
}

impl Eq for Schedule {}

/// A schedule's two config fields, as serde reads and writes them: a plan
/// may hold a `Schedule` with `#[serde(flatten)]`.
#[derive(serde::Serialize, serde::Deserialize)]
struct ConfigFields {
    schedule: String,
    timezone: String,
}

impl serde::Serialize for Schedule {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        ConfigFields {
            schedule: self.text.clone(),
            timezone: self.zone_name.clone(),
        }
        .serialize(s)
    }
}

impl<'de> serde::Deserialize<'de> for Schedule {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Schedule, D::Error> {
        let f = ConfigFields::deserialize(d)?;
        Schedule::parse(&f.schedule, &f.timezone).map_err(serde::de::Error::custom)
    }
}

fn time_zone(name: &str) -> Result<(TimeZone, String), String> {
    let name = name.trim();
    let zone = TimeZone::get(name).map_err(|_| {
        format!(
            "timezone \"{name}\" is not a known IANA time zone; write a name like \"Europe/Berlin\" or \"UTC\""
        )
    })?;
    let canonical = zone.iana_name().unwrap_or(name).to_string();
    Ok((zone, canonical))
}

fn unknown(text: &str) -> String {
    format!(
        "schedule \"{text}\" is not one arca reads; write \"daily HH:MM\" (e.g. \"{DEFAULT}\"), \"hourly\", \"every 6h\", \"every 15m\" or a 5-field cron expression (minute hour day-of-month month day-of-week, e.g. \"30 2 * * 1-5\")"
    )
}

/// A number of `min..=max` digits.
fn digits(s: &str, min: usize, max: usize) -> Option<u32> {
    (s.len() >= min && s.len() <= max && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

fn daily(text: &str, time: &str) -> Result<(String, Fields), String> {
    let wrong = |what: &str| format!("schedule \"{text}\": {what}; write e.g. \"{DEFAULT}\"");
    let (h, m) = time
        .split_once(':')
        .and_then(|(h, m)| Some((digits(h, 1, 2)?, digits(m, 2, 2)?)))
        .ok_or_else(|| wrong("the time must be HH:MM, 24-hour clock"))?;
    if h > 23 {
        return Err(wrong("the hour must be 00–23"));
    }
    if m > 59 {
        return Err(wrong("the minute must be 00–59"));
    }
    let fields = Fields {
        minutes: 1 << m,
        hours: 1 << h,
        ..Fields::every_second_of(0)
    };
    Ok((format!("daily {h:02}:{m:02}"), fields))
}

fn hourly(text: &str, minute: &str) -> Result<(String, Fields), String> {
    let wrong = |what: &str| format!("schedule \"{text}\": {what}; write e.g. \"hourly :15\"");
    let m = minute
        .strip_prefix(':')
        .and_then(|m| digits(m, 2, 2))
        .ok_or_else(|| wrong("the minute is written :MM"))?;
    if m > 59 {
        return Err(wrong("the minute must be 00–59"));
    }
    let canonical = if m == 0 {
        "hourly".to_string()
    } else {
        format!("hourly :{m:02}")
    };
    Ok((canonical, Fields::hourly(m)))
}

fn every(text: &str, interval: &str) -> Result<(String, Fields), String> {
    const HOURS: &str = "every 1h, 2h, 3h, 4h, 6h, 8h, 12h or 24h";
    const MINUTES: &str = "every 1m, 2m, 3m, 4m, 5m, 6m, 10m, 12m, 15m, 20m, 30m or 60m";
    let lower = interval.to_ascii_lowercase();
    let (n, unit) = match lower.char_indices().find(|(_, c)| !c.is_ascii_digit()) {
        Some((i, _)) => (&lower[..i], &lower[i..]),
        None => (&lower[..], ""),
    };
    let n = digits(n, 1, 4);
    match (n, unit) {
        (Some(n), "h") if n > 0 && 24 % n == 0 => {
            let mut hours = 0;
            for h in (0..24).step_by(n as usize) {
                hours |= 1 << h;
            }
            let fields = Fields {
                minutes: 1,
                hours,
                ..Fields::every_second_of(0)
            };
            Ok((format!("every {n}h"), fields))
        }
        (Some(n), "m") if n > 0 && 60 % n == 0 => {
            let mut minutes = 0;
            for m in (0..60).step_by(n as usize) {
                minutes |= 1 << m;
            }
            let fields = Fields {
                minutes,
                ..Fields::every_second_of(0)
            };
            Ok((format!("every {n}m"), fields))
        }
        (Some(n), "h") => Err(format!(
            "schedule \"{text}\": {n} hours does not divide a day, so the runs could not fall at the same times each day; write {HOURS}"
        )),
        (Some(n), "m") => Err(format!(
            "schedule \"{text}\": {n} minutes does not divide an hour, so the runs could not fall at the same minutes each hour; write {MINUTES} (or whole hours, e.g. \"every 2h\")"
        )),
        _ => Err(format!(
            "schedule \"{text}\": the interval is a number of hours or minutes, e.g. \"every 6h\" or \"every 15m\" (for days, write \"daily HH:MM\")"
        )),
    }
}

fn cron(text: &str, words: &[&str], seconds: bool) -> Result<(String, Fields), String> {
    let mut f = words.iter().copied();
    let mut field = |spec: &FieldSpec| {
        let raw = f.next().expect("5 or 6 words");
        parse_field(spec, raw).map_err(|problem| {
            format!(
                "schedule \"{text}\": the {} field \"{raw}\" {problem}; write e.g. \"30 2 * * 1-5\" (minute hour day-of-month month day-of-week)",
                spec.name
            )
        })
    };
    let fields = Fields {
        seconds: if seconds { field(&SECOND)? } else { 1 },
        minutes: field(&MINUTE)?,
        hours: field(&HOUR)?,
        days: field(&DAY)?,
        months: field(&MONTH)?,
        weekdays: field(&WEEKDAY)?,
        days_star: words[words.len() - 3].starts_with('*'),
        weekdays_star: words[words.len() - 1].starts_with('*'),
    };
    Ok((words.join(" "), fields))
}

const ALL_HOURS: u64 = (1 << 24) - 1;
const ALL_MINUTES: u64 = (1 << 60) - 1;

/// The values of each field, as bit sets; days of the week with Sunday 0.
#[derive(Clone, Copy)]
struct Fields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days: u64,
    months: u64,
    weekdays: u64,
    /// Whether the day-of-month field starts with `*` (Vixie's rule:
    /// unless both this and the next are false, a day must match both).
    days_star: bool,
    weekdays_star: bool,
}

impl Fields {
    /// At second `s` of every minute of every day.
    fn every_second_of(s: u32) -> Fields {
        Fields {
            seconds: 1 << s,
            minutes: ALL_MINUTES,
            hours: ALL_HOURS,
            days: bits(1, 31),
            months: bits(1, 12),
            weekdays: bits(0, 6),
            days_star: true,
            weekdays_star: true,
        }
    }

    fn hourly(minute: u32) -> Fields {
        Fields {
            minutes: 1 << minute,
            ..Fields::every_second_of(0)
        }
    }

    /// Whether some day of month might be in none of the months.
    fn may_never_run(&self) -> bool {
        self.days != bits(1, 31) || self.months != bits(1, 12)
    }

    /// `jiff-cron` expressions (seconds first, days of the week 1–7 from
    /// Sunday) matching the same local times, any of them.
    fn matchers(&self, text: &str) -> Result<Vec<jiff_cron::Schedule>, String> {
        let list = |set: u64, lo: u32, hi: u32, shift: u32| {
            if set == bits(lo, hi) {
                return "*".to_string();
            }
            let values: Vec<String> = (lo..=hi)
                .filter(|v| set & (1 << v) != 0)
                .map(|v| (v + shift).to_string())
                .collect();
            values.join(",")
        };
        let head = format!(
            "{} {} {}",
            list(self.seconds, 0, 59, 0),
            list(self.minutes, 0, 59, 0),
            list(self.hours, 0, 23, 0)
        );
        let days = list(self.days, 1, 31, 0);
        let months = list(self.months, 1, 12, 0);
        let weekdays = list(self.weekdays, 0, 6, 1);
        let expressions = if self.days_star || self.weekdays_star {
            vec![format!("{head} {days} {months} {weekdays}")]
        } else {
            vec![
                format!("{head} {days} {months} *"),
                format!("{head} * {months} {weekdays}"),
            ]
        };
        expressions
            .iter()
            .map(|e| {
                jiff_cron::Schedule::from_str(e)
                    .map_err(|err| format!("schedule \"{text}\": {err} (as \"{e}\")"))
            })
            .collect()
    }
}

/// The bits `lo..=hi`.
fn bits(lo: u32, hi: u32) -> u64 {
    ((1u64 << (hi + 1)) - 1) & !((1u64 << lo) - 1)
}

struct FieldSpec {
    name: &'static str,
    lo: u32,
    hi: u32,
    /// Names of the values from `lo`.
    names: &'static [&'static str],
    range: &'static str,
}

const SECOND: FieldSpec = FieldSpec {
    name: "second",
    lo: 0,
    hi: 59,
    names: &[],
    range: "0–59",
};
const MINUTE: FieldSpec = FieldSpec {
    name: "minute",
    lo: 0,
    hi: 59,
    names: &[],
    range: "0–59",
};
const HOUR: FieldSpec = FieldSpec {
    name: "hour",
    lo: 0,
    hi: 23,
    names: &[],
    range: "0–23",
};
const DAY: FieldSpec = FieldSpec {
    name: "day-of-month",
    lo: 1,
    hi: 31,
    names: &[],
    range: "1–31",
};
const MONTH: FieldSpec = FieldSpec {
    name: "month",
    lo: 1,
    hi: 12,
    names: &[
        "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
    ],
    range: "1–12 or JAN–DEC",
};
const WEEKDAY: FieldSpec = FieldSpec {
    name: "day-of-week",
    lo: 0,
    hi: 7,
    names: &["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
    range: "0–7 or SUN–SAT (0 and 7 are Sunday)",
};

/// A cron field's values as a bit set, or what is wrong with it.
fn parse_field(spec: &FieldSpec, raw: &str) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let n = match digits(v, 1, 2) {
            Some(n) => Some(n),
            None => spec
                .names
                .iter()
                .position(|name| name.eq_ignore_ascii_case(v))
                .map(|i| spec.lo + i as u32),
        };
        n.filter(|n| (spec.lo..=spec.hi).contains(n))
            .ok_or_else(|| format!("holds \"{v}\", which is not in {}", spec.range))
    };
    let mut set = 0u64;
    for item in raw.split(',') {
        if item.is_empty() {
            return Err("has an empty item".to_string());
        }
        let (range, step) = match item.split_once('/') {
            Some((range, step)) => match digits(step, 1, 2).filter(|s| *s >= 1) {
                Some(s) => (range, Some(s)),
                None => return Err(format!("has the step \"{step}\", but steps start at 1")),
            },
            None => (item, None),
        };
        let (lo, hi) = if range == "*" {
            (spec.lo, spec.hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (value(a)?, value(b)?)
        } else {
            let a = value(range)?;
            (a, if step.is_some() { spec.hi } else { a })
        };
        if lo > hi {
            return Err(format!(
                "has the range \"{range}\" running backwards (write the smaller end first, or a list)"
            ));
        }
        for v in (lo..=hi).step_by(step.unwrap_or(1) as usize) {
            set |= 1 << v;
        }
    }
    // Sunday is 0 and 7 alike.
    if spec.hi == 7 && set & (1 << 7) != 0 {
        set = (set | 1) & !(1 << 7);
    }
    Ok(set)
}

/// The local times the matchers give, in order, from `from` on (`from`
/// itself included).
struct Local<'a> {
    heads: Vec<Peekable<jiff_cron::ScheduleIterator<'a>>>,
}

impl<'a> Local<'a> {
    fn new(matchers: &'a [jiff_cron::Schedule], from: DateTime) -> Option<Local<'a>> {
        // `jiff-cron` works in a zone; in UTC its times are local times.
        let before = from
            .checked_sub(1.nanosecond())
            .ok()?
            .to_zoned(TimeZone::UTC)
            .ok()?;
        Some(Local {
            heads: matchers
                .iter()
                .map(|m| m.after(before.clone()).peekable())
                .collect(),
        })
    }
}

impl Iterator for Local<'_> {
    type Item = DateTime;

    fn next(&mut self) -> Option<DateTime> {
        let first = self
            .heads
            .iter_mut()
            .filter_map(|h| h.peek().map(|z| z.datetime()))
            .min()?;
        for h in &mut self.heads {
            if h.peek().is_some_and(|z| z.datetime() == first) {
                h.next();
            }
        }
        Some(first)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn runs(schedule: &str, zone: &str, from: &str, to: &str) -> Vec<String> {
        Schedule::parse(schedule, zone)
            .unwrap()
            .runs_between(ts(from), ts(to))
            .map(|t| t.to_string())
            .collect()
    }

    fn err(schedule: &str, zone: &str) -> String {
        Schedule::parse(schedule, zone).unwrap_err()
    }

    #[test]
    fn daily_berlin_across_both_changes() {
        // 01:00 CET is 00:00 UTC; 01:00 CEST is 23:00 UTC the day before.
        assert_eq!(
            runs(
                "daily 01:00",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                "2026-03-31T12:00:00Z"
            ),
            [
                "2026-03-28T00:00:00Z",
                "2026-03-29T00:00:00Z",
                "2026-03-29T23:00:00Z",
                "2026-03-30T23:00:00Z",
            ]
        );
        assert_eq!(
            runs(
                "daily 01:00",
                "Europe/Berlin",
                "2026-10-23T12:00:00Z",
                "2026-10-27T12:00:00Z"
            ),
            [
                "2026-10-23T23:00:00Z",
                "2026-10-24T23:00:00Z",
                "2026-10-26T00:00:00Z",
                "2026-10-27T00:00:00Z",
            ]
        );
    }

    #[test]
    fn next_after_is_strictly_after() {
        let s = Schedule::parse("daily 01:00", "Europe/Berlin").unwrap();
        let run = ts("2026-03-28T00:00:00Z");
        assert_eq!(s.next_after(run - SignedDuration::from_nanos(1)), Some(run));
        assert_eq!(s.next_after(run), Some(ts("2026-03-29T00:00:00Z")));
        // Between: the same next run.
        assert_eq!(
            s.next_after(ts("2026-03-28T13:17:05.5Z")),
            Some(ts("2026-03-29T00:00:00Z"))
        );
    }

    #[test]
    fn spring_forward_gap_runs_once_at_the_change() {
        // 02:30 does not exist on 2026-03-29 in Berlin: clocks go from
        // 02:00 CET to 03:00 CEST at 01:00 UTC; the run is then.
        assert_eq!(
            runs(
                "daily 02:30",
                "Europe/Berlin",
                "2026-03-28T00:00:00Z",
                "2026-03-30T12:00:00Z"
            ),
            [
                "2026-03-28T01:30:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-30T00:30:00Z",
            ]
        );
        // From inside the day, before and after the change.
        let s = Schedule::parse("daily 02:30", "Europe/Berlin").unwrap();
        assert_eq!(
            s.next_after(ts("2026-03-29T00:59:59Z")),
            Some(ts("2026-03-29T01:00:00Z"))
        );
        assert_eq!(
            s.next_after(ts("2026-03-29T01:00:00Z")),
            Some(ts("2026-03-30T00:30:00Z"))
        );
    }

    #[test]
    fn fall_back_fold_runs_once_at_the_first_occurrence() {
        // 02:30 happens at 00:30 UTC (CEST) and 01:30 UTC (CET) on
        // 2026-10-25; the run is at the first only.
        assert_eq!(
            runs(
                "daily 02:30",
                "Europe/Berlin",
                "2026-10-24T00:00:00Z",
                "2026-10-26T12:00:00Z"
            ),
            [
                "2026-10-24T00:30:00Z",
                "2026-10-25T00:30:00Z",
                "2026-10-26T01:30:00Z",
            ]
        );
        let s = Schedule::parse("daily 02:30", "Europe/Berlin").unwrap();
        assert_eq!(
            s.next_after(ts("2026-10-25T00:30:00Z")),
            Some(ts("2026-10-26T01:30:00Z"))
        );
        // Between the two occurrences: not the second.
        assert_eq!(
            s.next_after(ts("2026-10-25T01:00:00Z")),
            Some(ts("2026-10-26T01:30:00Z"))
        );
    }

    #[test]
    fn new_york_across_both_changes() {
        // 2026-03-08: 02:00 EST becomes 03:00 EDT at 07:00 UTC.
        assert_eq!(
            runs(
                "daily 02:15",
                "America/New_York",
                "2026-03-07T00:00:00Z",
                "2026-03-09T12:00:00Z"
            ),
            [
                "2026-03-07T07:15:00Z",
                "2026-03-08T07:00:00Z",
                "2026-03-09T06:15:00Z",
            ]
        );
        // 2026-11-01: 02:00 EDT becomes 01:00 EST at 06:00 UTC; 01:30
        // happens at 05:30 UTC (EDT) and 06:30 UTC (EST).
        assert_eq!(
            runs(
                "daily 01:30",
                "America/New_York",
                "2026-10-31T00:00:00Z",
                "2026-11-02T12:00:00Z"
            ),
            [
                "2026-10-31T05:30:00Z",
                "2026-11-01T05:30:00Z",
                "2026-11-02T06:30:00Z",
            ]
        );
        // Outside the changes: 09:00 EST is 14:00 UTC, 09:00 EDT 13:00.
        assert_eq!(
            runs(
                "daily 09:00",
                "America/New_York",
                "2026-01-10T00:00:00Z",
                "2026-01-11T00:00:00Z"
            ),
            ["2026-01-10T14:00:00Z"]
        );
        assert_eq!(
            runs(
                "daily 09:00",
                "America/New_York",
                "2026-07-10T00:00:00Z",
                "2026-07-11T00:00:00Z"
            ),
            ["2026-07-10T13:00:00Z"]
        );
    }

    #[test]
    fn every_6h_is_aligned_to_local_midnight() {
        // 00, 06, 12, 18 local; 2026-03-29 00:00 is CET, the rest CEST.
        assert_eq!(
            runs(
                "every 6h",
                "Europe/Berlin",
                "2026-03-28T20:00:00Z",
                "2026-03-29T22:00:00Z"
            ),
            [
                "2026-03-28T23:00:00Z",
                "2026-03-29T04:00:00Z",
                "2026-03-29T10:00:00Z",
                "2026-03-29T16:00:00Z",
                "2026-03-29T22:00:00Z",
            ]
        );
        assert_eq!(
            runs(
                "every 8h",
                "UTC",
                "2026-05-01T00:00:00Z",
                "2026-05-02T00:00:00Z"
            ),
            [
                "2026-05-01T08:00:00Z",
                "2026-05-01T16:00:00Z",
                "2026-05-02T00:00:00Z",
            ]
        );
        assert_eq!(
            runs(
                "every 20m",
                "UTC",
                "2026-05-01T00:10:00Z",
                "2026-05-01T01:00:00Z"
            ),
            [
                "2026-05-01T00:20:00Z",
                "2026-05-01T00:40:00Z",
                "2026-05-01T01:00:00Z",
            ]
        );
    }

    #[test]
    fn hourly_runs_every_real_hour_across_changes() {
        for schedule in ["hourly", "every 1h"] {
            // Fall back: 02:00 local twice, at 00:00 and 01:00 UTC.
            assert_eq!(
                runs(
                    schedule,
                    "Europe/Berlin",
                    "2026-10-24T22:30:00Z",
                    "2026-10-25T03:00:00Z"
                ),
                [
                    "2026-10-24T23:00:00Z",
                    "2026-10-25T00:00:00Z",
                    "2026-10-25T01:00:00Z",
                    "2026-10-25T02:00:00Z",
                    "2026-10-25T03:00:00Z",
                ],
                "{schedule}"
            );
            // Spring forward: 01:00 CET, then 03:00 CEST an hour later.
            assert_eq!(
                runs(
                    schedule,
                    "Europe/Berlin",
                    "2026-03-28T23:30:00Z",
                    "2026-03-29T02:00:00Z"
                ),
                [
                    "2026-03-29T00:00:00Z",
                    "2026-03-29T01:00:00Z",
                    "2026-03-29T02:00:00Z",
                ],
                "{schedule}"
            );
        }
        assert_eq!(
            runs(
                "hourly :15",
                "UTC",
                "2026-05-01T00:15:00Z",
                "2026-05-01T02:15:00Z"
            ),
            ["2026-05-01T01:15:00Z", "2026-05-01T02:15:00Z"]
        );
        // Every 30 minutes through the fold: every real half hour.
        assert_eq!(
            runs(
                "every 30m",
                "Europe/Berlin",
                "2026-10-25T00:00:00Z",
                "2026-10-25T02:00:00Z"
            ),
            [
                "2026-10-25T00:30:00Z",
                "2026-10-25T01:00:00Z",
                "2026-10-25T01:30:00Z",
                "2026-10-25T02:00:00Z",
            ]
        );
        // Every 15 minutes through the gap: 02:00–02:45 make one run at
        // the change, which is 03:00.
        assert_eq!(
            runs(
                "every 15m",
                "Europe/Berlin",
                "2026-03-29T00:30:00Z",
                "2026-03-29T01:30:00Z"
            ),
            [
                "2026-03-29T00:45:00Z",
                "2026-03-29T01:00:00Z",
                "2026-03-29T01:15:00Z",
                "2026-03-29T01:30:00Z",
            ]
        );
    }

    #[test]
    fn every_2h_runs_once_in_a_fold() {
        // 02:00 local is in the fold; it runs at its first occurrence.
        assert_eq!(
            runs(
                "every 2h",
                "Europe/Berlin",
                "2026-10-24T21:00:00Z",
                "2026-10-25T04:00:00Z"
            ),
            [
                "2026-10-24T22:00:00Z",
                "2026-10-25T00:00:00Z",
                "2026-10-25T03:00:00Z",
            ]
        );
    }

    #[test]
    fn cron_weekdays() {
        // 2026-03-27 is a Friday.
        let expected = [
            "2026-03-27T02:30:00Z",
            "2026-03-30T02:30:00Z",
            "2026-03-31T02:30:00Z",
        ];
        for schedule in ["30 2 * * 1-5", "30 2 * * MON-FRI", "0 30 2 * * mon-fri"] {
            assert_eq!(
                runs(
                    schedule,
                    "UTC",
                    "2026-03-26T12:00:00Z",
                    "2026-03-31T12:00:00Z"
                ),
                expected,
                "{schedule}"
            );
        }
        // In Berlin: 02:30 on Monday 2026-03-30 is CEST, 00:30 UTC.
        assert_eq!(
            runs(
                "30 2 * * 1-5",
                "Europe/Berlin",
                "2026-03-27T12:00:00Z",
                "2026-03-31T12:00:00Z"
            ),
            ["2026-03-30T00:30:00Z", "2026-03-31T00:30:00Z"]
        );
    }

    #[test]
    fn cron_fields() {
        // Sunday is 0 and 7; 2026-03-29 is a Sunday.
        for schedule in ["0 12 * * 0", "0 12 * * 7", "0 12 * * SUN"] {
            assert_eq!(
                runs(
                    schedule,
                    "UTC",
                    "2026-03-23T00:00:00Z",
                    "2026-04-06T00:00:00Z"
                ),
                ["2026-03-29T12:00:00Z", "2026-04-05T12:00:00Z"],
                "{schedule}"
            );
        }
        // Day of month and day of week both restricted: either.
        // 2026-03-13 is a Friday; so are the 6th, 20th and 27th.
        assert_eq!(
            runs(
                "0 0 13 * FRI",
                "UTC",
                "2026-03-01T00:00:00Z",
                "2026-04-14T00:00:00Z"
            ),
            [
                "2026-03-06T00:00:00Z",
                "2026-03-13T00:00:00Z",
                "2026-03-20T00:00:00Z",
                "2026-03-27T00:00:00Z",
                "2026-04-03T00:00:00Z",
                "2026-04-10T00:00:00Z",
                "2026-04-13T00:00:00Z",
            ]
        );
        // One starting with `*`: both.
        assert_eq!(
            runs(
                "0 0 */2 * FRI",
                "UTC",
                "2026-03-01T00:00:00Z",
                "2026-04-01T00:00:00Z"
            ),
            ["2026-03-13T00:00:00Z", "2026-03-27T00:00:00Z"]
        );
        assert_eq!(
            runs(
                "15,45 9-10 1 JAN,jul *",
                "UTC",
                "2026-01-01T00:00:00Z",
                "2026-12-31T00:00:00Z"
            ),
            [
                "2026-01-01T09:15:00Z",
                "2026-01-01T09:45:00Z",
                "2026-01-01T10:15:00Z",
                "2026-01-01T10:45:00Z",
                "2026-07-01T09:15:00Z",
                "2026-07-01T09:45:00Z",
                "2026-07-01T10:15:00Z",
                "2026-07-01T10:45:00Z",
            ]
        );
        // Six fields: seconds first.
        assert_eq!(
            runs(
                "*/20 0 0 * * *",
                "UTC",
                "2026-05-01T00:00:00Z",
                "2026-05-01T12:00:00Z"
            ),
            ["2026-05-01T00:00:20Z", "2026-05-01T00:00:40Z",]
        );
        // February 29th runs in leap years.
        assert_eq!(
            Schedule::parse("0 0 29 2 *", "UTC")
                .unwrap()
                .next_after(ts("2026-01-01T00:00:00Z")),
            Some(ts("2028-02-29T00:00:00Z"))
        );
    }

    #[test]
    fn never_running_cron_refused() {
        assert_eq!(
            err("0 0 30 2 *", "UTC"),
            "schedule \"0 0 30 2 *\" never runs: no date has its day of month in its months (February has 29 days, April, June, September and November 30); write a day the months have, e.g. \"0 0 28 2 *\""
        );
        assert!(err("0 0 31 4,6,9,11 *", "Europe/Berlin").contains("never runs"));
        // With a day of the week too, the day of the week runs.
        Schedule::parse("0 0 30 2 MON", "UTC").unwrap();
    }

    #[test]
    fn bad_times_refused() {
        assert_eq!(
            err("daily 25:00", "UTC"),
            "schedule \"daily 25:00\": the hour must be 00–23; write e.g. \"daily 01:00\""
        );
        assert_eq!(
            err("daily 01:60", "UTC"),
            "schedule \"daily 01:60\": the minute must be 00–59; write e.g. \"daily 01:00\""
        );
        assert_eq!(
            err("daily 1am", "UTC"),
            "schedule \"daily 1am\": the time must be HH:MM, 24-hour clock; write e.g. \"daily 01:00\""
        );
        assert_eq!(
            err("hourly 15", "UTC"),
            "schedule \"hourly 15\": the minute is written :MM; write e.g. \"hourly :15\""
        );
        assert_eq!(
            err("30 24 * * *", "UTC"),
            "schedule \"30 24 * * *\": the hour field \"24\" holds \"24\", which is not in 0–23; write e.g. \"30 2 * * 1-5\" (minute hour day-of-month month day-of-week)"
        );
        assert!(
            err("30 2 * * FRI-MON", "UTC").contains("has the range \"FRI-MON\" running backwards")
        );
        assert!(err("30 2 * * MOM", "UTC").contains(
            "the day-of-week field \"MOM\" holds \"MOM\", which is not in 0–7 or SUN–SAT"
        ));
        assert!(err("*/0 2 * * *", "UTC").contains("has the step \"0\", but steps start at 1"));
        assert!(err("weekly", "UTC").contains("is not one arca reads"));
        assert!(err("", "UTC").contains("is empty"));
        assert!(err("daily 01:00 Europe/Berlin", "UTC").contains("one time"));
    }

    #[test]
    fn unknown_zone_refused() {
        assert_eq!(
            err("daily 01:00", "Europe/Berln"),
            "timezone \"Europe/Berln\" is not a known IANA time zone; write a name like \"Europe/Berlin\" or \"UTC\""
        );
        assert!(err("daily 01:00", "CEST+2").contains("\"CEST+2\""));
        assert!(err("daily 01:00", "").contains("timezone \"\""));
    }

    #[test]
    fn intervals_not_dividing_refused() {
        assert_eq!(
            err("every 5h", "UTC"),
            "schedule \"every 5h\": 5 hours does not divide a day, so the runs could not fall at the same times each day; write every 1h, 2h, 3h, 4h, 6h, 8h, 12h or 24h"
        );
        assert!(err("every 7m", "UTC").contains("write every 1m, 2m, 3m, 4m, 5m, 6m, 10m"));
        assert!(err("every 0h", "UTC").contains("0 hours does not divide"));
        assert!(err("every 2d", "UTC").contains("hours or minutes"));
    }

    #[test]
    fn display_is_canonical_and_parses_back() {
        for (text, canonical) in [
            ("daily 1:05", "daily 01:05"),
            ("DAILY 01:00", "daily 01:00"),
            ("hourly", "hourly"),
            ("hourly :00", "hourly"),
            ("Hourly :07", "hourly :07"),
            ("every 6h", "every 6h"),
            ("every  15M", "every 15m"),
            ("every 6 h", "every 6h"),
            ("30  2 * *   1-5", "30 2 * * 1-5"),
        ] {
            let s = Schedule::parse(text, "Europe/Berlin").unwrap();
            assert_eq!(s.to_string(), canonical);
            assert_eq!(Schedule::parse(canonical, "Europe/Berlin").unwrap(), s);
        }
        assert_eq!(
            Schedule::parse(DEFAULT, "UTC").unwrap().to_string(),
            "daily 01:00"
        );
    }

    #[test]
    fn serde_reads_the_two_config_fields() {
        #[derive(serde::Deserialize, serde::Serialize)]
        struct Plan {
            name: String,
            #[serde(flatten)]
            when: Schedule,
        }
        let plan: Plan = toml::from_str(
            "name = \"app\"\nschedule = \"daily 02:30\"\ntimezone = \"Europe/Berlin\"\n",
        )
        .unwrap();
        assert_eq!(plan.when.to_string(), "daily 02:30");
        assert_eq!(plan.when.timezone(), "Europe/Berlin");
        assert_eq!(
            serde_json::to_string(&plan).unwrap(),
            r#"{"name":"app","schedule":"daily 02:30","timezone":"Europe/Berlin"}"#
        );
        let bad = toml::from_str::<Plan>(
            "name = \"app\"\nschedule = \"daily 25:00\"\ntimezone = \"UTC\"\n",
        );
        let bad = bad.err().unwrap().to_string();
        assert!(bad.contains("the hour must be 00–23"), "{bad}");
    }
}
