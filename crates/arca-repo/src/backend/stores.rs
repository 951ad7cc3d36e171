//! The object stores other than S3: GCS, Azure Blob, WebHDFS, COS and OSS.
//!
//! Each is an OpenDAL service configured from a [`Remote`]. Credentials not
//! given as options come from each service's standard environment:
//! `GOOGLE_APPLICATION_CREDENTIALS`; `AZURE_STORAGE_ACCOUNT_NAME`/`_KEY`
//! (or `AZBLOB_ACCOUNT_NAME`/`_KEY`); `HADOOP_USER_NAME`;
//! `TENCENTCLOUD_SECRET_ID`/`_KEY`; `ALIBABA_CLOUD_ACCESS_KEY_ID`/`_SECRET`.
//! None of them has been run against the real service here: only their URLs
//! and options are tested (see docs/design/object-storage.md).

use opendal::services::{Azblob, Cos, Gcs, Oss, Webhdfs};
use opendal::Operator;

use super::location::{Remote, Scheme};
use crate::error::{Error, Result};

/// The service for `r`, and the endpoint it talks to (for messages).
pub(super) fn service(r: &Remote) -> Result<(Operator, String)> {
    let o = &r.options;
    let keys = o.access_key_id.as_ref().zip(o.secret_access_key.as_ref());
    let built = match r.scheme {
        Scheme::S3 => super::s3::service(r),
        Scheme::Gcs => {
            let endpoint = o
                .endpoint
                .clone()
                .unwrap_or_else(|| "https://storage.googleapis.com".to_string());
            let b = Gcs::default()
                .bucket(&r.bucket)
                .root(&r.root())
                .endpoint(&endpoint);
            Operator::new(b).map(|op| (op, endpoint))
        }
        Scheme::Azblob => {
            let endpoint = azblob_endpoint(r)?;
            let mut b = Azblob::default()
                .container(&r.bucket)
                .root(&r.root())
                .endpoint(&endpoint);
            if let Some((name, key)) = keys {
                b = b.account_name(name.expose()).account_key(key.expose());
            }
            Operator::new(b).map(|op| (op, endpoint))
        }
        Scheme::Webhdfs => {
            let endpoint = o
                .endpoint
                .clone()
                .unwrap_or_else(|| format!("http://{}", r.bucket));
            let mut b = Webhdfs::default()
                .root(&r.root())
                .endpoint(&endpoint)
                .atomic_write_dir(&format!("{}{}/", r.root(), super::TMP_DIR));
            if let Ok(user) = std::env::var("HADOOP_USER_NAME") {
                b = b.user_name(&user);
            }
            Operator::new(b).map(|op| (op, endpoint))
        }
        Scheme::Cos => {
            let endpoint = required_endpoint(r, "https://cos.ap-guangzhou.myqcloud.com")?;
            let mut b = Cos::default()
                .bucket(&r.bucket)
                .root(&r.root())
                .endpoint(&endpoint);
            if let Some((id, key)) = keys {
                b = b.secret_id(id.expose()).secret_key(key.expose());
            }
            Operator::new(b).map(|op| (op, endpoint))
        }
        Scheme::Oss => {
            let endpoint = required_endpoint(r, "https://oss-cn-hangzhou.aliyuncs.com")?;
            let mut b = Oss::default()
                .bucket(&r.bucket)
                .root(&r.root())
                .endpoint(&endpoint);
            if let Some((id, key)) = keys {
                b = b.access_key_id(id.expose()).access_key_secret(key.expose());
            }
            if let Some(arn) = &o.role_arn {
                b = b.role_arn(arn);
            }
            Operator::new(b).map(|op| (op, endpoint))
        }
    };
    built.map_err(|e| {
        Error::Format(format!(
            "cannot set up {}://{}: {}",
            r.scheme,
            r.bucket,
            e.message()
        ))
    })
}

fn required_endpoint(r: &Remote, example: &str) -> Result<String> {
    r.options.endpoint.clone().ok_or_else(|| {
        Error::Format(format!(
            "{}:// needs --endpoint (for example {example})",
            r.scheme
        ))
    })
}

/// `--endpoint`, `AZBLOB_ENDPOINT`, or the account's default endpoint.
fn azblob_endpoint(r: &Remote) -> Result<String> {
    if let Some(e) = &r.options.endpoint {
        return Ok(e.clone());
    }
    if let Ok(e) = std::env::var("AZBLOB_ENDPOINT") {
        return Ok(e);
    }
    let account = r
        .options
        .access_key_id
        .as_ref()
        .map(|s| s.expose().to_string())
        .or_else(|| std::env::var("AZURE_STORAGE_ACCOUNT_NAME").ok())
        .or_else(|| std::env::var("AZBLOB_ACCOUNT_NAME").ok());
    match account {
        Some(a) if !a.is_empty() => Ok(format!("https://{a}.blob.core.windows.net")),
        _ => Err(Error::Format(
            "azblob:// needs --endpoint https://ACCOUNT.blob.core.windows.net (or AZURE_STORAGE_ACCOUNT_NAME)".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Location, StoreOptions};

    fn remote(url: &str, endpoint: Option<&str>) -> Remote {
        let opts = StoreOptions {
            endpoint: endpoint.map(str::to_string),
            ..Default::default()
        };
        Location::parse_with(url, opts)
            .unwrap()
            .remote_store()
            .unwrap()
            .clone()
    }

    /// Every store builds its OpenDAL service from a URL without sending a
    /// request; this is as far as the stores without a test server go.
    #[test]
    fn every_store_builds_its_service_and_names_its_endpoint() {
        for (url, endpoint, shown) in [
            (
                "s3://b/p",
                Some("http://127.0.0.1:9000"),
                "http://127.0.0.1:9000",
            ),
            ("gs://b/p", None, "https://storage.googleapis.com"),
            (
                "azblob://c/p",
                Some("https://acct.blob.core.windows.net"),
                "https://acct.blob.core.windows.net",
            ),
            (
                "webhdfs://namenode:9870/user/arca",
                None,
                "http://namenode:9870",
            ),
            (
                "cos://b-1250000000/p",
                Some("https://cos.ap-guangzhou.myqcloud.com"),
                "https://cos.ap-guangzhou.myqcloud.com",
            ),
            (
                "oss://b/p",
                Some("https://oss-cn-hangzhou.aliyuncs.com"),
                "https://oss-cn-hangzhou.aliyuncs.com",
            ),
        ] {
            let (op, named) =
                service(&remote(url, endpoint)).unwrap_or_else(|e| panic!("{url}: {e}"));
            assert_eq!(named, shown, "{url}");
            assert_eq!(op.info().root(), remote(url, endpoint).root(), "{url}");
        }
    }

    #[test]
    fn stores_without_a_default_endpoint_ask_for_one() {
        for url in ["cos://b-1/p", "oss://b/p"] {
            let e = service(&remote(url, None)).unwrap_err().to_string();
            assert!(e.contains("needs --endpoint"), "{url}: {e}");
        }
    }
}
