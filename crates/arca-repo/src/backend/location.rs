//! Where a repository lives: a local path, or an object-store URL with the
//! options that reach the store (endpoint, region, credentials).

use std::fmt;
use std::path::{Path, PathBuf};

use crate::error::{Error, Result};
use crate::secret::Secret;

/// Where a repository lives, as the user gave it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Local(PathBuf),
    Remote(Remote),
}

/// The object stores Arca can talk to (each an OpenDAL service).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Amazon S3 and S3-compatible stores (MinIO, SeaweedFS, Ceph, R2…).
    S3,
    /// Google Cloud Storage.
    Gcs,
    /// Azure Blob Storage.
    Azblob,
    /// HDFS through its WebHDFS REST API.
    Webhdfs,
    /// Tencent Cloud COS.
    Cos,
    /// Alibaba Cloud OSS.
    Oss,
}

impl Scheme {
    pub const ALL: [Scheme; 6] = [
        Scheme::S3,
        Scheme::Gcs,
        Scheme::Azblob,
        Scheme::Webhdfs,
        Scheme::Cos,
        Scheme::Oss,
    ];

    /// The URL scheme: `s3`, `gs`, `azblob`, `webhdfs`, `cos`, `oss`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::S3 => "s3",
            Scheme::Gcs => "gs",
            Scheme::Azblob => "azblob",
            Scheme::Webhdfs => "webhdfs",
            Scheme::Cos => "cos",
            Scheme::Oss => "oss",
        }
    }

    /// The URL scheme, or `gcs` for Google Cloud Storage.
    pub fn from_name(name: &str) -> Option<Scheme> {
        match name.to_ascii_lowercase().as_str() {
            "s3" => Some(Scheme::S3),
            "gs" | "gcs" => Some(Scheme::Gcs),
            "azblob" => Some(Scheme::Azblob),
            "webhdfs" => Some(Scheme::Webhdfs),
            "cos" => Some(Scheme::Cos),
            "oss" => Some(Scheme::Oss),
            _ => None,
        }
    }

    /// What this store calls the first part of the URL.
    pub fn bucket_word(self) -> &'static str {
        match self {
            Scheme::Azblob => "container",
            Scheme::Webhdfs => "name node",
            _ => "bucket",
        }
    }

    fn url_shape(self) -> &'static str {
        match self {
            Scheme::Azblob => "azblob://CONTAINER/PREFIX",
            Scheme::Webhdfs => "webhdfs://HOST:PORT/PATH",
            Scheme::S3 => "s3://BUCKET/PREFIX",
            Scheme::Gcs => "gs://BUCKET/PREFIX",
            Scheme::Cos => "cos://BUCKET/PREFIX",
            Scheme::Oss => "oss://BUCKET/PREFIX",
        }
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A repository in an object store: `SCHEME://BUCKET/PREFIX`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Remote {
    pub scheme: Scheme,
    /// The bucket (a container on Azure; `HOST:PORT` of the name node for WebHDFS).
    pub bucket: String,
    /// The folder inside the bucket, without leading or trailing `/`; may be empty.
    pub prefix: String,
    pub options: StoreOptions,
}

impl Remote {
    /// The OpenDAL root: `/PREFIX/`.
    pub fn root(&self) -> String {
        if self.prefix.is_empty() {
            "/".to_string()
        } else {
            format!("/{}/", self.prefix)
        }
    }
}

/// How to reach an object store. Empty fields fall back to the store's
/// standard environment variables and files (`AWS_*`, `~/.aws/credentials`…).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreOptions {
    /// `http(s)://HOST[:PORT]`; without a scheme, https is assumed.
    pub endpoint: Option<String>,
    /// S3 region; default `AWS_REGION`, `AWS_DEFAULT_REGION`, then `us-east-1`.
    pub region: Option<String>,
    /// S3 path-style addressing (`ENDPOINT/BUCKET/KEY`), mo_br's `--is_minio`.
    pub path_style: bool,
    /// Role to assume (S3, OSS).
    pub role_arn: Option<String>,
    /// Access key id (S3, OSS), secret id (COS) or account name (Azure).
    pub access_key_id: Option<Secret>,
    /// Secret access key (S3), access key secret (OSS), secret key (COS) or account key (Azure).
    pub secret_access_key: Option<Secret>,
}

impl StoreOptions {
    pub fn is_empty(&self) -> bool {
        *self == StoreOptions::default()
    }

