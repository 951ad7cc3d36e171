//! Webhook notifications: an HTTP POST of a JSON event when a job fails
//! (`on = "failure"`, the default) or ends (`on = "all"`). Sent from a
//! thread of its own, tried three times; a delivery that fails is an event,
//! with the URL's query (which may hold a token) left out.

use std::sync::Arc;
use std::time::Duration;

use crate::catalog::JobRow;
use crate::config::Config;
use crate::State;

pub fn job_finished(state: &Arc<State>, cfg: &Config, row: &JobRow) {
    let Some(hook) = cfg.webhook.clone() else {
        return;
    };
    if hook.on != "all" && row.state == "succeeded" {
        return;
    }
    let body = serde_json::json!({
        "event": format!("job_{}", row.state),
        "host": arca_repo::lock::hostname(),
        "job": row,
    })
    .to_string();
    let state = state.clone();
    let job = row.id.clone();
    let source = row.source.clone();
    std::thread::spawn(move || {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .timeout_global(Some(Duration::from_secs(10)))
            .http_status_as_error(false)
            .build()
            .into();
        let mut last = String::new();
        for attempt in 0..3u32 {
            if attempt > 0 {
                std::thread::sleep(Duration::from_secs(2u64.pow(attempt)));
            }
            match agent
                .post(&hook.url)
                .content_type("application/json")
                .send(body.as_str())
            {
                Ok(r) if r.status().is_success() => return,
                Ok(r) => last = format!("answered {}", r.status()),
                Err(e) => last = e.to_string(),
            }
        }
        let shown = hook.url.split('?').next().unwrap_or_default();
        let last = last.replace(&hook.url, shown);
        state.event(
            "webhook_failed",
            source.as_deref(),
            Some(&job),
            &format!("webhook {shown}: {last} (3 attempts)"),
        );
    });
}
