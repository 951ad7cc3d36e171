//! Which object-store errors are worth retrying: OpenDAL's verdict, with
//! Arca's corrections.
//!
//! OpenDAL's S3 service decides by the HTTP status unless it knows the
//! error code, and takes any 5xx it does not know for temporary. An
//! S3-compatible store that answers a request that can never succeed (an
//! invalid bucket name, a bad signature) with a 5xx would have it retried
//! for the whole retry budget.
//! [`ClassifyLayer`] sits just below the retry layer and makes errors
//! carrying one of [`PERMANENT_CODES`] permanent, whatever their status.
//!
//! OpenDAL's retry layer marks every error it returns persistent, retried
//! or not, so the layer also tags the errors it lets through as temporary:
//! [`was_retried`] tells a failure after retries from one that was not
//! retried at all.

use std::sync::Arc;

use opendal::raw::oio::{self, ReadStreamDyn};
use opendal::raw::{
    Layer, OpCompose, OpCopy, OpCreateDir, OpDelete, OpList, OpPresign, OpRead, OpRename,
    OpRestore, OpStat, OpWrite, RpCreateDir, RpPresign, RpRead, RpRename, RpRestore, RpStat,
    Service, ServiceInfo, Servicer,
};
use opendal::{Buffer, BytesRange, Capability, Error, Metadata, OperationContext, Result};

/// S3 error codes that no retry can fix, whatever the HTTP status they come
/// with. OpenDAL already treats `NoSuchBucket` as permanent, whatever the
/// status (as a configuration error), and `NoSuchKey` as not found.
pub(super) const PERMANENT_CODES: &[&str] = &[
    "AccessDenied",
    "AuthorizationHeaderMalformed",
    "InvalidAccessKeyId",
    "InvalidArgument",
    "InvalidBucketName",
    "InvalidRequest",
    "SignatureDoesNotMatch",
];

/// Context key and value on errors that left the layer temporary.
const TAG: (&str, &str) = ("arca", "retryable");

/// The layer; see the module documentation.
#[derive(Debug, Clone, Copy)]
pub(super) struct ClassifyLayer;

impl Layer for ClassifyLayer {
    fn apply_service(&self, inner: Servicer) -> Servicer {
        Arc::new(Classify(inner))
    }
}

/// `err`, made permanent if its S3 code says no retry can help, and tagged
/// if it stays temporary.
pub(super) fn classify(err: Error) -> Error {
    if !err.is_temporary() {
        return err;
    }
    match error_field(err.message(), "code") {
        Some(code) if PERMANENT_CODES.contains(&code) => err.set_permanent(),
        _ => err.with_context(TAG.0, TAG.1),
    }
}

/// True if `err` was temporary and the retry layer gave up on it; false for
/// an error returned at once.
pub(super) fn was_retried(err: &Error) -> bool {
    err.is_persistent() && err.to_string().contains(&format!("{}: {}", TAG.0, TAG.1))
}

/// A field of the store's error as OpenDAL words it (`code: "SlowDown"` in
/// S3's `S3Error { code: "SlowDown", message: "…" }`).
pub(super) fn error_field<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    let start = msg.find(&format!("{name}: \""))? + name.len() + 3;
    let len = msg[start..].find('"')?;
    Some(&msg[start..start + len]).filter(|s| !s.is_empty())
}

#[derive(Debug)]
struct Classify(Servicer);

/// A reader, writer, lister, deleter or copier whose errors are classified.
struct Classified<T>(T);

impl Service for Classify {
    type Reader = Classified<oio::Reader>;
    type Writer = Classified<oio::Writer>;
    type Lister = Classified<oio::Lister>;
    type Deleter = Classified<oio::Deleter>;
    type Copier = Classified<oio::Copier>;
    type Composer = oio::Composer;

    fn info(&self) -> ServiceInfo {
        self.0.info()
    }

    fn capability(&self) -> Capability {
        self.0.capability()
    }

    async fn create_dir(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpCreateDir,
    ) -> Result<RpCreateDir> {
        self.0.create_dir(ctx, path, args).await.map_err(classify)
    }

    async fn stat(&self, ctx: &OperationContext, path: &str, args: OpStat) -> Result<RpStat> {
        self.0.stat(ctx, path, args).await.map_err(classify)
    }

    fn read(&self, ctx: &OperationContext, path: &str, args: OpRead) -> Result<Self::Reader> {
        self.0
            .read(ctx, path, args)
            .map(Classified)
            .map_err(classify)
    }

    fn write(&self, ctx: &OperationContext, path: &str, args: OpWrite) -> Result<Self::Writer> {
        self.0
            .write(ctx, path, args)
            .map(Classified)
            .map_err(classify)
    }

    fn delete(&self, ctx: &OperationContext) -> Result<Self::Deleter> {
        self.0.delete(ctx).map(Classified).map_err(classify)
    }

    fn list(&self, ctx: &OperationContext, path: &str, args: OpList) -> Result<Self::Lister> {
        self.0
            .list(ctx, path, args)
            .map(Classified)
            .map_err(classify)
    }

    fn copy(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpCopy,
    ) -> Result<Self::Copier> {
        self.0
            .copy(ctx, from, to, args)
            .map(Classified)
            .map_err(classify)
    }

