//! Refusals: their messages, and exactly where they point.

use arca_sql::{parse, ParseError, MAX_STATEMENT_BYTES};

fn err(sql: &str) -> ParseError {
    match parse(sql) {
        Ok(s) => panic!("{sql:?} was accepted as {s:?}"),
        Err(e) => {
            assert!(e.offset <= sql.len() && sql.is_char_boundary(e.offset));
            e
        }
    }
}

/// The error's Display: `line L, column C: message`.
fn says(sql: &str) -> String {
    err(sql).to_string()
}

const ACCEPTS: &str = "arca sql accepts CREATE REPOSITORY, SHOW REPOSITORIES, DROP REPOSITORY, \
     BACKUP SNAPSHOT, SHOW BACKUP, CANCEL BACKUP, SHOW SNAPSHOT, RESTORE SNAPSHOT, SHOW RESTORE, \
     CANCEL RESTORE";

#[test]
fn missing_to() {
    let sql = "BACKUP SNAPSHOT db.snap INTO repo";
    let e = err(sql);
    assert_eq!(
        (e.offset, e.line, e.column),
        (24, 1, 25),
        "{}",
        e.render(sql)
    );
    assert_eq!(e.message, "expected TO, found \"INTO\"");
    assert_eq!(
        e.to_string(),
        "line 1, column 25: expected TO, found \"INTO\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT db.snap repo"),
        "line 1, column 25: expected TO, found \"repo\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT db.snap"),
        "line 1, column 24: expected TO, found end of statement"
    );
}

#[test]
fn missing_to_on_a_later_line() {
    let sql = "BACKUP SNAPSHOT db.snap\n  -- where to\n  IN repo";
    let e = err(sql);
    assert_eq!((e.line, e.column), (3, 3));
    assert_eq!(
        e.render(sql),
        "line 3, column 3: expected TO, found \"IN\"\n    IN repo\n    ^"
    );
}

#[test]
fn unterminated_string() {
    let sql = "CREATE REPOSITORY r WITH BROKER ON LOCATION 's3://bucket/path";
    assert_eq!(
        says(sql),
        "line 1, column 45: unterminated string: no closing ' for the one here"
    );
    let sql = "RESTORE SNAPSHOT d.s FROM r\nPROPERTIES (\"backup_timestamp\" = \"2024-01-01)";
    assert_eq!(
        says(sql),
        "line 2, column 34: unterminated string: no closing \" for the one here"
    );
    // An escaped quote does not end a string.
    assert_eq!(
        says(r"SHOW SNAPSHOT ON r WHERE SNAPSHOT = 'a\'"),
        "line 1, column 37: unterminated string: no closing ' for the one here"
    );
    assert_eq!(
        says("SHOW BACKUP FROM `db"),
        "line 1, column 18: unterminated identifier: no closing ` for the one here"
    );
    assert_eq!(
        says("SHOW /* BACKUP"),
        "line 1, column 6: unterminated comment: \"/*\" without \"*/\""
    );
}

#[test]
fn unknown_statement() {
    assert_eq!(
        says("SELECT * FROM t"),
        format!("line 1, column 1: unknown statement \"SELECT\": {ACCEPTS}")
    );
    assert_eq!(
        says("  \n  select 1"),
        format!("line 2, column 3: unknown statement \"select\": {ACCEPTS}")
    );
    // A known first word with an unknown second one points at the second.
    assert_eq!(
        says("SHOW TABLES"),
        format!("line 1, column 6: unknown statement \"SHOW TABLES\": {ACCEPTS}")
    );
    assert_eq!(
        says("CREATE TABLE t (a int)"),
        format!("line 1, column 8: unknown statement \"CREATE TABLE\": {ACCEPTS}")
    );
    assert_eq!(
        says("DROP TABLE t"),
        format!("line 1, column 6: unknown statement \"DROP TABLE\": {ACCEPTS}")
    );
    assert_eq!(
        says("CANCEL LOAD"),
        format!("line 1, column 8: unknown statement \"CANCEL LOAD\": {ACCEPTS}")
    );
    assert_eq!(
        says("SHOW"),
        "line 1, column 5: expected REPOSITORIES, BACKUP, SNAPSHOT or RESTORE after SHOW, \
         found end of statement"
    );
    assert_eq!(
        says("(SHOW BACKUP)"),
        format!("line 1, column 1: unknown statement \"(\": {ACCEPTS}")
    );
    assert_eq!(
        says(""),
        format!("line 1, column 1: empty statement: {ACCEPTS}")
    );
    assert_eq!(
        says(" -- nothing\n ;"),
        format!("line 2, column 2: empty statement: {ACCEPTS}")
    );
}

