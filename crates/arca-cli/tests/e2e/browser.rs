//! A real headless Chromium for the console's tests, driven through
//! chromedriver (WebDriver) by fantoccini. Each [`Browser`] has its own
//! chromedriver on a free port and its own profile directory; both go
//! when it is dropped. Debian's `chromium` and `chromium-driver` are
//! required: a test fails, never skips, without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

use super::postgres::free_port;
use serde_json::{json, Value};

pub struct Browser {
    rt: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    _profile: tempfile::TempDir,
    pub base: String,
}

fn which(name: &str) -> PathBuf {
    for dir in ["/usr/bin", "/usr/local/bin", "/usr/lib/chromium"] {
        let p = Path::new(dir).join(name);
        if p.exists() {
            return p;
        }
    }
    panic!(
        "{name} is not installed: apt-get install chromium chromium-driver (scripts/test.sh does)"
    );
}

/// Where the test run writes its screenshots: `ARCA_SCREENSHOTS` or a
/// directory in the build's temporary space. `docs/console/` holds the
/// committed ones (copied from a run).
pub fn screenshot_dir() -> PathBuf {
    let d = std::env::var_os("ARCA_SCREENSHOTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots"));
    std::fs::create_dir_all(&d).unwrap();
    d
}

impl Browser {
    /// A browser whose clock reads in time zone `tz`, opening pages of
    /// `base` (`http://127.0.0.1:PORT`).
    pub fn start(base: &str, tz: &str) -> Browser {
        let chromium = which("chromium");
        let driver_bin = which("chromedriver");
        let port = free_port();
        let profile = tempfile::tempdir().unwrap();
        let driver = Command::new(driver_bin)
            .arg(format!("--port={port}"))
            .env("TZ", tz)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let caps: serde_json::Map<String, Value> = serde_json::from_value(json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": chromium,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync",
                    "--disable-dev-shm-usage", "--hide-scrollbars",
                    format!("--user-data-dir={}", profile.path().display()),
                    "--window-size=1280,1000",
                ]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        let client = loop {
            let r = rt.block_on(
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
                    .capabilities(caps.clone())
                    .connect(&url),
            );
            match r {
                Ok(c) => break c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => panic!("chromedriver on {url} gave no session: {e}"),
            }
        };
        Browser {
            rt,
            client: Some(client),
            driver,
            _profile: profile,
            base: base.to_string(),
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    pub fn goto(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.rt.block_on(self.c().goto(&url)).unwrap();
    }

    pub fn path(&self) -> String {
        let u = self.rt.block_on(self.c().current_url()).unwrap();
        match u.query() {
            Some(q) => format!("{}?{q}", u.path()),
            None => u.path().to_string(),
        }
    }

    pub fn set_size(&self, w: u32, h: u32) {
        self.rt.block_on(self.c().set_window_size(w, h)).unwrap();
    }

    /// The first element matching `css`, waiting up to 10 s for it.
    fn find(&self, css: &str) -> fantoccini::elements::Element {
        let found = self.rt.block_on(
            self.c()
                .wait()
                .at_most(Duration::from_secs(10))
                .for_element(Locator::Css(css)),
        );
        found.unwrap_or_else(|e| {
            panic!(
                "no {css} on {} after 10 s ({e}):\n{}",
                self.path(),
                self.text("body")
            )
        })
    }

    pub fn exists(&self, css: &str) -> bool {
        !self
            .rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap()
            .is_empty()
    }

    pub fn click(&self, css: &str) {
        let e = self.find(css);
        self.rt.block_on(e.click()).unwrap();
    }

    /// Clicks what submits a form or follows a link, and waits for the
    /// next page to be loaded (a mark left on this page is gone).
    pub fn submit(&self, css: &str) {
        self.script("window.__arcaOld = true; return null;", vec![]);
        self.click(css);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let v = self.rt.block_on(self.c().execute(
                "return window.__arcaOld === undefined && document.readyState === 'complete';",
                vec![],
            ));
            if matches!(v, Ok(Value::Bool(true))) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{css} led nowhere from {}",
                self.path()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn fill(&self, css: &str, text: &str) {
        let e = self.find(css);
        self.rt.block_on(async {
            e.clear().await.unwrap();
            e.send_keys(text).await.unwrap();
        });
    }

    pub fn select(&self, css: &str, value: &str) {
        let e = self.find(css);
        self.rt.block_on(e.select_by_value(value)).unwrap();
    }

    pub fn text(&self, css: &str) -> String {
        let all = self
            .rt
            .block_on(self.c().find_all(Locator::Css(css)))
            .unwrap();
        let mut out = String::new();
        for e in all {
            out += &self.rt.block_on(e.text()).unwrap_or_default();
            out.push('\n');
        }
        out
    }

    pub fn attr(&self, css: &str, name: &str) -> Option<String> {
        let e = self.find(css);
        self.rt.block_on(e.attr(name)).unwrap()
    }

    /// Runs JavaScript in the page (a datetime-local input takes its value
    /// this way: typing into one depends on the browser's locale).
    pub fn script(&self, js: &str, args: Vec<Value>) -> Value {
        self.rt.block_on(self.c().execute(js, args)).unwrap()
    }

    /// Waits up to `secs` for `css`'s text to satisfy `f`.
    pub fn wait_text(&self, css: &str, secs: u64, f: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let t = self.text(css);
            if f(&t) {
                return t;
            }
            assert!(
                Instant::now() < deadline,
                "{css} on {} after {secs} s: {t:?}",
                self.path()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn accept_alert(&self) {
        let deadline = Instant::now() + Duration::from_secs(5);
        while self.rt.block_on(self.c().accept_alert()).is_err() {
            assert!(Instant::now() < deadline, "no dialog to accept");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A PNG of the viewport into the screenshot directory.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let png = self.rt.block_on(self.c().screenshot()).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let p = screenshot_dir().join(format!("{name}.png"));
        std::fs::write(&p, png).unwrap();
        p
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(c) = self.client.take() {
            let _ = self
                .rt
                .block_on(async { tokio::time::timeout(Duration::from_secs(5), c.close()).await });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
