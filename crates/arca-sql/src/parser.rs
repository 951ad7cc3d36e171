//! Recursive descent over the statements of [`crate::Statement`].
//!
//! The grammar has no nesting (every parenthesis sits at a fixed place), so
//! no function here calls itself: the stack depth is fixed whatever the
//! input, and each token is looked at a bounded number of times.

use std::collections::HashSet;

use crate::lexer::{Error, Kind, Lexer, Token};
use crate::{Statement, TableRef};

/// What `arca sql` accepts, for "unknown statement" errors.
pub(crate) const ACCEPTED: &str = "arca sql accepts CREATE REPOSITORY, SHOW REPOSITORIES, \
     DROP REPOSITORY, BACKUP SNAPSHOT, SHOW BACKUP, CANCEL BACKUP, SHOW SNAPSHOT, \
     RESTORE SNAPSHOT, SHOW RESTORE, CANCEL RESTORE";

const END: &str = "end of statement";

/// Longest piece of the input quoted back in an error.
const QUOTE_CHARS: usize = 40;

pub(crate) fn parse(src: &str) -> Result<Statement, Error> {
    let mut p = Parser {
        lexer: Lexer::new(src),
        ahead: [None, None],
    };
    p.statement()
}

struct Parser<'a> {
    lexer: Lexer<'a>,
    /// Up to two tokens read but not yet taken.
    ahead: [Option<Token>; 2],
}

