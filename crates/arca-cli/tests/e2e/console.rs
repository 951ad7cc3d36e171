//! The web console in a real headless Chromium, against a real `arca
//! serve` over a real SQLite source (and a real PostgreSQL one): sign in,
//! back up and follow the progress, find the backup with a time filter,
//! restore it, cancel a long backup, a purge period refused inline, what a
//! viewer is not offered, and screenshots of every page at 1280 and 390 px.

use std::path::Path;

use serde_json::json;

use super::browser::Browser;
use super::common::*;
use super::serve::{foreign_lock, http, setup, tokens, Daemon, ADMIN, OPERATOR, VIEWER};

fn sign_in(b: &Browser, token: &str) {
    b.goto("/login");
    b.fill("#token", token);
    b.submit("button[type=submit]");
    b.wait_text("h1", 10, |t| t.contains("Overview"));
}

fn count_rows(db: &Path) -> i64 {
    rusqlite::Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

/// The job page the browser is on, once its state is `state`.
fn wait_state(b: &Browser, state: &str, secs: u64) -> String {
    b.wait_text("#job-state", secs, |t| t.trim() == state)
}

/// The page fits a phone's width: nothing wider than the viewport.
fn fits(b: &Browser, what: &str) {
    let v = b.script(
        "const wide = Array.from(document.querySelectorAll('body *'))
           .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
           .map((e) => e.tagName + '.' + e.className).slice(0, 5);
         return [document.documentElement.scrollWidth, window.innerWidth, wide];",
        vec![],
    );
    let (scroll, inner) = (v[0].as_u64().unwrap(), v[1].as_u64().unwrap());
    assert!(
        scroll <= inner,
        "{what} is {scroll} px wide in a {inner} px window: {}",
        v[2]
    );
}

/// Sets a `datetime-local` input to the browser's local time `offset_min`
/// minutes from now, as a person picking it would.
fn set_local_time(b: &Browser, css: &str, offset_min: i64) {
    b.script(
        "const d = new Date(Date.now() + arguments[1] * 60000);
         const p = (n) => String(n).padStart(2, '0');
         document.querySelector(arguments[0]).value = d.getFullYear() + '-' + p(d.getMonth() + 1) +
           '-' + p(d.getDate()) + 'T' + p(d.getHours()) + ':' + p(d.getMinutes());",
        vec![json!(css), json!(offset_min)],
    );
}

#[test]
fn without_a_session_every_page_goes_to_login_and_a_viewer_is_offered_no_changes() {
    let s = setup("purge_after_days = 30");
    let d = Daemon::start(&s.config, &[]);
    let a = d.post("/api/v1/backups", OPERATOR, &json!({"source": "app"}));
    let j = d.wait_job(a.json()["job"].as_str().unwrap());
    let backup = j["backup"].as_str().unwrap().to_string();

    // Raw HTTP first: the redirect, the cookie's attributes, a cross-site post.
    for p in [
        "/",
        "/backups",
        "/jobs",
        "/policies",
        "/restore",
        "/repositories",
    ] {
        let r = http(&d.addr, "GET", p, None, None);
        assert_eq!(r.status, 303, "{p}: {r:?}");
        assert!(
            r.headers.to_ascii_lowercase().contains("location: /login"),
            "{p}: {r:?}"
        );
    }
    let login = raw(&d.addr, "POST", "/login", &[], &format!("token={VIEWER}"));
    assert!(login.starts_with("HTTP/1.1 303"), "{login}");
    let cookie_line = login
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {login}"));
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie_line.contains(attr), "{cookie_line}");
    }
    let cookie = cookie_line
        .split(';')
        .next()
        .unwrap()
        .split_once(':')
        .unwrap()
        .1
        .trim()
        .to_string();
    let cross = raw(
        &d.addr,
        "POST",
        "/backups",
        &[("Cookie", &cookie), ("Origin", "http://evil.example")],
        "source=app&csrf=x",
    );
    assert!(cross.starts_with("HTTP/1.1 403"), "{cross}");
    let stale = raw(
        &d.addr,
        "POST",
        "/backups",
        &[("Cookie", &cookie)],
        "source=app&csrf=wrong",
    );
    assert!(stale.starts_with("HTTP/1.1 403"), "{stale}");
    let backups = d.jobs().iter().filter(|j| j["kind"] == "backup").count();
    assert_eq!(backups, 1, "a refused form started a job");

    let b = Browser::start(&format!("http://{}", d.addr), "UTC");
    b.goto("/backups");
    assert_eq!(b.path(), "/login");
    b.set_size(390, 844);
    b.screenshot("login-390");
    b.set_size(1280, 1000);
    b.screenshot("login-1280");
    b.fill("#token", "not-a-token");
    b.submit("button[type=submit]");
    let err = b.wait_text("#login-error", 10, |t| !t.trim().is_empty());
    assert!(err.contains("not valid"), "{err}");
    b.screenshot("login-error-1280");

    sign_in(&b, VIEWER);
    assert!(b.text(".who").contains("viewer"));
    assert!(
        !b.exists("nav a[href='/restore']"),
        "a viewer is offered Restore"
    );
    assert!(
        !b.exists("#source-app form[action='/backups'] button"),
        "a viewer is offered Back up now"
    );
    b.goto(&format!("/backups/{backup}"));
    assert!(b.text("h1").contains(&backup[..8]));
    assert!(
        !b.exists("a[href^='/restore']"),
        "a viewer is offered a restore"
    );
    assert!(
        !b.exists("form[action$='/verify']"),
        "a viewer is offered verify"
    );
    b.goto("/policies");
    assert!(!b.exists("button.primary"), "a viewer is offered Save");
    assert!(b.exists("fieldset[disabled]"));
    b.goto("/restore");
    assert!(b.text(".error").contains("viewer"), "{}", b.text("main"));
    b.goto("/repositories");
    assert!(
        !b.exists("form[action='/repositories']"),
        "a viewer is offered Add"
    );

    // Sign out ends the session.
    b.goto("/");
    b.submit(".signout button");
    b.wait_text("h1", 10, |t| t.contains("Arca"));
    b.goto("/jobs");
    assert_eq!(b.path(), "/login");
}