    /// The flags that were given, by their command-line names.
    fn given(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        if self.endpoint.is_some() {
            v.push("--endpoint");
        }
        if self.region.is_some() {
            v.push("--region");
        }
        if self.path_style {
            v.push("--is_minio");
        }
        if self.role_arn.is_some() {
            v.push("--role_arn");
        }
        if self.access_key_id.is_some() {
            v.push("--access_key_id");
        }
        if self.secret_access_key.is_some() {
            v.push("--secret_access_key");
        }
        v
    }
}

fn bad(msg: impl Into<String>) -> Error {
    Error::Format(msg.into())
}

impl Location {
    /// Parses `--repo`: a local path, `file:///PATH`, or `SCHEME://BUCKET/PREFIX`.
    pub fn parse(s: &str) -> Result<Location> {
        Location::parse_with(s, StoreOptions::default())
    }

    /// Parses `--repo` with the object-store options given beside it.
    pub fn parse_with(s: &str, options: StoreOptions) -> Result<Location> {
        if s.is_empty() {
            return Err(bad(
                "the repository location is empty: pass --repo PATH or set ARCA_REPO",
            ));
        }
        let local = |p: &str| -> Result<Location> {
            if let Some(flag) = options.given().first() {
                return Err(bad(format!(
                    "{flag} applies to object storage only, and {p} is a local path"
                )));
            }
            Ok(Location::Local(PathBuf::from(p)))
        };
        if let Some(rest) = s.strip_prefix("file://") {
            return local(rest);
        }
        let Some((scheme, rest)) = s.split_once("://") else {
            return local(s);
        };
        let Some(scheme) = Scheme::from_name(scheme) else {
            let known: Vec<String> = Scheme::ALL.iter().map(|s| format!("{s}://")).collect();
            return Err(bad(format!(
                "repository URL scheme {scheme}:// is not supported: use {}, file:// or a local path",
                known.join(", ")
            )));
        };
        // Never echo a URL that may carry a password.
        if rest.contains('@') {
            return Err(credentials_in_url(scheme));
        }
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        Location::remote(scheme, bucket, prefix, options)
    }

    /// A repository at `PREFIX` in `BUCKET` of a `scheme` store.
    pub fn remote(
        scheme: Scheme,
        bucket: &str,
        prefix: &str,
        mut options: StoreOptions,
    ) -> Result<Location> {
        let word = scheme.bucket_word();
        let shape = scheme.url_shape();
        if bucket.contains('@') {
            return Err(credentials_in_url(scheme));
        }
        if bucket.is_empty() {
            return Err(bad(format!("{scheme}:// needs a {word}: {shape}")));
        }
        if [bucket, prefix].iter().any(|p| p.contains(['?', '#'])) {
            return Err(bad(format!(
                "{scheme}:// URLs take no query string: give {shape} and the options as flags (--endpoint, --region…)"
            )));
        }
        let bucket_ok = match scheme {
            Scheme::Webhdfs => bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b)),
            _ => bucket
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-._".contains(&b)),
        };
        if !bucket_ok {
            return Err(bad(format!(
                "{bucket:?} is not a valid {word} name for {scheme}://: {shape}"
            )));
        }
        let prefix = prefix.trim_matches('/');
        if prefix
            .split('/')
            .any(|seg| seg == "." || seg == ".." || (seg.is_empty() && !prefix.is_empty()))
        {
            return Err(bad(format!(
                "{prefix:?} is not a clean path inside the {word}: no empty, `.` or `..` parts"
            )));
        }
        if let Some(e) = &options.endpoint {
            options.endpoint = Some(normalize_endpoint(e)?);
        }
        check_options(scheme, &options)?;
        Ok(Location::Remote(Remote {
            scheme,
            bucket: bucket.to_string(),
            prefix: prefix.to_string(),
            options,
        }))
    }

    pub fn local_path(&self) -> Option<&Path> {
        match self {
            Location::Local(p) => Some(p),
            Location::Remote(_) => None,
        }
    }

    pub fn remote_store(&self) -> Option<&Remote> {
        match self {
            Location::Local(_) => None,
            Location::Remote(r) => Some(r),
        }
    }
}

fn credentials_in_url(scheme: Scheme) -> Error {
    bad(format!(
        "credentials in a repository URL are not accepted (they would show in the process list and in logs): give {} and the credentials through the environment or a credentials file",
        scheme.url_shape()
    ))
}