#[test]
fn trailing_garbage() {
    assert_eq!(
        says("SHOW REPOSITORIES now"),
        "line 1, column 19: expected end of statement, found \"now\""
    );
    assert_eq!(
        says("SHOW BACKUP FROM db extra"),
        "line 1, column 21: expected end of statement, found \"extra\""
    );
    assert_eq!(
        says("SHOW BACKUP db"),
        "line 1, column 13: expected FROM or end of statement, found \"db\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r WITH (x)"),
        "line 1, column 26: expected ON, PROPERTIES or end of statement, found \"WITH\""
    );
    assert_eq!(
        says("SHOW BACKUP; SHOW RESTORE"),
        "line 1, column 14: arca sql takes one statement at a time; found \"SHOW\" after \";\""
    );
    assert_eq!(
        says("SHOW BACKUP;;"),
        "line 1, column 13: arca sql takes one statement at a time; found \";\" after \";\""
    );
    assert_eq!(
        says("DROP REPOSITORY r )"),
        "line 1, column 19: expected end of statement, found \")\""
    );
}

#[test]
fn duplicate_property() {
    let sql = "BACKUP SNAPSHOT d.s TO r PROPERTIES (\"timeout\" = \"1\", \"type\" = \"full\", \"timeout\" = \"2\")";
    let e = err(sql);
    assert_eq!(
        e.to_string(),
        "line 1, column 72: duplicate property \"timeout\""
    );
    assert_eq!(&sql[e.offset..e.offset + 9], "\"timeout\"");
    // Keys differing only in case are refused too.
    assert_eq!(
        says("CREATE REPOSITORY r WITH BROKER ON LOCATION 'x' PROPERTIES ('k' = 'v', 'K' = 'w')"),
        "line 1, column 72: duplicate property \"K\""
    );
}

#[test]
fn property_syntax() {
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES (timeout = \"1\")"),
        "line 1, column 38: expected a property name in quotes, found \"timeout\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES (\"timeout\" = 3600)"),
        "line 1, column 50: expected a property value in quotes, found \"3600\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES (\"timeout\" \"3600\")"),
        "line 1, column 48: expected \"=\", found string \"3600\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES ()"),
        "line 1, column 38: expected a property name in quotes, found \")\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES (\"a\" = \"b\""),
        "line 1, column 47: expected \",\" or \")\", found end of statement"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES \"a\" = \"b\""),
        "line 1, column 37: expected \"(\" after PROPERTIES, found string \"a\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r PROPERTIES (\"\" = \"b\")"),
        "line 1, column 38: a property name must not be empty"
    );
}

#[test]
fn restore_needs_a_timestamp() {
    assert_eq!(
        says("RESTORE SNAPSHOT d.s FROM r"),
        "line 1, column 28: RESTORE needs PROPERTIES (\"backup_timestamp\" = \"...\"); \
         SHOW SNAPSHOT ON <repository> lists the timestamps"
    );
    assert_eq!(
        says("RESTORE SNAPSHOT d.s FROM r PROPERTIES (\"replication_num\" = \"1\")"),
        "line 1, column 29: RESTORE needs the \"backup_timestamp\" property; \
         SHOW SNAPSHOT ON <repository> lists the timestamps"
    );
    assert_eq!(
        says("RESTORE SNAPSHOT d.s FROM r PROPERTIES (\"backup_timestamp\" = \"\")"),
        "line 1, column 29: the \"backup_timestamp\" property must not be empty"
    );
    assert_eq!(
        says("RESTORE SNAPSHOT d.s FROM r ON (t) WITH"),
        "line 1, column 36: expected PROPERTIES, found \"WITH\""
    );
}

