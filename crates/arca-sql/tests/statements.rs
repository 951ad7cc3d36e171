//! Every statement form, with and without its optional parts.

use arca_sql::{
    parse, Statement, TableRef, SHOW_BACKUP_COLUMNS, SHOW_REPOSITORIES_COLUMNS,
    SHOW_RESTORE_COLUMNS, SHOW_SNAPSHOT_COLUMNS, SHOW_SNAPSHOT_DETAIL_COLUMNS,
};

fn ok(sql: &str) -> Statement {
    match parse(sql) {
        Ok(s) => s,
        Err(e) => panic!("{sql:?} was refused:\n{}", e.render(sql)),
    }
}

fn props(kv: &[(&str, &str)]) -> Vec<(String, String)> {
    kv.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn s(v: &str) -> String {
    v.to_string()
}

fn table(name: &str, partitions: &[&str], alias: Option<&str>) -> TableRef {
    TableRef {
        name: s(name),
        alias: alias.map(s),
        partitions: partitions.iter().map(|p| s(p)).collect(),
    }
}

// ---- repositories ---------------------------------------------------------

#[test]
fn create_repository_full() {
    let sql = r#"CREATE READ ONLY REPOSITORY `s3-repo`
        WITH BROKER my_broker
        ON LOCATION "s3://bucket/backup"
        PROPERTIES ("aws.s3.access_key" = "AK", "aws.s3.region" = 'us-east-1');"#;
    assert_eq!(
        ok(sql),
        Statement::CreateRepository {
            name: s("s3-repo"),
            location: s("s3://bucket/backup"),
            broker: Some(s("my_broker")),
            read_only: true,
            properties: props(&[("aws.s3.access_key", "AK"), ("aws.s3.region", "us-east-1")]),
        }
    );
}

#[test]
fn create_repository_minimal() {
    assert_eq!(
        ok("CREATE REPOSITORY repo WITH BROKER ON LOCATION 's3a://b/p'"),
        Statement::CreateRepository {
            name: s("repo"),
            location: s("s3a://b/p"),
            broker: None,
            read_only: false,
            properties: vec![],
        }
    );
}

#[test]
fn create_repository_broker_as_string_or_quoted() {
    for broker in ["\"hdfs_broker\"", "'hdfs_broker'", "`hdfs_broker`"] {
        let sql = format!("CREATE REPOSITORY r WITH BROKER {broker} ON LOCATION 'hdfs://h:9000/b'");
        match ok(&sql) {
            Statement::CreateRepository { broker, .. } => {
                assert_eq!(broker.as_deref(), Some("hdfs_broker"), "{sql}")
            }
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn show_and_drop_repositories() {
    assert_eq!(ok("SHOW REPOSITORIES"), Statement::ShowRepositories);
    assert_eq!(ok("show repositories;"), Statement::ShowRepositories);
    assert_eq!(
        ok("DROP REPOSITORY `old repo`"),
        Statement::DropRepository {
            name: s("old repo")
        }
    );
    assert_eq!(
        ok("drop repository r1;"),
        Statement::DropRepository { name: s("r1") }
    );
}

// ---- backup ---------------------------------------------------------------

#[test]
fn backup_minimal() {
    assert_eq!(
        ok("BACKUP SNAPSHOT snap1 TO repo"),
        Statement::Backup {
            db: None,
            snapshot: s("snap1"),
            repository: s("repo"),
            tables: vec![],
            properties: vec![],
        }
    );
}

#[test]
fn backup_database_qualified_with_properties() {
    assert_eq!(
        ok(
            r#"BACKUP SNAPSHOT example_db.snapshot_label1 TO example_repo PROPERTIES ("type" = "full");"#
        ),
        Statement::Backup {
            db: Some(s("example_db")),
            snapshot: s("snapshot_label1"),
            repository: s("example_repo"),
            tables: vec![],
            properties: props(&[("type", "full")]),
        }
    );
}

#[test]
fn backup_on_tables_and_partitions() {
    let expected = Statement::Backup {
        db: Some(s("example_db")),
        snapshot: s("snapshot_label3"),
        repository: s("example_repo"),
        tables: vec![
            table("example_tbl", &["p1", "p2"], None),
            table("example_tbl2", &[], None),
        ],
        properties: vec![],
    };
    // The StarRocks documentation's form, the 3.4+ form with TABLE, and a
    // mix of both.
    for sql in [
        "BACKUP SNAPSHOT example_db.snapshot_label3 TO example_repo
         ON (example_tbl PARTITION (p1, p2), example_tbl2)",
        "BACKUP SNAPSHOT example_db.snapshot_label3 TO example_repo
         ON (TABLE example_tbl PARTITION (p1, p2), TABLE example_tbl2)",
        "backup snapshot example_db.snapshot_label3 to example_repo
         on(tables example_tbl partitions ('p1', `p2`), example_tbl2)",
    ] {
        assert_eq!(ok(sql), expected, "{sql}");
    }
}

#[test]
fn backup_single_partition_without_parentheses() {
    match ok("BACKUP SNAPSHOT d.s TO r ON (t PARTITION p9)") {
        Statement::Backup { tables, .. } => assert_eq!(tables, vec![table("t", &["p9"], None)]),
        other => panic!("{other:?}"),
    }
}

#[test]
fn backup_everything() {
    assert_eq!(
        ok(r#"BACKUP SNAPSHOT `my db`.`snap-2024` TO `repo`
              ON (TABLE `order items` PARTITION (p1), customers)
              PROPERTIES ("timeout" = "86400", "type" = "FULL")"#),
        Statement::Backup {
            db: Some(s("my db")),
            snapshot: s("snap-2024"),
            repository: s("repo"),
            tables: vec![
                table("order items", &["p1"], None),
                table("customers", &[], None)
            ],
            properties: props(&[("timeout", "86400"), ("type", "FULL")]),
        }
    );
}

#[test]
fn backup_database_clause() {
    let expected = Statement::Backup {
        db: Some(s("sr_hub")),
        snapshot: s("sr_hub_backup"),
        repository: s("test_repo"),
        tables: vec![],
        properties: vec![],
    };
    assert_eq!(
        ok("BACKUP DATABASE sr_hub SNAPSHOT sr_hub_backup TO test_repo"),
        expected
    );
    // Both, agreeing.
    assert_eq!(
        ok("BACKUP DATABASE sr_hub SNAPSHOT sr_hub.sr_hub_backup TO test_repo"),
        expected
    );
}

#[test]
fn keywords_as_table_names() {
    // A word that could be a keyword is a name where it is followed by
    // what follows a name.
    match ok("BACKUP SNAPSHOT d.s TO r ON (table, view PARTITION (p), `all`, tables)") {
        Statement::Backup { tables, .. } => {
            let names: Vec<_> = tables.iter().map(|t| t.name.as_str()).collect();
            assert_eq!(names, ["table", "view", "all", "tables"]);
        }
        other => panic!("{other:?}"),
    }
    // A keyword as a repository or snapshot name needs nothing special.
    match ok("BACKUP SNAPSHOT snapshot TO backup") {
        Statement::Backup {
            snapshot,
            repository,
            ..
        } => assert_eq!(
            (snapshot.as_str(), repository.as_str()),
            ("snapshot", "backup")
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn show_and_cancel_backup() {
    assert_eq!(ok("SHOW BACKUP"), Statement::ShowBackup { db: None });
    assert_eq!(
        ok("SHOW BACKUP FROM example_db"),
        Statement::ShowBackup {
            db: Some(s("example_db"))
        }
    );
    assert_eq!(
        ok("show backup in `Example DB`;"),
        Statement::ShowBackup {
            db: Some(s("Example DB"))
        }
    );
    assert_eq!(ok("CANCEL BACKUP"), Statement::CancelBackup { db: None });
    assert_eq!(
        ok("CANCEL BACKUP FROM example_db;"),
        Statement::CancelBackup {
            db: Some(s("example_db"))
        }
    );
}

// ---- snapshots --------------------------------------------------------------

#[test]
fn show_snapshot_forms() {
    assert_eq!(
        ok("SHOW SNAPSHOT ON example_repo"),
        Statement::ShowSnapshot {
            repository: s("example_repo"),
            snapshot: None,
            timestamp: None
        }
    );
    assert_eq!(
        ok("SHOW SNAPSHOT ON example_repo WHERE SNAPSHOT = 'backup1'"),
        Statement::ShowSnapshot {
            repository: s("example_repo"),
            snapshot: Some(s("backup1")),
            timestamp: None
        }
    );
    let both = Statement::ShowSnapshot {
        repository: s("example_repo"),
        snapshot: Some(s("backup1")),
        timestamp: Some(s("2018-05-05-15-34-26")),
    };
    assert_eq!(
        ok("SHOW SNAPSHOT ON example_repo WHERE SNAPSHOT = 'backup1' AND TIMESTAMP = '2018-05-05-15-34-26'"),
        both
    );
    // Either order, any case, double quotes, backquoted column names.
    assert_eq!(
        ok(
            r#"show snapshot on `example_repo` where `timestamp` = "2018-05-05-15-34-26" and Snapshot = "backup1";"#
        ),
        both
    );
}

// ---- restore ----------------------------------------------------------------

#[test]
fn restore_minimal() {
    assert_eq!(
        ok(
            r#"RESTORE SNAPSHOT snap FROM repo PROPERTIES ("backup_timestamp" = "2018-05-04-16-45-08")"#
        ),
        Statement::Restore {
            db: None,
            snapshot: s("snap"),
            repository: s("repo"),
            tables: vec![],
            properties: props(&[("backup_timestamp", "2018-05-04-16-45-08")]),
        }
    );
}

#[test]
fn restore_documentation_examples() {
    assert_eq!(
        ok(r#"RESTORE SNAPSHOT example_db.snapshot_label1
              FROM example_repo
              ON ( backup_tbl )
              PROPERTIES
              (
                  "backup_timestamp"="2018-05-04-16-45-08",
                  "replication_num" = "1"
              );"#),
        Statement::Restore {
            db: Some(s("example_db")),
            snapshot: s("snapshot_label1"),
            repository: s("example_repo"),
            tables: vec![table("backup_tbl", &[], None)],
            properties: props(&[
                ("backup_timestamp", "2018-05-04-16-45-08"),
                ("replication_num", "1")
            ]),
        }
    );
    assert_eq!(
        ok(r#"RESTORE SNAPSHOT example_db.snapshot_label2
              FROM example_repo
              ON(
                  backup_tbl PARTITION (p1, p2),
                  backup_tbl2 AS new_tbl
              )
              PROPERTIES ("backup_timestamp"="2018-05-04-17-11-01");"#),
        Statement::Restore {
            db: Some(s("example_db")),
            snapshot: s("snapshot_label2"),
            repository: s("example_repo"),
            tables: vec![
                table("backup_tbl", &["p1", "p2"], None),
                table("backup_tbl2", &[], Some("new_tbl")),
            ],
            properties: props(&[("backup_timestamp", "2018-05-04-17-11-01")]),
        }
    );
}

#[test]
fn restore_table_keyword_partitions_and_alias() {
    match ok(
        r#"RESTORE SNAPSHOT d.s FROM r ON (TABLE t PARTITION (p1) AS `t 2`, TABLE u AS v)
                PROPERTIES ("backup_timestamp" = "ts")"#,
    ) {
        Statement::Restore { tables, .. } => assert_eq!(
            tables,
            vec![table("t", &["p1"], Some("t 2")), table("u", &[], Some("v"))]
        ),
        other => panic!("{other:?}"),
    }
}

#[test]
fn restore_database_clause() {
    match ok(
        r#"RESTORE SNAPSHOT sr_hub_backup FROM test_repo DATABASE sr_hub
                PROPERTIES("backup_timestamp" = "2024-12-09-10-25-58-842")"#,
    ) {
        Statement::Restore { db, snapshot, .. } => {
            assert_eq!(db.as_deref(), Some("sr_hub"));
            assert_eq!(snapshot, "sr_hub_backup");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn show_and_cancel_restore() {
    assert_eq!(ok("SHOW RESTORE"), Statement::ShowRestore { db: None });
    assert_eq!(
        ok("SHOW RESTORE FROM example_db"),
        Statement::ShowRestore {
            db: Some(s("example_db"))
        }
    );
    assert_eq!(ok("CANCEL RESTORE;"), Statement::CancelRestore { db: None });
    assert_eq!(
        ok("cancel restore in example_db"),
        Statement::CancelRestore {
            db: Some(s("example_db"))
        }
    );
}

// ---- lexical matters ------------------------------------------------------------

#[test]
fn case_insensitive_keywords_keep_name_case() {
    for sql in [
        "SHOW BACKUP FROM MyDb",
        "show backup from MyDb",
        "ShOw BaCkUp FrOm MyDb",
    ] {
        assert_eq!(
            ok(sql),
            Statement::ShowBackup {
                db: Some(s("MyDb"))
            },
            "{sql}"
        );
    }
}

#[test]
fn quotes_and_escapes() {
    let sql = r#"CREATE REPOSITORY r WITH BROKER ON LOCATION 's3://b/it''s'
        PROPERTIES ("a" = 'single \'quoted\'', "b" = "double \"quoted\"",
                    "c" = "tab\there\nnewline\\backslash", 'd' = "say ""hi""",
                    "e" = '\%\_\q', "f" = "", "g" = "é → ✓")"#;
    match ok(sql) {
        Statement::CreateRepository {
            location,
            properties,
            ..
        } => {
            assert_eq!(location, "s3://b/it's");
            assert_eq!(
                properties,
                props(&[
                    ("a", "single 'quoted'"),
                    ("b", "double \"quoted\""),
                    ("c", "tab\there\nnewline\\backslash"),
                    ("d", "say \"hi\""),
                    ("e", "\\%\\_q"),
                    ("f", ""),
                    ("g", "é → ✓"),
                ])
            );
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn backquoted_identifiers() {
    assert_eq!(
        ok("SHOW BACKUP FROM `we``ird db`"),
        Statement::ShowBackup {
            db: Some(s("we`ird db"))
        }
    );
    assert_eq!(
        ok("DROP REPOSITORY `select`"),
        Statement::DropRepository { name: s("select") }
    );
    match ok("BACKUP SNAPSHOT `db`.`2024-01-01` TO `r.epo` ON (`table`)") {
        Statement::Backup {
            db,
            snapshot,
            repository,
            tables,
            ..
        } => {
            assert_eq!(db.as_deref(), Some("db"));
            assert_eq!(snapshot, "2024-01-01");
            assert_eq!(repository, "r.epo");
            assert_eq!(tables, vec![table("table", &[], None)]);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn comments_and_whitespace() {
    assert_eq!(
        ok("  -- list them\n\tSHOW /* all of them */ REPOSITORIES -- done\n ;  \n"),
        Statement::ShowRepositories
    );
    assert_eq!(
        ok("BACKUP\r\nSNAPSHOT\r\nd.s\r\nTO\r\nr\r\n"),
        Statement::Backup {
            db: Some(s("d")),
            snapshot: s("s"),
            repository: s("r"),
            tables: vec![],
            properties: vec![],
        }
    );
}

#[test]
fn unicode_identifiers() {
    assert_eq!(
        ok("SHOW BACKUP FROM 数据库"),
        Statement::ShowBackup {
            db: Some(s("数据库"))
        }
    );
}

// ---- columns ------------------------------------------------------------------

#[test]
fn result_columns() {
    assert_eq!(SHOW_BACKUP_COLUMNS.len(), 14);
    assert_eq!(SHOW_RESTORE_COLUMNS.len(), 18);
    assert_eq!(SHOW_REPOSITORIES_COLUMNS.len(), 7);
    assert_eq!(ok("SHOW BACKUP").columns(), Some(SHOW_BACKUP_COLUMNS));
    assert_eq!(ok("SHOW RESTORE").columns(), Some(SHOW_RESTORE_COLUMNS));
    assert_eq!(
        ok("SHOW REPOSITORIES").columns(),
        Some(SHOW_REPOSITORIES_COLUMNS)
    );
    assert_eq!(
        ok("SHOW SNAPSHOT ON r").columns(),
        Some(SHOW_SNAPSHOT_COLUMNS)
    );
    assert_eq!(
        ok("SHOW SNAPSHOT ON r WHERE SNAPSHOT = 's'").columns(),
        Some(SHOW_SNAPSHOT_DETAIL_COLUMNS)
    );
    assert_eq!(ok("CANCEL BACKUP").columns(), None);
}
