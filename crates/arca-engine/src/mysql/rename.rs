//! Restoring under new names: StarRocks' `DATABASE a AS b` and `TABLE t AS
//! t2`, also inside the definitions that name them (views, routines,
//! triggers, foreign keys).

/// Database and table renames.
#[derive(Debug, Clone, Default)]
pub struct Renames {
    pub databases: Vec<(String, String)>,
    /// (db, table) → (db, table)
    pub tables: Vec<((String, String), (String, String))>,
}

impl Renames {
    /// Parses `a:b` (a database) and `a.t:a.t2` (a table).
    pub fn parse(list: &[String]) -> Result<Renames, crate::Error> {
        let mut r = Renames::default();
        for item in list {
            let bad = || {
                crate::Error::Unsupported(format!(
                    "--rename {item:?}: write OLD:NEW for a database or DB.TABLE:DB.TABLE2 for a table"
                ))
            };
            let (from, to) = item.split_once(':').ok_or_else(bad)?;
            match (from.split_once('.'), to.split_once('.')) {
                (None, None) if !from.is_empty() && !to.is_empty() => {
                    r.databases.push((from.into(), to.into()))
                }
                (Some((d, t)), Some((d2, t2))) if ![d, t, d2, t2].iter().any(|s| s.is_empty()) => r
                    .tables
                    .push(((d.into(), t.into()), (d2.into(), t2.into()))),
                _ => return Err(bad()),
            }
        }
        Ok(r)
    }

    pub fn database(&self, db: &str) -> String {
        self.databases
            .iter()
            .find(|(a, _)| a == db)
            .map_or_else(|| db.to_string(), |(_, b)| b.clone())
    }

    /// Where table `db.t` goes.
    pub fn table(&self, db: &str, t: &str) -> (String, String) {
        self.tables
            .iter()
            .find(|((a, b), _)| a == db && b == t)
            .map_or_else(|| (self.database(db), t.to_string()), |(_, to)| to.clone())
    }

    pub fn is_empty(&self) -> bool {
        self.databases.is_empty() && self.tables.is_empty()
    }

    /// `sql` (a definition read from database `db`) with qualified names
    /// renamed: `` `a`.`t` `` becomes `` `b`.`t2` ``, `` `a`.x `` becomes
    /// `` `b`.x ``. String literals and comments are left alone.
    pub fn rewrite(&self, sql: &str) -> String {
        if self.is_empty() {
            return sql.to_string();
        }
        let b = sql.as_bytes();
        let mut out = String::with_capacity(sql.len());
        let mut i = 0;
        while i < b.len() {
            match b[i] {
                q @ (b'\'' | b'"') => {
                    let end = skip_string(b, i, q);
                    out.push_str(&sql[i..end]);
                    i = end;
                }
                b'-' if b.get(i + 1) == Some(&b'-') => {
                    let end = sql[i..].find('\n').map_or(b.len(), |n| i + n);
                    out.push_str(&sql[i..end]);
                    i = end;
                }
                b'/' if b.get(i + 1) == Some(&b'*') => {
                    let end = sql[i + 2..].find("*/").map_or(b.len(), |n| i + 2 + n + 2);
                    out.push_str(&sql[i..end]);
                    i = end;
                }
                c if c == b'`' || is_word(c) => {
                    let (first, end) = ident(sql, i);
                    if b.get(end) == Some(&b'.')
                        && b.get(end + 1).is_some_and(|&n| n == b'`' || is_word(n))
                    {
                        let (second, end2) = ident(sql, end + 1);
                        if let Some((_, (d2, t2))) = self
                            .tables
                            .iter()
                            .find(|((d, t), _)| *d == first && *t == second)
                        {
                            out.push_str(&format!(
                                "{}.{}",
                                super::core::quote(d2),
                                super::core::quote(t2)
                            ));
                            i = end2;
                            continue;
                        }
                        if self.databases.iter().any(|(a, _)| *a == first) {
                            out.push_str(&super::core::quote(&self.database(&first)));
                            out.push('.');
                            out.push_str(&sql[end + 1..end2]);
                            i = end2;
                            continue;
                        }
                        out.push_str(&sql[i..end2]);
                        i = end2;
                        continue;
                    }
                    // `db`.* in a GRANT.
                    if b.get(end) == Some(&b'.') && self.databases.iter().any(|(a, _)| *a == first)
                    {
                        out.push_str(&super::core::quote(&self.database(&first)));
                        i = end;
                        continue;
                    }
                    out.push_str(&sql[i..end]);
                    i = end;
                }
                _ => {
                    let ch = sql[i..].chars().next().expect("in bounds");
                    out.push(ch);
                    i += ch.len_utf8();
                }
            }
        }
        out
    }
}

fn skip_string(b: &[u8], start: usize, q: u8) -> usize {
    let mut i = start + 1;
    while i < b.len() {
        if b[i] == b'\\' {
            i += 2;
            continue;
        }
        if b[i] == q {
            if b.get(i + 1) == Some(&q) {
                i += 2;
                continue;
            }
            return i + 1;
        }
        i += 1;
    }
    b.len()
}

fn is_word(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

/// The identifier (backquoted or bare) starting at `start`, and where it
/// ends.
fn ident(sql: &str, start: usize) -> (String, usize) {
    let b = sql.as_bytes();
    if b[start] != b'`' {
        let mut end = start;
        while end < b.len() && is_word(b[end]) {
            end += 1;
        }
        while !sql.is_char_boundary(end) {
            end += 1;
        }
        return (sql[start..end].to_string(), end);
    }
    let mut i = start + 1;
    let mut name = String::new();
    while i < b.len() {
        if b[i] == b'`' {
            if b.get(i + 1) == Some(&b'`') {
                name.push('`');
                i += 2;
                continue;
            }
            return (name, i + 1);
        }
        let ch = sql[i..].chars().next().expect("in bounds");
        name.push(ch);
        i += ch.len_utf8();
    }
    (name, b.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_qualified_names_only() {
        let r = Renames::parse(&["shop:shop2".into(), "shop.t:shop2.t2".into()]).unwrap();
        let body = "BEGIN INSERT INTO shop.audit SELECT * FROM shop.t, other.x; SET @v = 1.5; END";
        assert_eq!(
            r.rewrite(body),
            "BEGIN INSERT INTO `shop2`.audit SELECT * FROM `shop2`.`t2`, other.x; SET @v = 1.5; END"
        );
        assert_eq!(
            r.rewrite("GRANT SELECT ON `shop`.* TO `u`@`%`"),
            "GRANT SELECT ON `shop2`.* TO `u`@`%`"
        );
        let v = "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` VIEW `v` AS select `shop`.`t`.`id` AS `id`, 'x `shop`.`t`' AS `s` from `shop`.`t` join `shop`.`u`";
        assert_eq!(
            r.rewrite(v),
            "CREATE ALGORITHM=UNDEFINED DEFINER=`root`@`localhost` VIEW `v` AS select `shop2`.`t2`.`id` AS `id`, 'x `shop`.`t`' AS `s` from `shop2`.`t2` join `shop2`.`u`"
        );
        assert_eq!(r.table("shop", "u"), ("shop2".into(), "u".into()));
        assert!(Renames::parse(&["a.b:c".into()]).is_err());
    }
}