#[test]
fn on_lists() {
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (t AS u)"),
        "line 1, column 32: BACKUP cannot rename a table: AS belongs to RESTORE"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (t, T)"),
        "line 1, column 33: table \"T\" is listed twice"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (t PARTITION (p1, p2, p1))"),
        "line 1, column 51: partition \"p1\" is listed twice"
    );
    assert_eq!(
        says(
            "RESTORE SNAPSHOT d.s FROM r ON (a AS b, b) PROPERTIES (\"backup_timestamp\" = \"x\")"
        ),
        "line 1, column 38: alias \"b\" repeats a table name or alias of this list"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (other.t)"),
        "line 1, column 35: tables in ON belong to the snapshot's database: \
         give the table name alone"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON ()"),
        "line 1, column 30: expected a table name, found \")\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (t u)"),
        "line 1, column 32: expected PARTITION, \",\" or \")\", found \"u\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON t"),
        "line 1, column 29: expected \"(\" after ON, found \"t\""
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (t PARTITION (p1 p2))"),
        "line 1, column 46: expected \",\" or \")\", found \"p2\""
    );
}

#[test]
fn unsupported_starrocks_forms() {
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (ALL TABLES)"),
        "line 1, column 30: ALL ... in ON (name the tables, or leave out ON for the whole \
         database) is not supported by arca sql"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (VIEW v1)"),
        "line 1, column 30: backing up or restoring views, materialized views or functions \
         is not supported by arca sql"
    );
    assert_eq!(
        says("BACKUP ALL EXTERNAL CATALOGS SNAPSHOT s TO r"),
        "line 1, column 8: backing up or restoring external catalogs is not supported by arca sql"
    );
    assert_eq!(
        says("RESTORE SNAPSHOT s FROM r DATABASE a AS b PROPERTIES (\"backup_timestamp\" = \"x\")"),
        "line 1, column 38: restoring into another database (DATABASE ... AS ...) \
         is not supported by arca sql"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO r ON (t TEMPORARY PARTITION (tp1))"),
        "line 1, column 32: TEMPORARY PARTITION is not supported by arca sql"
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE SNAPSHOT IN ('a', 'b')"),
        "line 1, column 35: SNAPSHOT IN (...) is not supported by arca sql"
    );
}

#[test]
fn names() {
    assert_eq!(
        says("BACKUP SNAPSHOT a.b.c TO r"),
        "line 1, column 20: a snapshot is named [database.]snapshot; found a second \".\""
    );
    assert_eq!(
        says("BACKUP DATABASE a SNAPSHOT b.s TO r"),
        "line 1, column 28: the snapshot's database \"b\" differs from DATABASE \"a\""
    );
    assert_eq!(
        says("DROP REPOSITORY 'r'"),
        "line 1, column 17: expected a repository name, found string 'r'"
    );
    assert_eq!(
        says("DROP REPOSITORY 42"),
        "line 1, column 17: expected a repository name, found \"42\""
    );
    assert_eq!(
        says("SHOW BACKUP FROM ``"),
        "line 1, column 18: empty identifier ``"
    );
    assert_eq!(
        says("BACKUP SNAPSHOT d.s TO my-repo"),
        "line 1, column 26: expected ON, PROPERTIES or end of statement, found \"-\""
    );
    assert_eq!(
        says("CREATE REPOSITORY r WITH BROKER ON LOCATION ''"),
        "line 1, column 45: the repository location in quotes must not be empty"
    );
    assert_eq!(
        says("CREATE REPOSITORY r WITH BROKER b"),
        "line 1, column 34: expected ON, found end of statement"
    );
    assert_eq!(
        says("CREATE REPOSITORY r ON LOCATION 'x'"),
        "line 1, column 21: expected WITH, found \"ON\""
    );
    assert_eq!(
        says("CREATE READ REPOSITORY r WITH BROKER ON LOCATION 'x'"),
        "line 1, column 13: expected ONLY, found \"REPOSITORY\""
    );
}