/// One raw HTTP/1.1 request with extra headers and a form body; the whole answer.
fn raw(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    req += body;
    s.write_all(req.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[test]
fn back_up_follow_find_restore_and_cancel_in_the_browser() {
    use super::postgres::{server_repo, Pg};
    let env = Env::new();
    let db = env.path("app.db");
    make_db(&db, 24, "WAL");
    let repo = server_repo(&env);
    let pg = Pg::start(Some(&repo));
    pg.sql("CREATE TABLE t (id int primary key, v text)");
    pg.sql("INSERT INTO t SELECT g, md5(g::text) FROM generate_series(1, 1000) g");
    let config = env.path("arca.toml");
    std::fs::write(
        &config,
        format!(
            "catalog = \"{}\"\n\n[[repository]]\nname = \"local\"\nurl = \"{repo}\"\n\n\
             [[source]]\nname = \"app\"\nurl = \"sqlite://{}\"\n\n\
             [[source]]\nname = \"pg\"\nurl = \"{}\"\n\n\
             [[plan]]\nname = \"app-daily\"\nsource = \"app\"\nrepository = \"local\"\n\
             schedule = \"daily 01:00\"\ntimezone = \"Europe/Berlin\"\npurge_after_days = 30\n\n\
             [[plan]]\nname = \"pg-nightly\"\nsource = \"pg\"\nrepository = \"local\"\n\n{}",
            env.s("catalog.db"),
            db.display(),
            pg.url(),
            tokens()
        ),
    )
    .unwrap();
    let d = Daemon::start(&config, &[]);
    // The browser reads its clock in New York: times show in that zone.
    let b = Browser::start(&format!("http://{}", d.addr), "America/New_York");
    sign_in(&b, ADMIN);
    let overview = b.text("main");
    assert!(
        overview.contains("SQLite") && overview.contains("PostgreSQL"),
        "{overview}"
    );

    // Back up now, and follow it to 100%.
    b.submit("#source-app form[action='/backups'] button");
    b.wait_text("h1", 10, |t| t.contains("Backup of app"));
    assert!(b.path().starts_with("/jobs/"), "{}", b.path());
    wait_state(&b, "succeeded", 120);
    let progress = b.text(".progress-text");
    assert!(progress.contains("100%"), "{progress}");
    let done = b.text("dl.facts");
    assert!(
        done.contains("EST") || done.contains("GMT-5"),
        "times not in the browser's zone: {done}"
    );
    let backup = b.attr("dl.facts a[href^='/backups/']", "href").unwrap();
    let backup = backup.trim_start_matches("/backups/").to_string();
    assert_eq!(backup.len(), 64, "{backup}");

    // Found with a time filter around now, and not with one after it.
    b.goto("/backups");
    set_local_time(&b, "#f-from", -60);
    set_local_time(&b, "#f-to", 60);
    b.submit("#backup-filters button[type=submit]");
    b.wait_text("#backups tbody", 10, |t| t.contains(&backup[..8]));
    assert!(b.path().contains("tz=America%2FNew_York"), "{}", b.path());
    set_local_time(&b, "#f-from", 60);
    set_local_time(&b, "#f-to", 120);
    b.submit("#backup-filters button[type=submit]");
    b.wait_text("#backups tbody", 10, |t| t.contains("No backups match"));

    // Its page lists the database file; verify now runs a check that passes.
    b.goto(&format!("/backups/{backup}"));
    assert!(b.text("table").contains("app.db"), "{}", b.text("main"));
    b.submit("form[action$='/verify'] button");
    wait_state(&b, "succeeded", 60);
    b.goto(&format!("/backups/{backup}"));
    assert!(
        b.text("dl.facts").contains("succeeded"),
        "{}",
        b.text("dl.facts")
    );

    // Restore it to a new path: review, confirm by typing the name, follow.
    let to = env.path("restored.db");
    b.goto("/restore?source=app");
    b.select("#backup", &backup);
    b.fill("#to", to.to_str().unwrap());
    b.submit(".restore-form button[type=submit]");
    let summary = b.wait_text("main", 10, |t| t.contains("Summary"));
    assert!(
        summary.contains(&backup[..8]) && summary.contains(to.to_str().unwrap()),
        "{summary}"
    );
    b.fill("#confirm", "not the name");
    b.submit("main form button.danger");
    let err = b.wait_text("#err-confirm", 10, |t| !t.is_empty());
    assert!(err.contains("type the target"), "{err}");
    assert!(!to.exists());
    b.fill("#confirm", to.to_str().unwrap());
    b.submit("main form button.danger");
    b.wait_text("h1", 10, |t| t.contains("Restore of app"));
    wait_state(&b, "succeeded", 120);
    let restore_job = b.path();
    integrity_ok(&to);
    assert_eq!(count_rows(&to), count_rows(&db));

    // A time outside any window is not offered: SQLite has no log.
    b.goto("/restore?source=app");
    assert_eq!(b.attr("#p-time", "disabled").as_deref(), Some("true"));

    // A long backup (it waits for another host's lock), cancelled.
    let lock = foreign_lock(&repo);
    b.goto("/");
    b.submit("#source-app form[action='/backups'] button");
    wait_state(&b, "running", 30);
    b.click("#cancel-form button");
    b.accept_alert();
    wait_state(&b, "cancelled", 30);
    std::fs::remove_file(&lock).unwrap();

    // The PostgreSQL source backs up the same way.
    b.goto("/");
    b.submit("#source-pg form[action='/backups'] button");
    b.wait_text("h1", 10, |t| t.contains("Backup of pg"));
    wait_state(&b, "succeeded", 120);

    // Jobs and events list what happened.
    b.goto("/jobs");
    let jobs = b.text("table");
    for s in ["succeeded", "cancelled", "restore", "check"] {
        assert!(jobs.contains(s), "{s}: {jobs}");
    }
    b.goto("/events?source=app");
    assert!(
        b.text("table").contains("job_cancelled"),
        "{}",
        b.text("table")
    );

    screenshots(
        &b,
        &backup,
        &restore_job,
        env.path("another.db").to_str().unwrap(),
    );
}

/// Every page at 1280 px and at a 390 px phone's width, each checked to
/// fit its width, written as PNGs for docs/console/.
fn screenshots(b: &Browser, backup: &str, job: &str, to: &str) {
    let pages = [
        ("overview", "/".to_string()),
        ("backups", "/backups".to_string()),
        ("backup", format!("/backups/{backup}")),
        ("restore", "/restore?source=pg".to_string()),
        ("policies", "/policies".to_string()),
        ("jobs", "/jobs".to_string()),
        ("events", "/events".to_string()),
        ("repositories", "/repositories".to_string()),
        ("job", job.to_string()),
    ];
    for (w, h) in [(1280, 1000), (390, 844)] {
        b.set_size(w, h);
        for (name, path) in &pages {
            b.goto(path);
            b.wait_text("h1", 10, |t| !t.is_empty());
            if w == 390 {
                fits(b, name);
            }
            b.screenshot(&format!("{name}-{w}"));
        }
        // The restore's summary, waiting for the typed name.
        b.goto("/restore?source=app");
        b.fill("#to", to);
        b.submit(".restore-form button[type=submit]");
        b.wait_text("h2", 10, |t| t.contains("Summary"));
        if w == 390 {
            fits(b, "the restore summary");
        }
        b.screenshot(&format!("restore-summary-{w}"));
    }
    b.set_size(1280, 1000);
}

#[test]
fn a_six_day_purge_period_is_refused_inline_and_repositories_keep_their_secret() {
    let s = setup("purge_after_days = 30");
    let d = Daemon::start(&s.config, &[]);
    let b = Browser::start(&format!("http://{}", d.addr), "UTC");
    sign_in(&b, ADMIN);
    b.goto("/policies");
    b.fill("#app-daily-purge", "6");
    let err = b.wait_text("#app-daily-purge-error", 10, |t| !t.trim().is_empty());
    assert!(err.contains("7 to 365"), "{err}");
    let before = std::fs::read_to_string(&s.config).unwrap();
    b.submit("#plan-app-daily button.primary");
    let err = b.wait_text("#app-daily-purge-error", 10, |t| !t.trim().is_empty());
    assert!(err.contains("purge_after_days is 6"), "{err}");
    assert_eq!(
        std::fs::read_to_string(&s.config).unwrap(),
        before,
        "a refused plan was written"
    );
    b.screenshot("policies-error-1280");
    // A good value clears the inline error and is saved.
    b.fill("#app-daily-purge", "45");
    b.wait_text("#app-daily-purge-error", 10, |t| t.trim().is_empty());
    b.submit("#plan-app-daily button.primary");
    b.wait_text(".notice", 10, |t| t.contains("saved"));
    assert!(
        std::fs::read_to_string(&s.config)
            .unwrap()
            .contains("purge_after_days = 45"),
        "{}",
        std::fs::read_to_string(&s.config).unwrap()
    );

    // A bad schedule is shown under the schedule, not another field.
    b.fill("#app-daily-schedule", "every banana");
    b.submit("#plan-app-daily button.primary");
    let err = b.wait_text("#err-schedule", 10, |t| !t.trim().is_empty());
    assert!(err.contains("banana"), "{err}");
    assert!(!b.exists("#err-drill"), "{}", b.text("main"));

    // A repository added: a secret given for a local path is refused,
    // and the form comes back without it; without one it is added.
    let second = s.env.path("second");
    b.goto("/repositories");
    b.fill("#r-name", "second");
    b.fill("#r-url", second.to_str().unwrap());
    b.fill("#r-access", "AKIDEXAMPLE");
    b.fill("#r-secret", "wJalrXUtnFEMI-secret-value");
    b.submit("form[action='/repositories'] button.primary");
    let err = b.wait_text(".error", 20, |t| !t.trim().is_empty());
    assert!(err.contains("local path"), "{err}");
    let page = b.script("return document.documentElement.outerHTML;", vec![]);
    assert!(
        !page.as_str().unwrap().contains("wJalrXUtnFEMI"),
        "the secret is on the page"
    );
    let cfg = std::fs::read_to_string(&s.config).unwrap();
    assert!(
        !cfg.contains("second"),
        "a refused repository is in the configuration: {cfg}"
    );
    assert_eq!(b.attr("#r-name", "value").as_deref(), Some("second"));
    b.fill("#r-access", "");
    b.submit("form[action='/repositories'] button.primary");
    b.wait_text(".notice", 20, |t| t.contains("second added"));
    assert!(
        second.join("config").exists(),
        "no repository created at {second:?}"
    );
    b.submit("form[action='/repositories/second/test'] button");
    b.wait_text(".notice", 20, |t| t.contains("second answers: 0 backups"));
    // Removing asks for the name typed.
    b.click("details.remove summary");
    b.fill("#rm-local", "wrong");
    b.submit("form[action='/repositories/local/remove'] button.danger");
    b.wait_text("main", 10, |t| t.contains("type the repository's name"));
    assert!(std::fs::read_to_string(&s.config)
        .unwrap()
        .contains("name = \"local\""));
    assert!(Path::new(&s.repo).exists());
}
