//! [`BlobStore`] over S3: parked webhook bodies and claim-checked events.

use aws_sdk_s3::primitives::ByteStream;
use wa_core::ports::{BlobError, BlobStore};

use crate::aws::describe;

/// An S3 bucket.
#[derive(Debug, Clone)]
pub struct S3Blobs {
    client: aws_sdk_s3::Client,
    bucket: String,
}

impl S3Blobs {
    /// A store writing to `bucket`.
    #[must_use]
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        Self { client, bucket: bucket.into() }
    }
}

impl BlobStore for S3Blobs {
    fn bucket(&self) -> &str {
        &self.bucket
    }

    async fn put(&self, key: &str, body: Vec<u8>, content_type: &str) -> Result<(), BlobError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| BlobError::Unavailable(describe(&e)))
    }

    async fn get(&self, key: &str) -> Result<Vec<u8>, BlobError> {
        let output = self.client.get_object().bucket(&self.bucket).key(key).send().await.map_err(|e| {
            if e.as_service_error().is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key) {
                BlobError::NotFound(key.to_owned())
            } else {
                BlobError::Unavailable(describe(&e))
            }
        })?;
        let bytes = output.body.collect().await.map_err(|e| BlobError::Unavailable(describe(&e)))?;
        Ok(bytes.into_bytes().to_vec())
    }

    /// A copy onto itself (metadata replaced, as S3 requires): a new object, whose age, which
    /// lifecycle rules count, starts now.
    async fn renew(&self, key: &str) -> Result<(), BlobError> {
        self.client
            .copy_object()
            .bucket(&self.bucket)
            .key(key)
            .copy_source(format!("{}/{key}", self.bucket))
            .metadata_directive(aws_sdk_s3::types::MetadataDirective::Replace)
            .content_type("application/json")
            .send()
            .await
            .map(|_| ())
            .map_err(|e| {
                let missing = e.raw_response().is_some_and(|r| r.status().as_u16() == 404)
                    || e.as_service_error().and_then(aws_sdk_s3::error::ProvideErrorMetadata::code)
                        == Some("NoSuchKey");
                if missing { BlobError::NotFound(key.to_owned()) } else { BlobError::Unavailable(describe(&e)) }
            })
    }
}
