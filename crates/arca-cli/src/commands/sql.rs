use std::process::ExitCode;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use comfy_table::{presets, Table};

use crate::args::SqlArgs;
use crate::output::{out, print_json};

/// Sends one statement to `arca serve` and prints its answer.
pub fn run(a: SqlArgs) -> Result<ExitCode> {
    let token = match (&a.token_file, std::env::var("ARCA_TOKEN")) {
        (Some(f), _) => std::fs::read_to_string(f)
            .with_context(|| format!("cannot read the token file {}", f.display()))?
            .trim()
            .to_string(),
        (None, Ok(t)) if !t.is_empty() => t,
        _ => bail!("no token: set ARCA_TOKEN or pass --token-file FILE (a token of the daemon's configuration)"),
    };
    let server = a.server.trim_end_matches('/');
    if !server.starts_with("http://") {
        bail!("--server {server}: write the daemon's address as http://HOST:PORT");
    }
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(600)))
        .build()
        .into();
    let body = serde_json::json!({ "sql": a.statement }).to_string();
    let mut resp = agent
        .post(format!("{server}/api/v1/sql"))
        .header("Authorization", &format!("Bearer {token}"))
        .content_type("application/json")
        .send(body.as_str())
        .map_err(|e| anyhow!("cannot reach arca serve at {server}: {e}"))?;
    let status = resp.status().as_u16();
    let text = resp
        .body_mut()
        .read_to_string()
        .map_err(|e| anyhow!("arca serve at {server}: {e}"))?;
    let v: serde_json::Value = serde_json::from_str(&text)
        .map_err(|_| anyhow!("arca serve at {server} answered {status} with something not JSON"))?;
    if status >= 400 {
        let detail = v["detail"].as_str().or(v["error"].as_str()).unwrap_or("");
        bail!("{detail}");
    }
    if a.json {
        print_json(&v)?;
        return Ok(ExitCode::SUCCESS);
    }
    let columns: Vec<&str> = v["columns"]
        .as_array()
        .map(|c| c.iter().filter_map(|x| x.as_str()).collect())
        .unwrap_or_default();
    if !columns.is_empty() {
        let mut t = Table::new();
        t.load_preset(presets::ASCII_MARKDOWN);
        t.set_header(columns);
        for row in v["rows"].as_array().into_iter().flatten() {
            let cells: Vec<String> = row
                .as_array()
                .into_iter()
                .flatten()
                .map(|c| c.as_str().unwrap_or_default().to_string())
                .collect();
            t.add_row(cells);
        }
        out(t)?;
    }
    if let Some(m) = v["message"].as_str().filter(|m| !m.is_empty()) {
        out(m)?;
    }
    Ok(ExitCode::SUCCESS)
}