/// Adds `https://` to a bare host and drops a trailing `/`.
fn normalize_endpoint(e: &str) -> Result<String> {
    let e = e.trim().trim_end_matches('/');
    let with_scheme = if e.contains("://") {
        e.to_string()
    } else {
        format!("https://{e}")
    };
    let rest = with_scheme
        .strip_prefix("http://")
        .or_else(|| with_scheme.strip_prefix("https://"));
    match rest {
        None => Err(bad(
            "--endpoint must be http://HOST[:PORT] or https://HOST[:PORT]",
        )),
        Some("") => Err(bad("--endpoint needs a host")),
        Some(r) if r.contains('@') => Err(bad(
            "--endpoint must not carry credentials: use the environment or a credentials file",
        )),
        Some(_) => Ok(with_scheme),
    }
}

/// Rejects options the chosen store does not use, so none is silently ignored.
fn check_options(scheme: Scheme, o: &StoreOptions) -> Result<()> {
    let unused = |flag: &str, why: &str| -> Result<()> {
        Err(bad(format!("{flag} does not apply to {scheme}://: {why}")))
    };
    if scheme != Scheme::S3 {
        if o.region.is_some() {
            return unused("--region", "the region is part of the endpoint");
        }
        if o.path_style {
            return unused("--is_minio", "it selects S3 path-style addressing");
        }
    }
    if o.role_arn.is_some() && !matches!(scheme, Scheme::S3 | Scheme::Oss) {
        return unused("--role_arn", "only s3:// and oss:// assume roles");
    }
    let keys = o.access_key_id.is_some() || o.secret_access_key.is_some();
    match scheme {
        Scheme::Gcs if keys => unused(
            "--access_key_id/--secret_access_key",
            "set GOOGLE_APPLICATION_CREDENTIALS to a service account file",
        ),
        Scheme::Webhdfs if keys => unused(
            "--access_key_id/--secret_access_key",
            "WebHDFS authenticates by user name (HADOOP_USER_NAME)",
        ),
        _ if o.access_key_id.is_some() != o.secret_access_key.is_some() => Err(bad(
            "give both --access_key_id and --secret_access_key, or neither",
        )),
        _ => Ok(()),
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::Local(p) => write!(f, "{}", p.display()),
            Location::Remote(r) if r.prefix.is_empty() => write!(f, "{}://{}", r.scheme, r.bucket),
            Location::Remote(r) => write!(f, "{}://{}/{}", r.scheme, r.bucket, r.prefix),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(s: &str) -> Remote {
        match Location::parse(s).unwrap() {
            Location::Remote(r) => r,
            l => panic!("{s} parsed as {l:?}"),
        }
    }

    fn err(s: &str, o: StoreOptions) -> String {
        Location::parse_with(s, o).unwrap_err().to_string()
    }

    #[test]
    fn paths_and_file_urls_are_local() {
        assert_eq!(
            Location::parse("/srv/backups").unwrap(),
            Location::Local("/srv/backups".into())
        );
        assert_eq!(
            Location::parse("rel/repo").unwrap(),
            Location::Local("rel/repo".into())
        );
        assert_eq!(
            Location::parse("file:///srv/r").unwrap(),
            Location::Local("/srv/r".into())
        );
        assert!(Location::parse("").is_err());
    }

    #[test]
    fn every_scheme_parses_bucket_and_prefix() {
        for (url, scheme, bucket, prefix) in [
            (
                "s3://my-bucket/arca/prod",
                Scheme::S3,
                "my-bucket",
                "arca/prod",
            ),
            ("s3://my-bucket", Scheme::S3, "my-bucket", ""),
            ("s3://my-bucket/", Scheme::S3, "my-bucket", ""),
            ("gs://gbucket/x/", Scheme::Gcs, "gbucket", "x"),
            ("gcs://gbucket/x", Scheme::Gcs, "gbucket", "x"),
            (
                "azblob://container/backups",
                Scheme::Azblob,
                "container",
                "backups",
            ),
            (
                "webhdfs://namenode:9870/user/arca/repo",
                Scheme::Webhdfs,
                "namenode:9870",
                "user/arca/repo",
            ),
            (
                "cos://examplebucket-1250000000/repo",
                Scheme::Cos,
                "examplebucket-1250000000",
                "repo",
            ),
            ("oss://ob/a/b/c", Scheme::Oss, "ob", "a/b/c"),
            ("S3://UpperOk/p", Scheme::S3, "UpperOk", "p"),
        ] {
            let r = remote(url);
            assert_eq!(
                (r.scheme, r.bucket.as_str(), r.prefix.as_str()),
                (scheme, bucket, prefix),
                "{url}"
            );
        }
        assert_eq!(remote("s3://b/p/q").root(), "/p/q/");
        assert_eq!(remote("s3://b").root(), "/");
    }

    #[test]
    fn display_round_trips() {
        for url in [
            "s3://b/p/q",
            "s3://b",
            "gs://g/x",
            "azblob://c/y",
            "webhdfs://nn:9870/a",
            "cos://c-1/r",
            "oss://o/r",
        ] {
            assert_eq!(Location::parse(url).unwrap().to_string(), url);
            assert_eq!(
                Location::parse(&Location::parse(url).unwrap().to_string()).unwrap(),
                Location::parse(url).unwrap()
            );
        }
    }

    #[test]
    fn bad_urls_are_refused_with_the_expected_shape() {
        let none = StoreOptions::default;
        assert!(err("ftp://host/x", none()).contains("s3://, gs://, azblob://"));
        assert!(err("s3://", none()).contains("s3://BUCKET/PREFIX"));
        assert!(err("azblob:///x", none()).contains("container"));
        assert!(err("s3://b/p?region=x", none()).contains("no query string"));
        assert!(err("s3://b/a/../c", none()).contains("clean path"));
        assert!(err("s3://b/a//c", none()).contains("clean path"));
        assert!(err("s3://bad bucket/x", none()).contains("not a valid bucket"));
    }

    #[test]
    fn credentials_in_a_url_are_refused_without_echoing_them() {
        let e = err(
            "s3://AKIDEXAMPLE:wJalrXUtnFEMI@bucket/p",
            StoreOptions::default(),
        );
        assert!(e.contains("credentials"), "{e}");
        assert!(
            !e.contains("wJalrXUtnFEMI") && !e.contains("AKIDEXAMPLE"),
            "{e}"
        );
        let e = err(
            "s3://b/p",
            StoreOptions {
                endpoint: Some("https://user:pw@host".into()),
                ..Default::default()
            },
        );
        assert!(!e.contains("pw@"), "{e}");
    }

    #[test]
    fn options_are_checked_against_the_scheme() {
        let with = |f: fn(&mut StoreOptions)| {
            let mut o = StoreOptions::default();
            f(&mut o);
            o
        };
        let keys = |o: &mut StoreOptions| {
            o.access_key_id = Some("id".into());
            o.secret_access_key = Some("sk".into());
        };
        // S3 takes them all.
        let o = with(|o| {
            o.endpoint = Some("127.0.0.1:8333/".into());
            o.region = Some("eu-west-1".into());
            o.path_style = true;
            o.role_arn = Some("arn:aws:iam::1:role/x".into());
            o.access_key_id = Some("id".into());
            o.secret_access_key = Some("sk".into());
        });
        let r = match Location::parse_with("s3://b/p", o).unwrap() {
            Location::Remote(r) => r,
            _ => unreachable!(),
        };
        assert_eq!(
            r.options.endpoint.as_deref(),
            Some("https://127.0.0.1:8333")
        );
        assert!(r.options.path_style);
        // Keys map onto COS, OSS and Azure credentials.
        for url in ["cos://c/p", "oss://o/p", "azblob://c/p"] {
            Location::parse_with(url, with(keys)).unwrap();
        }
        assert!(err("gs://g/p", with(keys)).contains("GOOGLE_APPLICATION_CREDENTIALS"));
        assert!(err("webhdfs://nn:9870/p", with(keys)).contains("HADOOP_USER_NAME"));
        assert!(err("gs://g/p", with(|o| o.region = Some("x".into()))).contains("--region"));
        assert!(err("oss://o/p", with(|o| o.path_style = true)).contains("--is_minio"));
        assert!(err("cos://c/p", with(|o| o.role_arn = Some("r".into()))).contains("--role_arn"));
        assert!(err("s3://b/p", with(|o| o.access_key_id = Some("id".into()))).contains("both"));
        assert!(err(
            "/local/repo",
            with(|o| o.endpoint = Some("http://h".into()))
        )
        .contains("--endpoint applies to object storage only"));
        assert!(
            err("s3://b/p", with(|o| o.endpoint = Some("ftp://h".into()))).contains("http://HOST")
        );
    }
}