/// `s` cut to [`QUOTE_CHARS`] characters, with control characters escaped.
fn clip(s: &str) -> String {
    let mut out = String::new();
    for (n, c) in s.chars().enumerate() {
        if n == QUOTE_CHARS {
            out.push('…');
            break;
        }
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

fn unsupported(at: usize, what: &str) -> Error {
    Error::new(at, format!("{what} is not supported by arca sql"))
}

fn is_kw(src: &str, t: &Token, kw: &str) -> bool {
    t.kind == Kind::Word
        && src
            .get(t.start..t.end)
            .is_some_and(|w| w.eq_ignore_ascii_case(kw))
}

/// "A", "A or B", "A, B or C".
fn one_of(what: &[&str]) -> String {
    match what {
        [] => String::new(),
        [one] => (*one).to_string(),
        [init @ .., last] => format!("{} or {}", init.join(", "), last),
    }
}

impl<'a> Parser<'a> {
    // ---- token access -------------------------------------------------

    fn fill(&mut self, n: usize) -> Result<(), Error> {
        for slot in self.ahead.iter_mut().take(n + 1) {
            if slot.is_none() {
                *slot = Some(self.lexer.next_token()?);
            }
        }
        Ok(())
    }

    fn peek(&mut self) -> Result<&Token, Error> {
        self.peek_nth(0)
    }

    /// The `n`th token ahead (0 or 1).
    fn peek_nth(&mut self, n: usize) -> Result<&Token, Error> {
        self.fill(n)?;
        match self.ahead.get(n) {
            Some(Some(t)) => Ok(t),
            _ => Err(Error::new(0, "internal error: lookahead")),
        }
    }

    fn bump(&mut self) -> Result<Token, Error> {
        self.fill(0)?;
        let t = self.ahead[0].take();
        self.ahead[0] = self.ahead[1].take();
        t.ok_or_else(|| Error::new(0, "internal error: lookahead"))
    }

    fn text(&self, t: &Token) -> &'a str {
        let src = self.lexer.src();
        src.get(t.start..t.end).unwrap_or("")
    }

    fn is_kw(&self, t: &Token, kw: &str) -> bool {
        is_kw(self.lexer.src(), t, kw)
    }

    fn peek_kw(&mut self, kw: &str) -> Result<bool, Error> {
        let src = self.lexer.src();
        Ok(is_kw(src, self.peek()?, kw))
    }

    /// Takes the next token if it is the keyword `kw`.
    fn eat_kw(&mut self, kw: &str) -> Result<Option<Token>, Error> {
        if self.peek_kw(kw)? {
            Ok(Some(self.bump()?))
        } else {
            Ok(None)
        }
    }

    fn eat(&mut self, kind: &Kind) -> Result<Option<Token>, Error> {
        if &self.peek()?.kind == kind {
            Ok(Some(self.bump()?))
        } else {
            Ok(None)
        }
    }

    // ---- errors ---------------------------------------------------------

    /// How a token is named in errors: as written, in quotes.
    fn describe(&self, t: &Token) -> String {
        match &t.kind {
            Kind::End => END.to_string(),
            Kind::Str(_) => format!("string {}", clip(self.text(t))),
            Kind::QuotedIdent(_) => format!("identifier {}", clip(self.text(t))),
            _ => format!("\"{}\"", clip(self.text(t))),
        }
    }

    fn expected(&self, t: &Token, what: &[&str]) -> Error {
        Error::new(
            t.start,
            format!("expected {}, found {}", one_of(what), self.describe(t)),
        )
    }

    fn expect_kw(&mut self, kw: &str) -> Result<Token, Error> {
        let t = self.bump()?;
        if self.is_kw(&t, kw) {
            Ok(t)
        } else {
            Err(self.expected(&t, &[kw]))
        }
    }

    fn expect(&mut self, kind: &Kind, name: &str) -> Result<Token, Error> {
        let t = self.bump()?;
        if &t.kind == kind {
            Ok(t)
        } else {
            Err(self.expected(&t, &[name]))
        }
    }

    // ---- pieces -----------------------------------------------------------

    /// An identifier, bare or in backquotes; `what` names it in errors.
    /// Returns the identifier and its offset.
    fn ident(&mut self, what: &str) -> Result<(String, usize), Error> {
        let t = self.bump()?;
        match t.kind {
            Kind::Word => Ok((self.text(&t).to_string(), t.start)),
            Kind::QuotedIdent(s) => Ok((s, t.start)),
            _ => Err(self.expected(&t, &[what])),
        }
    }

    /// An identifier or a quoted string (StarRocks' `identifierOrString`).
    fn ident_or_string(&mut self, what: &str) -> Result<(String, usize), Error> {
        let t = self.bump()?;
        match t.kind {
            Kind::Word => Ok((self.text(&t).to_string(), t.start)),
            Kind::QuotedIdent(s) | Kind::Str(s) => Ok((s, t.start)),
            _ => Err(self.expected(&t, &[what])),
        }
    }

    /// Returns the string and its offset.
    fn string(&mut self, what: &str) -> Result<(String, usize), Error> {
        let t = self.bump()?;
        match t.kind {
            Kind::Str(s) => Ok((s, t.start)),
            _ => Err(self.expected(&t, &[what])),
        }
    }

    fn non_empty_string(&mut self, what: &str) -> Result<String, Error> {
        let (s, at) = self.string(what)?;
        if s.is_empty() {
            return Err(Error::new(at, format!("{what} must not be empty")));
        }
        Ok(s)
    }

    /// Whether `t` can start a name, as opposed to the keywords that may
    /// follow one in an ON list.
    fn starts_name(&self, t: &Token) -> bool {
        match t.kind {
            Kind::QuotedIdent(_) => true,
            Kind::Word => !["PARTITION", "PARTITIONS", "TEMPORARY", "AS"]
                .iter()
                .any(|kw| self.is_kw(t, kw)),
            _ => false,
        }
    }

    /// The optional `;` and the end of the input. `more` names what else
    /// could have come here, for the error.
    fn finish(&mut self, more: &[&str]) -> Result<(), Error> {
        let t = self.bump()?;
        match t.kind {
            Kind::End => Ok(()),
            Kind::Semi => {
                let t = self.bump()?;
                match t.kind {
                    Kind::End => Ok(()),
                    _ => Err(Error::new(
                        t.start,
                        format!(
                            "arca sql takes one statement at a time; found {} after \";\"",
                            self.describe(&t)
                        ),
                    )),
                }
            }
            _ => {
                let mut what = more.to_vec();
                what.push(END);
                Err(self.expected(&t, &what))
            }
        }
    }

    /// `[FROM | IN] db`, as in `SHOW BACKUP FROM db`.
    fn db_clause(&mut self) -> Result<Option<String>, Error> {
        if self.eat_kw("FROM")?.is_some() || self.eat_kw("IN")?.is_some() {
            Ok(Some(self.ident("a database name")?.0))
        } else {
            Ok(None)
        }
    }

    /// `[db.]name`, and the offset it starts at; a third part is refused.
    fn snapshot_name(&mut self) -> Result<(Option<String>, String, usize), Error> {
        let (first, t) = self.ident("a snapshot name")?;
        if self.eat(&Kind::Dot)?.is_none() {
            return Ok((None, first, t));
        }
        let (second, _) = self.ident("a snapshot name after \"database.\"")?;
        if let Some(dot) = self.eat(&Kind::Dot)? {
            return Err(Error::new(
                dot.start,
                "a snapshot is named [database.]snapshot; found a second \".\"",
            ));
        }
        Ok((Some(first), second, t))
    }

    /// `( "key" = "value", ... )`, after PROPERTIES. Keys are compared
    /// without regard to case: two that differ only in case are refused too.
    fn properties(&mut self) -> Result<Vec<(String, String)>, Error> {
        self.expect(&Kind::LParen, "\"(\" after PROPERTIES")?;
        let mut out = Vec::new();
        let mut seen = HashSet::new();
        loop {
            let (key, kt) = self.string("a property name in quotes")?;
            if key.is_empty() {
                return Err(Error::new(kt, "a property name must not be empty"));
            }
            if !seen.insert(key.to_lowercase()) {
                return Err(Error::new(
                    kt,
                    format!("duplicate property \"{}\"", clip(&key)),
                ));
            }
            self.expect(&Kind::Eq, "\"=\"")?;
            let (value, _) = self.string("a property value in quotes")?;
            out.push((key, value));
            let t = self.bump()?;
            match t.kind {
                Kind::Comma => continue,
                Kind::RParen => return Ok(out),
                _ => return Err(self.expected(&t, &["\",\"", "\")\""])),
            }
        }
    }

    /// `PARTITION (p, ...)`, `PARTITION p`, or the same with PARTITIONS.
    fn partitions(&mut self) -> Result<Vec<String>, Error> {
        let mut out = Vec::new();
        if let Some(t) = self.eat_kw("TEMPORARY")? {
            return Err(unsupported(t.start, "TEMPORARY PARTITION"));
        }
        if self.eat_kw("PARTITION")?.is_none() && self.eat_kw("PARTITIONS")?.is_none() {
            return Ok(out);
        }
        let mut seen = HashSet::new();
        let mut add = |name: String, at: usize| {
            if seen.insert(name.to_lowercase()) {
                out.push(name);
                Ok(())
            } else {
                Err(Error::new(
                    at,
                    format!("partition \"{}\" is listed twice", clip(&name)),
                ))
            }
        };
        if self.eat(&Kind::LParen)?.is_none() {
            let (name, at) = self.ident_or_string("a partition name or \"(\"")?;
            add(name, at)?;
            return Ok(out);
        }
        loop {
            let (name, at) = self.ident_or_string("a partition name")?;
            add(name, at)?;
            let t = self.bump()?;
            match t.kind {
                Kind::Comma => continue,
                Kind::RParen => return Ok(out),
                _ => return Err(self.expected(&t, &["\",\"", "\")\""])),
            }
        }
    }

    /// `( [TABLE] t [PARTITION (...)] [AS alias], ... )`, after ON. Aliases
    /// are only for RESTORE: StarRocks refuses them in BACKUP.
    fn table_list(&mut self, restore: bool) -> Result<Vec<TableRef>, Error> {
        self.expect(&Kind::LParen, "\"(\" after ON")?;
        let mut tables: Vec<TableRef> = Vec::new();
        let mut names = HashSet::new();
        let mut aliases: Vec<(String, usize)> = Vec::new();
        loop {
            // What the first word is depends on the second: `TABLE t` but
            // `table,` (a table named "table").
            self.peek_nth(1)?;
            let (Some(first), Some(second)) = (&self.ahead[0], &self.ahead[1]) else {
                return Err(Error::new(0, "internal error: lookahead"));
            };
            let at = first.start;
            let kind_word = |kws: &[&str]| kws.iter().any(|kw| self.is_kw(first, kw));
            let all = kind_word(&["ALL"]) && second.kind == Kind::Word;
            let other_kind = kind_word(&["VIEW", "VIEWS", "FUNCTION", "FUNCTIONS", "MATERIALIZED"])
                && self.starts_name(second);
            let table_kw = kind_word(&["TABLE", "TABLES"]) && self.starts_name(second);
            if all {
                return Err(unsupported(
                    at,
                    "ALL ... in ON (name the tables, or leave out ON for the whole database)",
                ));
            }
            if other_kind {
                return Err(unsupported(
                    at,
                    "backing up or restoring views, materialized views or functions",
                ));
            }
            if table_kw {
                self.bump()?;
            }
            let (name, nt) = self.ident("a table name")?;
            if let Some(dot) = self.eat(&Kind::Dot)? {
                return Err(Error::new(
                    dot.start,
                    "tables in ON belong to the snapshot's database: give the table name alone",
                ));
            }
            if !names.insert(name.to_lowercase()) {
                return Err(Error::new(
                    nt,
                    format!("table \"{}\" is listed twice", clip(&name)),
                ));
            }
            let partitions = self.partitions()?;
            let mut alias = None;
            if let Some(as_kw) = self.eat_kw("AS")? {
                if !restore {
                    return Err(Error::new(
                        as_kw.start,
                        "BACKUP cannot rename a table: AS belongs to RESTORE",
                    ));
                }
                let (a, at) = self.ident("an alias after AS")?;
                aliases.push((a.clone(), at));
                alias = Some(a);
            }
            tables.push(TableRef {
                name,
                alias,
                partitions,
            });
            let t = self.bump()?;
            match t.kind {
                Kind::Comma => continue,
                Kind::RParen => break,
                _ => {
                    let mut what = vec!["PARTITION"];
                    if restore {
                        what.push("AS");
                    }
                    what.extend(["\",\"", "\")\""]);
                    return Err(self.expected(&t, &what));
                }
            }
        }
        // As in StarRocks, an alias may not repeat a table name of the list
        // or another alias.
        for (alias, offset) in aliases {
            if !names.insert(alias.to_lowercase()) {
                return Err(Error::new(
                    offset,
                    format!(
                        "alias \"{}\" repeats a table name or alias of this list",
                        clip(&alias)
                    ),
                ));
            }
        }
        Ok(tables)
    }

    /// Refuses the external catalog forms of StarRocks 3.4+.
    fn no_external_catalogs(&mut self) -> Result<(), Error> {
        let src = self.lexer.src();
        let t = self.peek()?;
        let at = t.start;
        if is_kw(src, t, "ALL") || is_kw(src, t, "EXTERNAL") {
            return Err(unsupported(at, "backing up or restoring external catalogs"));
        }
        Ok(())
    }

    // ---- statements -------------------------------------------------------

    fn unknown(&self, first: &Token, second: Option<&Token>) -> Error {
        let at = second.unwrap_or(first);
        let written = match second {
            Some(s) => format!("\"{} {}\"", clip(self.text(first)), clip(self.text(s))),
            None => self.describe(first),
        };
        Error::new(at.start, format!("unknown statement {written}: {ACCEPTED}"))
    }

    /// After a known first word: if the second is a word, the statement is
    /// unknown; otherwise say what was expected.
    fn second_word(&self, first: &Token, second: &Token, what: &[&str]) -> Error {
        if second.kind == Kind::Word {
            self.unknown(first, Some(second))
        } else {
            Error::new(
                second.start,
                format!(
                    "expected {} after {}, found {}",
                    one_of(what),
                    self.text(first).to_ascii_uppercase(),
                    self.describe(second)
                ),
            )
        }
    }

    fn statement(&mut self) -> Result<Statement, Error> {
        let first = self.bump()?;
        if matches!(first.kind, Kind::End | Kind::Semi) {
            return Err(Error::new(
                first.start,
                format!("empty statement: {ACCEPTED}"),
            ));
        }
        if first.kind != Kind::Word {
            return Err(self.unknown(&first, None));
        }
        let word = self.text(&first).to_ascii_uppercase();
        match word.as_str() {
            "CREATE" => self.create_repository(first),
            "DROP" => {
                let second = self.bump()?;
                if !self.is_kw(&second, "REPOSITORY") {
                    return Err(self.second_word(&first, &second, &["REPOSITORY"]));
                }
                let name = self.ident("a repository name")?.0;
                self.finish(&[])?;
                Ok(Statement::DropRepository { name })
            }
            "SHOW" => self.show(first),
            "CANCEL" => {
                let second = self.bump()?;
                let backup = self.is_kw(&second, "BACKUP");
                if !backup && !self.is_kw(&second, "RESTORE") {
                    return Err(self.second_word(&first, &second, &["BACKUP", "RESTORE"]));
                }
                if let Some(t) = self.eat_kw("FOR")? {
                    return Err(unsupported(t.start, "CANCEL ... FOR EXTERNAL CATALOG"));
                }
                let db = self.db_clause()?;
                self.finish(if db.is_none() { &["FROM"] } else { &[] })?;
                Ok(if backup {
                    Statement::CancelBackup { db }
                } else {
                    Statement::CancelRestore { db }
                })
            }
            "BACKUP" => self.backup(),
            "RESTORE" => self.restore(),
            _ => Err(self.unknown(&first, None)),
        }
    }

    fn create_repository(&mut self, first: Token) -> Result<Statement, Error> {
        let second = self.bump()?;
        let read_only = self.is_kw(&second, "READ");
        if read_only {
            self.expect_kw("ONLY")?;
            self.expect_kw("REPOSITORY")?;
        } else if !self.is_kw(&second, "REPOSITORY") {
            return Err(self.second_word(&first, &second, &["REPOSITORY", "READ ONLY"]));
        }
        let name = self.ident("a repository name")?.0;
        self.expect_kw("WITH")?;
        self.expect_kw("BROKER")?;
        let src = self.lexer.src();
        let t = self.peek()?;
        let on = is_kw(src, t, "ON");
        let named = matches!(t.kind, Kind::Word | Kind::QuotedIdent(_) | Kind::Str(_));
        let broker = if on {
            None
        } else if named {
            Some(self.ident_or_string("a broker name")?.0)
        } else {
            let t = self.bump()?;
            return Err(self.expected(&t, &["a broker name", "ON"]));
        };
        self.expect_kw("ON")?;
        self.expect_kw("LOCATION")?;
        let location = self.non_empty_string("the repository location in quotes")?;
        let properties = match self.eat_kw("PROPERTIES")? {
            Some(_) => self.properties()?,
            None => Vec::new(),
        };
        self.finish(if properties.is_empty() {
            &["PROPERTIES"]
        } else {
            &[]
        })?;
        Ok(Statement::CreateRepository {
            name,
            location,
            broker,
            read_only,
            properties,
        })
    }

    fn show(&mut self, first: Token) -> Result<Statement, Error> {
        let second = self.bump()?;
        let word = match second.kind {
            Kind::Word => self.text(&second).to_ascii_uppercase(),
            _ => String::new(),
        };
        match word.as_str() {
            "REPOSITORIES" => {
                self.finish(&[])?;
                Ok(Statement::ShowRepositories)
            }
            "BACKUP" | "RESTORE" => {
                let db = self.db_clause()?;
                self.finish(if db.is_none() { &["FROM"] } else { &[] })?;
                Ok(if word == "BACKUP" {
                    Statement::ShowBackup { db }
                } else {
                    Statement::ShowRestore { db }
                })
            }
            "SNAPSHOT" => self.show_snapshot(),
            _ => Err(self.second_word(
                &first,
                &second,
                &["REPOSITORIES", "BACKUP", "SNAPSHOT", "RESTORE"],
            )),
        }
    }

    /// `ON repo [WHERE SNAPSHOT = 'name' [AND TIMESTAMP = 'ts']]`, the two
    /// conditions in either order, as StarRocks takes them.
    fn show_snapshot(&mut self) -> Result<Statement, Error> {
        self.expect_kw("ON")?;
        let repository = self.ident("a repository name")?.0;
        let mut snapshot = None;
        let mut timestamp: Option<(String, usize)> = None;
        if self.eat_kw("WHERE")?.is_some() {
            loop {
                let t = self.bump()?;
                let name = match &t.kind {
                    Kind::Word => self.text(&t).to_string(),
                    Kind::QuotedIdent(s) => s.clone(),
                    _ => String::new(),
                };
                let is_snapshot = name.eq_ignore_ascii_case("SNAPSHOT");
                if !is_snapshot && !name.eq_ignore_ascii_case("TIMESTAMP") {
                    return Err(self.expected(&t, &["SNAPSHOT", "TIMESTAMP"]));
                }
                let given = if is_snapshot {
                    snapshot.is_some()
                } else {
                    timestamp.is_some()
                };
                if given {
                    return Err(Error::new(
                        t.start,
                        format!("{} is given twice", name.to_ascii_uppercase()),
                    ));
                }
                if let Some(t) = self.eat_kw("IN")? {
                    return Err(unsupported(t.start, "SNAPSHOT IN (...)"));
                }
                self.expect(&Kind::Eq, "\"=\"")?;
                if is_snapshot {
                    snapshot = Some(self.non_empty_string("the snapshot name in quotes")?);
                } else {
                    let v = self.non_empty_string("the timestamp in quotes")?;
                    timestamp = Some((v, t.start));
                }
                if snapshot.is_some() && timestamp.is_some() {
                    break;
                }
                if self.eat_kw("AND")?.is_none() {
                    break;
                }
            }
        }
        if let (None, Some((_, offset))) = (&snapshot, &timestamp) {
            return Err(Error::new(
                *offset,
                "TIMESTAMP needs SNAPSHOT = '...' as well",
            ));
        }
        let more: &[&str] = match (&snapshot, &timestamp) {
            (None, None) => &["WHERE"],
            (Some(_), None) => &["AND"],
            _ => &[],
        };
        self.finish(more)?;
        Ok(Statement::ShowSnapshot {
            repository,
            snapshot,
            timestamp: timestamp.map(|(v, _)| v),
        })
    }

    fn backup(&mut self) -> Result<Statement, Error> {
        self.no_external_catalogs()?;
        let mut database = None;
        if self.eat_kw("DATABASE")?.is_some() {
            database = Some(self.ident("a database name")?.0);
        }
        let t = self.bump()?;
        if !self.is_kw(&t, "SNAPSHOT") {
            let what: &[&str] = if database.is_some() {
                &["SNAPSHOT"]
            } else {
                &["SNAPSHOT", "DATABASE"]
            };
            return Err(self.expected(&t, what));
        }
        let (db, snapshot, st) = self.snapshot_name()?;
        let db = merge_db(database, db, st)?;
        self.expect_kw("TO")?;
        let repository = self.ident("a repository name")?.0;
        let mut tables = Vec::new();
        if self.eat_kw("ON")?.is_some() {
            tables = self.table_list(false)?;
        }
        let mut properties = Vec::new();
        let mut more = Vec::new();
        if self.eat_kw("PROPERTIES")?.is_some() {
            properties = self.properties()?;
        } else {
            if tables.is_empty() {
                more.push("ON");
            }
            more.push("PROPERTIES");
        }
        self.finish(&more)?;
        Ok(Statement::Backup {
            db,
            snapshot,
            repository,
            tables,
            properties,
        })
    }

    fn restore(&mut self) -> Result<Statement, Error> {
        self.expect_kw("SNAPSHOT")?;
        let (db, snapshot, st) = self.snapshot_name()?;
        self.expect_kw("FROM")?;
        let repository = self.ident("a repository name")?.0;
        self.no_external_catalogs()?;
        let mut database = None;
        if self.eat_kw("DATABASE")?.is_some() {
            database = Some(self.ident("a database name")?.0);
            if let Some(t) = self.eat_kw("AS")? {
                return Err(unsupported(
                    t.start,
                    "restoring into another database (DATABASE ... AS ...)",
                ));
            }
        }
        let db = merge_db(database, db, st)?;
        let mut tables = Vec::new();
        if self.eat_kw("ON")?.is_some() {
            tables = self.table_list(true)?;
        }
        let t = self.bump()?;
        if !self.is_kw(&t, "PROPERTIES") {
            if matches!(t.kind, Kind::End | Kind::Semi) {
                return Err(Error::new(
                    t.start,
                    "RESTORE needs PROPERTIES (\"backup_timestamp\" = \"...\"); \
                     SHOW SNAPSHOT ON <repository> lists the timestamps",
                ));
            }
            let what: &[&str] = if tables.is_empty() {
                &["ON", "PROPERTIES"]
            } else {
                &["PROPERTIES"]
            };
            return Err(self.expected(&t, what));
        }
        let properties = self.properties()?;
        match properties.iter().find(|(k, _)| k == "backup_timestamp") {
            None => {
                return Err(Error::new(
                    t.start,
                    "RESTORE needs the \"backup_timestamp\" property; \
                     SHOW SNAPSHOT ON <repository> lists the timestamps",
                ))
            }
            Some((_, v)) if v.is_empty() => {
                return Err(Error::new(
                    t.start,
                    "the \"backup_timestamp\" property must not be empty",
                ))
            }
            Some(_) => {}
        }
        self.finish(&[])?;
        Ok(Statement::Restore {
            db,
            snapshot,
            repository,
            tables,
            properties,
        })
    }
}

/// The database of `DATABASE db` and of `db.snapshot`, which must agree
/// when both are given.
fn merge_db(
    clause: Option<String>,
    qualified: Option<String>,
    at: usize,
) -> Result<Option<String>, Error> {
    match (clause, qualified) {
        (Some(a), Some(b)) if a != b => Err(Error::new(
            at,
            format!(
                "the snapshot's database \"{}\" differs from DATABASE \"{}\"",
                clip(&b),
                clip(&a)
            ),
        )),
        (a, b) => Ok(a.or(b)),
    }
}
