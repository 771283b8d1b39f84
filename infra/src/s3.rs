//! [`BlobStore`] over S3: parked webhook bodies and claim-checked events; [`MediaStore`]: inbound
//! media written in parts (multipart upload, server-side encryption), visible only once completed.

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, ServerSideEncryption};
use wa_core::ports::{BlobError, BlobStore, MediaStore, MediaUpload, ObjectMeta, ObjectSource};

use crate::aws::describe;

/// The bytes of an object; `NotFound` when there is none.
async fn read_object(client: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
    let output = client.get_object().bucket(bucket).key(key).send().await.map_err(|e| {
        if e.as_service_error().is_some_and(aws_sdk_s3::operation::get_object::GetObjectError::is_no_such_key) {
            BlobError::NotFound(key.to_owned())
        } else {
            BlobError::Unavailable(describe(&e))
        }
    })?;
    let bytes = output.body.collect().await.map_err(|e| BlobError::Unavailable(describe(&e)))?;
    Ok(bytes.into_bytes().to_vec())
}

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
        read_object(&self.client, &self.bucket, key).await
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

/// The object metadata (`x-amz-meta-wa-owner`) naming the user who sent a media file.
pub const OWNER_METADATA: &str = "wa-owner";

impl S3Blobs {
    /// The media objects under `media/<phone_number_id>/` whose owner is one of `ids`
    /// (`wa erase`); each object's metadata is read once.
    pub async fn media_of(&self, phone_number_id: &str, ids: &[String]) -> Result<Vec<String>, BlobError> {
        let mut found = Vec::new();
        let mut token = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(format!("{}{phone_number_id}/", wa_core::media::MEDIA_PREFIX))
                .set_continuation_token(token)
                .send()
                .await
                .map_err(|e| BlobError::Unavailable(describe(&e)))?;
            for object in page.contents() {
                let Some(key) = object.key() else { continue };
                let head = self
                    .client
                    .head_object()
                    .bucket(&self.bucket)
                    .key(key)
                    .send()
                    .await
                    .map_err(|e| BlobError::Unavailable(describe(&e)))?;
                if head.metadata().and_then(|m| m.get(OWNER_METADATA)).is_some_and(|owner| ids.contains(owner)) {
                    found.push(key.to_owned());
                }
            }
            token = page.next_continuation_token;
            if token.is_none() {
                return Ok(found);
            }
        }
    }

    /// Deletes the object under `key`.
    pub async fn delete(&self, key: &str) -> Result<(), BlobError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| BlobError::Unavailable(describe(&e)))
    }
}

/// A multipart upload in progress.
pub struct S3Upload {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl MediaUpload for S3Upload {
    async fn part(&mut self, bytes: Vec<u8>) -> Result<(), BlobError> {
        let number =
            i32::try_from(self.parts.len() + 1).map_err(|_| BlobError::Unavailable("too many parts".into()))?;
        let out = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| BlobError::Unavailable(describe(&e)))?;
        self.parts.push(CompletedPart::builder().part_number(number).set_e_tag(out.e_tag).build());
        Ok(())
    }

    async fn complete(self) -> Result<(), BlobError> {
        self.client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(self.parts)).build())
            .send()
            .await
            .map(|_| ())
            .map_err(|e| BlobError::Unavailable(describe(&e)))
    }

    async fn abort(self) -> Result<(), BlobError> {
        self.client
            .abort_multipart_upload()
            .bucket(&self.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await
            .map(|_| ())
            .map_err(|e| BlobError::Unavailable(describe(&e)))
    }
}

impl MediaStore for S3Blobs {
    type Upload = S3Upload;

    fn media_bucket(&self) -> &str {
        &self.bucket
    }

    async fn stored_size(&self, key: &str) -> Result<Option<u64>, BlobError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(out.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0))),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(BlobError::Unavailable(describe(&e))),
        }
    }

    async fn begin(&self, key: &str, content_type: &str, owner: Option<&str>) -> Result<S3Upload, BlobError> {
        let out = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(content_type)
            .set_metadata(owner.map(|o| std::collections::HashMap::from([(OWNER_METADATA.to_owned(), o.to_owned())])))
            .server_side_encryption(ServerSideEncryption::Aes256)
            .send()
            .await
            .map_err(|e| BlobError::Unavailable(describe(&e)))?;
        let upload_id = out.upload_id.ok_or_else(|| BlobError::Unavailable("S3 gave no upload id".into()))?;
        Ok(S3Upload {
            client: self.client.clone(),
            bucket: self.bucket.clone(),
            key: key.to_owned(),
            upload_id,
            parts: Vec::new(),
        })
    }
}

/// Objects in any bucket the function may read (the deployer names them; IAM enforces it): the
/// files producers send by `{"s3": {"bucket", "key"}}`.
#[derive(Debug, Clone)]
pub struct S3Objects {
    client: aws_sdk_s3::Client,
}

impl S3Objects {
    /// Through `client`.
    #[must_use]
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self { client }
    }
}

impl ObjectSource for S3Objects {
    async fn head(&self, bucket: &str, key: &str) -> Result<Option<ObjectMeta>, BlobError> {
        match self.client.head_object().bucket(bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                size: out.content_length.and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                content_type: out.content_type,
                etag: out.e_tag,
            })),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(BlobError::Unavailable(describe(&e))),
        }
    }

    async fn read(&self, bucket: &str, key: &str) -> Result<Vec<u8>, BlobError> {
        read_object(&self.client, bucket, key).await
    }
}
