//! S3 and S3-compatible stores (MinIO, SeaweedFS, Ceph RGW, R2…).
//!
//! Credentials come from OpenDAL's default AWS chain (environment,
//! `~/.aws/credentials` and `~/.aws/config` profiles, web identity, instance
//! metadata) unless keys were given as options; `role_arn` then assumes a role
//! on top of them.

use opendal::services::S3;
use opendal::Operator;

use super::location::Remote;

/// The S3 service for `r`, and the endpoint it talks to (for messages).
pub(super) fn service(r: &Remote) -> opendal::Result<(Operator, String)> {
    let o = &r.options;
    let region = o
        .region
        .clone()
        .or_else(|| env("AWS_REGION"))
        .or_else(|| env("AWS_DEFAULT_REGION"))
        .unwrap_or_else(|| "us-east-1".to_string());
    let endpoint = o
        .endpoint
        .clone()
        .or_else(|| env("AWS_ENDPOINT_URL_S3"))
        .or_else(|| env("AWS_ENDPOINT_URL"))
        .map(|e| e.trim_end_matches('/').to_string());
    let mut b = S3::default()
        .bucket(&r.bucket)
        .root(&r.root())
        .region(&region);
    if let Some(e) = &endpoint {
        b = b.endpoint(e);
    }
    let shown = endpoint.unwrap_or_else(|| format!("https://s3.{region}.amazonaws.com"));
    if virtual_host_style(&shown, o.path_style, &r.bucket) {
        b = b.enable_virtual_host_style();
    }
    if let Some(arn) = &o.role_arn {
        b = b.role_arn(arn);
    }
    if let (Some(id), Some(key)) = (&o.access_key_id, &o.secret_access_key) {
        b = b.access_key_id(id.expose()).secret_access_key(key.expose());
    }
    Ok((Operator::new(b)?, shown))
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// AWS, Alibaba and Tencent endpoints want the bucket in the host name;
/// MinIO, SeaweedFS, Ceph and other endpoints on an IP or a plain host want
/// it in the path. `--is_minio` forces path style everywhere.
fn virtual_host_style(endpoint: &str, path_style: bool, bucket: &str) -> bool {
    if path_style || bucket.contains('.') {
        return false;
    }
    let host = endpoint
        .split_once("://")
        .map_or(endpoint, |(_, rest)| rest)
        .split(['/', ':'])
        .next()
        .unwrap_or("");
    [
        "amazonaws.com",
        "amazonaws.com.cn",
        "aliyuncs.com",
        "myqcloud.com",
    ]
    .iter()
    .any(|d| host == *d || host.ends_with(&format!(".{d}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addressing_style_follows_the_endpoint() {
        assert!(virtual_host_style(
            "https://s3.eu-west-1.amazonaws.com",
            false,
            "b"
        ));
        assert!(virtual_host_style(
            "https://s3.cn-north-1.amazonaws.com.cn",
            false,
            "b"
        ));
        assert!(!virtual_host_style(
            "https://s3.eu-west-1.amazonaws.com",
            true,
            "b"
        ));
        assert!(!virtual_host_style(
            "https://s3.amazonaws.com",
            false,
            "dotted.name"
        ));
        assert!(!virtual_host_style("http://127.0.0.1:8333", false, "b"));
        assert!(!virtual_host_style(
            "http://minio.internal:9000",
            false,
            "b"
        ));
        assert!(!virtual_host_style("https://evilamazonaws.com", false, "b"));
    }
}