#[test]
fn show_snapshot_where() {
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE TIMESTAMP = 'x'"),
        "line 1, column 26: TIMESTAMP needs SNAPSHOT = '...' as well"
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE SNAPSHOT = 'a' AND SNAPSHOT = 'b'"),
        "line 1, column 45: SNAPSHOT is given twice"
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE SNAPSHOT = a"),
        "line 1, column 37: expected the snapshot name in quotes, found \"a\""
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE label = 'a'"),
        "line 1, column 26: expected SNAPSHOT or TIMESTAMP, found \"label\""
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE SNAPSHOT = 'a' OR TIMESTAMP = 'b'"),
        "line 1, column 41: expected AND or end of statement, found \"OR\""
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE SNAPSHOT = 'a' AND TIMESTAMP = 'b' AND x"),
        "line 1, column 61: expected end of statement, found \"AND\""
    );
    assert_eq!(
        says("SHOW SNAPSHOT ON r WHERE SNAPSHOT = ''"),
        "line 1, column 37: the snapshot name in quotes must not be empty"
    );
}

#[test]
fn positions_count_characters_not_bytes() {
    // "数据库" is nine bytes but three columns.
    let sql = "SHOW BACKUP FROM 数据库 x";
    let e = err(sql);
    assert_eq!((e.offset, e.line, e.column), (27, 1, 22));
    assert_eq!(
        e.render(sql),
        format!(
            "line 1, column 22: expected end of statement, found \"x\"\n  \
             SHOW BACKUP FROM 数据库 x\n{}^",
            " ".repeat(26)
        )
    );
}

#[test]
fn long_tokens_are_cut_in_messages() {
    let long = "x".repeat(500);
    let e = err(&format!("SHOW BACKUP FROM db {long}"));
    assert_eq!(
        e.message,
        format!("expected end of statement, found \"{}…\"", "x".repeat(40))
    );
}

#[test]
fn render_cuts_long_lines_and_blanks_tabs() {
    let sql = format!(
        "SHOW BACKUP FROM db{} oops{}",
        " ".repeat(200),
        "y".repeat(200)
    );
    let e = err(&sql);
    let r = e.render(&sql);
    let lines: Vec<&str> = r.lines().collect();
    assert_eq!(lines.len(), 3);
    assert!(lines[1].starts_with("  …"), "{r}");
    assert!(lines[1].ends_with('…'), "{r}");
    let caret = lines[2].chars().count() - 1;
    assert_eq!(lines[1].chars().nth(caret), Some('o'), "{r}");

    let sql = "SHOW\tBACKUP\tFROM\tdb\tx";
    let r = err(sql).render(sql);
    assert_eq!(
        r,
        format!(
            "line 1, column 21: expected end of statement, found \"x\"\n  \
             SHOW BACKUP FROM db x\n{}^",
            " ".repeat(22)
        )
    );
}

#[test]
fn render_survives_other_input() {
    // Rendering against a string other than the parsed one must not panic.
    let e = err("SHOW BACKUP FROM db x");
    for other in ["", "é", "short", "数据库数据库数据库"] {
        let _ = e.render(other);
    }
}

#[test]
fn oversized_statement() {
    let sql = format!("SHOW REPOSITORIES{}", " ".repeat(MAX_STATEMENT_BYTES));
    let e = err(&sql);
    assert_eq!((e.line, e.column), (1, 1));
    assert!(
        e.message.starts_with("statement is 1048593 bytes"),
        "{}",
        e.message
    );
}