    fn compose(&self, ctx: &OperationContext, to: &str, args: OpCompose) -> Result<Self::Composer> {
        self.0.compose(ctx, to, args)
    }

    async fn rename(
        &self,
        ctx: &OperationContext,
        from: &str,
        to: &str,
        args: OpRename,
    ) -> Result<RpRename> {
        self.0.rename(ctx, from, to, args).await.map_err(classify)
    }

    async fn restore(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpRestore,
    ) -> Result<RpRestore> {
        self.0.restore(ctx, path, args).await.map_err(classify)
    }

    async fn presign(
        &self,
        ctx: &OperationContext,
        path: &str,
        args: OpPresign,
    ) -> Result<RpPresign> {
        self.0.presign(ctx, path, args).await.map_err(classify)
    }
}

impl oio::Read for Classified<oio::Reader> {
    async fn open(&self, range: BytesRange) -> Result<(RpRead, Box<dyn ReadStreamDyn>)> {
        let (rp, stream) = self.0.open(range).await.map_err(classify)?;
        Ok((rp, Box::new(Classified(stream))))
    }

    async fn read(&self, range: BytesRange) -> Result<(RpRead, Buffer)> {
        self.0.read(range).await.map_err(classify)
    }
}

impl oio::ReadStream for Classified<Box<dyn ReadStreamDyn>> {
    async fn read(&mut self) -> Result<Buffer> {
        self.0.read().await.map_err(classify)
    }

    async fn read_all(&mut self) -> Result<Buffer> {
        self.0.read_all().await.map_err(classify)
    }
}

impl oio::Write for Classified<oio::Writer> {
    async fn write(&mut self, bs: Buffer) -> Result<()> {
        self.0.write(bs).await.map_err(classify)
    }

    async fn copy_from(&mut self, path: &str, args: OpRead, range: BytesRange) -> Result<()> {
        self.0.copy_from(path, args, range).await.map_err(classify)
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.0.close().await.map_err(classify)
    }

    async fn abort(&mut self) -> Result<()> {
        self.0.abort().await.map_err(classify)
    }
}

impl oio::List for Classified<oio::Lister> {
    async fn next(&mut self) -> Result<Option<oio::Entry>> {
        self.0.next().await.map_err(classify)
    }
}

impl oio::Delete for Classified<oio::Deleter> {
    async fn delete(&mut self, path: &str, args: OpDelete) -> Result<()> {
        self.0.delete(path, args).await.map_err(classify)
    }

    async fn close(&mut self) -> Result<()> {
        self.0.close().await.map_err(classify)
    }
}

impl oio::Copy for Classified<oio::Copier> {
    async fn next(&mut self) -> Result<Option<usize>> {
        self.0.next().await.map_err(classify)
    }

    async fn close(&mut self) -> Result<Metadata> {
        self.0.close().await.map_err(classify)
    }

    async fn abort(&mut self) -> Result<()> {
        self.0.abort().await.map_err(classify)
    }
}

#[cfg(test)]
mod tests {
    use opendal::ErrorKind;

    use super::*;

    fn s3_error(code: &str) -> Error {
        Error::new(
            ErrorKind::Unexpected,
            format!(
                "S3Error {{ code: \"{code}\", message: \"m\", resource: \"\", request_id: \"\" }}"
            ),
        )
    }

    #[test]
    fn permanent_codes_are_permanent_whatever_the_status() {
        for code in PERMANENT_CODES {
            // As OpenDAL classifies a 5xx it does not know: temporary.
            let e = classify(s3_error(code).set_temporary());
            assert!(!e.is_temporary(), "{code}");
            assert!(e.is_permanent(), "{code}");
        }
    }

    #[test]
    fn transient_codes_and_network_errors_stay_temporary_and_are_tagged() {
        for e in [
            s3_error("SlowDown").set_temporary(),
            s3_error("InternalError").set_temporary(),
            Error::new(ErrorKind::Unexpected, "connection reset").set_temporary(),
        ] {
            let e = classify(e);
            assert!(e.is_temporary(), "{e}");
            // What the retry layer does once it gives up.
            assert!(was_retried(&e.set_persistent()));
        }
    }

    #[test]
    fn permanent_errors_are_left_alone_and_not_taken_for_retried() {
        let e = classify(s3_error("InvalidBucketName"));
        assert!(e.is_permanent());
        // The retry layer marks every error it returns persistent.
        assert!(!was_retried(&e.set_persistent()));
        let e = classify(s3_error("InvalidBucketName").set_temporary());
        assert!(!was_retried(&e.set_persistent()));
    }

    #[test]
    fn error_fields_are_read_from_opendal_s3_messages() {
        let msg = "S3Error { code: \"InvalidBucketName\", message: \"The specified bucket is not valid.\", resource: \"\" }";
        assert_eq!(error_field(msg, "code"), Some("InvalidBucketName"));
        assert_eq!(
            error_field(msg, "message"),
            Some("The specified bucket is not valid.")
        );
        assert_eq!(error_field(msg, "resource"), None);
        assert_eq!(error_field("connection reset", "code"), None);
    }
}
